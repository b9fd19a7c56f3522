"""Token-key rotation for replicas that share state in Redis: `maestro coordinator key rotate`
swaps the keyring in Redis; both replicas sign with the new key from the next token request,
accept each other's tokens at once, keep verifying the old key's tokens until the overlap ends
and then refuse them as retired. Real processes on loopback: Debian's redis-server, nginx as the
blob upstream and two `maestro coordinator serve` replicas."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
from coord_procs import (
    MAESTRO,
    Redis,
    Replica,
    add_tenant,
    bearer,
    http,
    needs_nginx,
    needs_redis,
    run_redis,
    run_replicas,
    token,
)

from maestro.coordinator.auth import Keyring, rotate_shared_keyring
from maestro.coordinator.state import RedisState

pytestmark = [needs_redis, needs_nginx, pytest.mark.slow]

MISSING = "/cas/" + "0" * 64  # a miss (404) once authenticated


@dataclass
class Pair:
    redis: Redis
    a: Replica
    b: Replica
    settings: dict[str, str]
    api_key: str
    tmp: Path


async def _keyring(url: str) -> Keyring | None:
    state = RedisState.from_url(url)
    try:
        raw = await state.token_keyring()
        return None if raw is None else Keyring.model_validate_json(raw)
    finally:
        await state.close()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    with run_replicas(tmp_path) as r:
        _, api_key = asyncio.run(add_tenant(r.redis.url, "alpha", label="drill"))
        yield Pair(r.redis, r.a, r.b, r.settings, api_key, tmp_path)


def _kid(tok: str) -> str:
    kid: str = jwt.get_unverified_header(tok[3:])["kid"]
    return kid


def _status(replica: Replica, tok: str) -> tuple[int, str]:
    status, body, _ = http("GET", f"{replica.base}/alpha{MISSING}", headers=bearer(tok))
    return status, body.decode(errors="replace")


def _rotate(pair: Pair, *args: str) -> subprocess.CompletedProcess[str]:
    """The operator's command, from a machine of its own (a data dir no replica uses)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    env.update({f"MAESTRO_COORDINATOR_{k.upper()}": v for k, v in pair.settings.items()})
    env["MAESTRO_COORDINATOR_DATA_DIR"] = str(pair.tmp / "operator")
    return subprocess.run(
        [MAESTRO, "coordinator", "key", "rotate", *args],
        cwd=pair.tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_rotation_drill_on_two_replicas_sharing_redis(pair: Pair) -> None:
    a, b = pair.a, pair.b
    old = token(a.base, pair.api_key)
    assert _kid(old) == "default"
    assert _status(b, old)[0] == 404  # the replicas share the generated secret

    rotated = _rotate(pair, "--overlap", "4", "--json")
    started = time.monotonic()
    done = json.loads(rotated.stdout)
    assert done["old_kid"] == "default" and done["new_kid"] != "default"
    ring = asyncio.run(_keyring(pair.redis.url))
    assert ring is not None and ring.signing == done["new_kid"]

    # the next token of either replica is signed with the new key, and the other replica
    # verifies it at once (it reads the keyring when a token names a key it does not know)
    new_a = token(a.base, pair.api_key)
    new_b = token(b.base, pair.api_key)
    assert _kid(new_a) == _kid(new_b) == done["new_kid"]
    for replica in (a, b):
        for tok in (old, new_a, new_b):
            assert _status(replica, tok)[0] == 404, (replica.base, _kid(tok))
    assert time.monotonic() - started < 3.5, "the checks above ran past the overlap"

    time.sleep(max(0.0, 4.5 - (time.monotonic() - started)))
    for replica in (a, b):  # the overlap is over: the old key's tokens are refused everywhere
        status, body = _status(replica, old)
        assert status == 401 and "retired key 'default'" in body, body
        assert _status(replica, new_a)[0] == 404

    # the next rotation drops the old key's secret and lists it as retired
    again = json.loads(_rotate(pair, "--json").stdout)
    assert again["retired"] == ["default"] and again["old_kid"] == done["new_kid"]
    ring = asyncio.run(_keyring(pair.redis.url))
    assert ring is not None and "default" not in ring.keys and "default" in ring.retired
    assert _status(a, new_b)[0] == 404  # the default overlap (token TTL) keeps it verifying
    assert _kid(token(b.base, pair.api_key)) == again["new_kid"]

    # neither the command's output nor a replica's log holds a key, secret or token
    secrets = [e.secret for e in ring.keys.values()] + [pair.api_key, old, new_a, new_b]
    secrets.append(pair.api_key.split("_", 2)[2])  # the secret may hold "_"
    said = rotated.stdout + rotated.stderr + a.log.read_text() + b.log.read_text()
    assert not [s for s in secrets if s in said]


async def _concurrent_rotations(url: str) -> tuple[list[str], Keyring | None]:
    states = [RedisState.from_url(url) for _ in range(4)]
    try:
        done = await asyncio.gather(*(rotate_shared_keyring(s, overlap_s=60) for s in states))
        return [d.new_kid for d in done], await _keyring(url)
    finally:
        for s in states:
            await s.close()


@needs_redis
def test_concurrent_rotations_all_land(tmp_path: Path) -> None:
    """Rotations racing in Redis each start from the keyring the previous one wrote: no new
    key is lost (every one but the last still verifies) and exactly one signs."""
    with run_redis(tmp_path) as redis:
        new_kids, ring = asyncio.run(_concurrent_rotations(redis.url))
    assert ring is not None
    assert set(ring.keys) == {"default", *new_kids}
    assert ring.signing in new_kids
    assert [k for k, e in ring.keys.items() if e.verify_until is None] == [ring.signing]


async def _source_reads(url: str) -> None:
    from maestro.coordinator.auth import SharedKeyringSource

    state = RedisState.from_url(url)
    try:
        shared = await state.token_secret()
        assert shared is not None
        now = [100.0]
        source = SharedKeyringSource(state, shared, clock=lambda: now[0])
        await source.refresh("default")
        assert source().signing_kid == "default"  # no keyring yet: the shared secret
        done = await rotate_shared_keyring(state, overlap_s=60)
        now[0] += 0.5
        await source.refresh("default")  # a known key, read 0.5 s ago: not read again
        assert source().signing_kid == "default"
        await source.refresh(done.new_kid)  # a key not read yet: read at once
        assert source().signing_kid == done.new_kid
        await state.r.set(state._k("token-keys"), b"{damaged")
        now[0] += 1.0
        await source.refresh("default")  # read again after a second: damaged, keys kept
        assert source().signing_kid == done.new_kid
    finally:
        await state.close()


@needs_redis
def test_replica_reads_the_keyring_when_due_and_keeps_keys_over_damage(tmp_path: Path) -> None:
    with run_redis(tmp_path) as redis:
        asyncio.run(_source_reads(redis.url))
