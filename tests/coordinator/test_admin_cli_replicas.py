"""`maestro coordinator tenant ...` and `key ...` with `state_backend = "redis"` administer the
replicas' shared state: two real replicas over one Debian redis-server (and nginx blobs), the
real CLI in its own process with the replicas' settings."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from coord_procs import (
    MAESTRO,
    Replicas,
    bearer,
    http,
    needs_nginx,
    needs_redis,
    run_replicas,
    token,
)

pytestmark = [needs_redis, needs_nginx, pytest.mark.slow]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Replicas, Path]]:
    tmp = tmp_path_factory.mktemp("admin")
    with run_replicas(tmp, ("a", "b"), rate_limits="enforce") as r:
        yield r, tmp


def _cli(r: Replicas, tmp: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    env.update({f"MAESTRO_COORDINATOR_{k.upper()}": v for k, v in r.settings.items()})
    env["MAESTRO_COORDINATOR_DATA_DIR"] = str(tmp / "admin")  # no store of its own
    done = subprocess.run(
        [MAESTRO, "coordinator", *args],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def test_tenants_and_keys_made_with_the_cli_are_every_replicas(
    replicas: tuple[Replicas, Path],
) -> None:
    r, tmp = replicas
    _cli(r, tmp, "tenant", "add", "clifarm", "--quota", "10MB")
    said = _cli(r, tmp, "tenant", "set", "clifarm", "--priority", "ci", "--burst", "2")
    assert "priority=ci" in said and "burst=2" in said, said
    listed = _cli(r, tmp, "tenant", "list")
    assert "clifarm" in listed and "priority=ci" in listed, listed
    created = json.loads(
        _cli(r, tmp, "key", "create", "clifarm", "--role", "read-write", "--json").splitlines()[-1]
    )
    assert created["key_id"] in _cli(r, tmp, "key", "list", "--tenant", "clifarm")
    assert not (tmp / "admin" / "store").exists()  # nothing went to an embedded store

    # both replicas know the key and hold the tenant to the burst the CLI set: one budget
    tokens = {x.base: token(x.base, created["api_key"]) for x in (r.a, r.b)}
    url = f"/clifarm/cas/{hashlib.sha256(b'none').hexdigest()}"
    statuses = [
        http("GET", base + url, headers=bearer(tokens[base]))[0]
        for base in (r.a.base, r.b.base, r.a.base, r.b.base)
    ]
    # one budget: the third or fourth is refused (two per replica would serve all four)
    assert statuses[:2] == [404, 404] and 429 in statuses[2:], statuses

    # a revocation through the CLI is effective on the very next request, on either replica
    _cli(r, tmp, "key", "revoke", created["key_id"])
    for base in (r.a.base, r.b.base):
        status, body, _ = http("GET", base + url, headers=bearer(tokens[base]))
        assert status == 401, (status, body)
