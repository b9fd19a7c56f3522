"""Token-key rotation with overlap: `maestro coordinator key rotate` makes a new signing key while
the server runs; tokens of the previous key verify until the overlap ends, then are refused as
retired; nothing of it (keys, tokens) reaches a log or the command's output."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from coord_helpers import Env

from maestro.coordinator.auth import KEYRING_FILE, read_keyring, rotate_keyring
from maestro.coordinator.settings import Settings

MAESTRO = str(Path(sys.executable).parent / "maestro")


def _kid(token: str) -> str:
    kid: str = jwt.get_unverified_header(token[3:])["kid"]
    return kid


MISSING = "/alpha/cas/" + "0" * 64  # a miss (404) once authenticated


async def _status(env: Env, token: str) -> tuple[int, str]:
    resp = await env.client.get(MISSING, headers={"Authorization": f"Bearer {token}"})
    return resp.status, await resp.text()


async def test_old_tokens_verify_until_the_overlap_ends_then_are_refused(
    env: Env, settings: Settings
) -> None:
    before = await env.token("alpha")
    assert _kid(before) == "default"
    done = rotate_keyring(settings.data_dir, overlap_s=120, now=env.clock.now)
    assert done.old_kid == "default" and done.old_verifies_until == env.clock.now + 120
    # the running server reads the new keyring on its next request: no restart
    after = await env.token("alpha")
    assert _kid(after) == done.new_kid
    env.clock.now += 119
    assert (await _status(env, before))[0] == 404  # inside the overlap: nobody logged out
    assert (await _status(env, after))[0] == 404
    env.clock.now += 1
    status, body = await _status(env, before)
    assert status == 401 and "retired key 'default'" in body
    assert (await _status(env, after))[0] == 404
    metrics = await (await env.client.get("/metrics", headers=await env.auth("alpha"))).text()
    assert 'auth_failures_total{reason="retired_key"} 1.0' in metrics


async def test_default_overlap_outlives_every_old_token(env: Env, settings: Settings) -> None:
    """Rotating twice within a TTL keeps both previous keys verifying; a third rotation after
    the overlap drops the first key's secret and lists it as retired."""
    first = await env.token("alpha")
    rotate_keyring(settings.data_dir, overlap_s=settings.token_ttl_s, now=env.clock.now)
    second = await env.token("alpha")
    env.clock.now += 10
    rotate_keyring(settings.data_dir, overlap_s=settings.token_ttl_s, now=env.clock.now)
    env.clock.now += settings.token_ttl_s - 20
    assert (await _status(env, first))[0] == 404
    assert (await _status(env, second))[0] == 404
    env.clock.now += 30
    done = rotate_keyring(settings.data_dir, overlap_s=settings.token_ttl_s, now=env.clock.now)
    assert "default" in done.retired
    ring = read_keyring(settings.data_dir)
    assert ring is not None and "default" not in ring.keys and "default" in ring.retired
    assert stat.S_IMODE((settings.data_dir / KEYRING_FILE).stat().st_mode) == 0o600


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str, Path]]:
    """A real `maestro coordinator serve` on loopback: (data dir, base URL, its log)."""
    data, log = tmp_path / "coord", tmp_path / "coord.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    run = [MAESTRO, "coordinator"]
    subprocess.run([*run, "tenant", "add", "alpha", "--data", str(data)], env=env, check=True)
    proc = subprocess.Popen(
        [*run, "serve", "--port", "0", "--data", str(data)],
        stdout=subprocess.PIPE,
        stderr=log.open("ab"),
        env=env,
    )
    try:
        assert proc.stdout is not None
        port = json.loads(proc.stdout.readline())["port"]
        yield data, f"http://127.0.0.1:{port}", log
    finally:
        proc.terminate()
        proc.wait(10)


def _post_token(url: str, api_key: str) -> str:
    req = urllib.request.Request(
        f"{url}/v1/token",
        data=json.dumps({"api_key": api_key}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        token: str = json.loads(resp.read())["token"]
    return token


def _get_status(url: str, token: str) -> int:
    req = urllib.request.Request(f"{url}{MISSING}", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.slow
def test_rotation_drill_against_a_running_server(served: tuple[Path, str, Path]) -> None:
    """The drill of docs/coordinator.md, as an operator runs it."""
    data, url, log = served
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    made = subprocess.run(
        [MAESTRO, "coordinator", "key", "create", "alpha", "--json", "--data", str(data)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    api_key = json.loads(made.stdout)["api_key"]
    old = _post_token(url, api_key)
    rotated = subprocess.run(
        [MAESTRO, "coordinator", "key", "rotate", "--overlap", "3", "--data", str(data)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    started = time.monotonic()
    new = _post_token(url, api_key)
    assert _kid(new) != _kid(old)
    assert _get_status(url, old) == 404 and _get_status(url, new) == 404
    time.sleep(max(0.0, 3.5 - (time.monotonic() - started)))
    assert _get_status(url, old) == 401
    assert _get_status(url, new) == 404
    ring = read_keyring(data)
    assert ring is not None
    secrets = [e.secret for e in ring.keys.values()] + [api_key, old, new]
    secrets.append(api_key.split("_", 2)[2])  # mk_<key id>_<secret>: the secret may hold "_"
    said = rotated.stdout + rotated.stderr + log.read_text()
    assert "signs from now on" in rotated.stdout
    assert not [s for s in secrets if s in said]
