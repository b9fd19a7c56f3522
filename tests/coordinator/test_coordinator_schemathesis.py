"""schemathesis (a tool nobody here wrote) against the served /openapi.json of a real
`maestro coordinator serve`: every check except `positive_data_acceptance` (a schema cannot say
that a PUT body must hash to the digest in its path, so schema-valid random bodies are rightly
refused with 400). No 5xx, status codes, content types, headers and bodies conform. Bounded:
a fixed number of examples per operation and a fixed seed (override with MAESTRO_ST_SEED)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from coord_procs import (
    MAESTRO,
    NGINX,
    REDIS_SERVER,
    run_nginx,
    run_redis,
    start_coordinator,
    stop,
)

from maestro.coordinator.auth import new_key
from maestro.coordinator.models import Role
from maestro.coordinator.state import RedisState

SCHEMATHESIS = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.path.exists(SCHEMATHESIS),
        reason="schemathesis not installed (pip install schemathesis; it is in the dev extra)",
    ),
]
MAX_EXAMPLES = 10
SEED = os.environ.get("MAESTRO_ST_SEED", "1")
# One worker: with two, schemathesis' worker threads hit CPython 3.11.7's "AST constructor
# recursion depth mismatch" SystemError inside hypothesis (7 of 8 runs on a loaded host; 0 of 3
# with one worker): a crash of the tool, not a finding about the API.
ARGS = (
    "--checks all --exclude-checks positive_data_acceptance --workers 1 --request-timeout 10 "
    f"--no-color --max-examples {MAX_EXAMPLES} --seed {SEED}"
).split()
CONFIG = """\
headers = {{ Authorization = "Bearer {key}" }}
[parameters]
tenant = "alpha"
"""


def _run_schemathesis(tmp: Path, base: str, key: str) -> None:
    config = tmp / "schemathesis.toml"
    config.write_text(CONFIG.format(key=key))
    result = subprocess.run(
        [SCHEMATHESIS, "--config-file", str(config), "run", f"{base}/openapi.json", *ARGS],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "passed" in result.stdout


def _admin_key_embedded(data: Path) -> str:
    env = {**os.environ, "MAESTRO_COORDINATOR_DATA_DIR": str(data)}
    for args in (
        ["tenant", "add", "alpha"],
        ["key", "create", "alpha", "--role", "admin", "--json"],
    ):
        out = subprocess.run(
            [MAESTRO, "coordinator", *args],
            cwd=data,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    key: str = json.loads(out)["api_key"]
    return key


def test_schemathesis_embedded(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    key = _admin_key_embedded(data)
    server = start_coordinator(tmp_path, "data", {"access_log": "false"})
    try:
        _run_schemathesis(tmp_path, server.base, key)
    finally:
        stop(server.proc)
    assert "unhandled error" not in server.log.read_text()


@pytest.mark.skipif(REDIS_SERVER is None or NGINX is None, reason="needs redis-server and nginx")
def test_schemathesis_redis_and_upstream(tmp_path: Path) -> None:
    with run_redis(tmp_path) as redis, run_nginx(tmp_path) as nginx:

        async def bootstrap() -> str:
            state = RedisState.from_url(redis.url)
            try:
                await state.add_tenant("alpha")
                created = new_key("alpha", Role.ADMIN)
                await state.add_key(created.record)
                return created.plaintext
            finally:
                await state.close()

        key = asyncio.run(bootstrap())
        server = start_coordinator(
            tmp_path,
            "replica",
            {
                "access_log": "false",
                "state_backend": "redis",
                "redis_url": redis.url,
                "blob_backend": "http",
                "blob_upstream_url": nginx.url,
            },
        )
        try:
            _run_schemathesis(tmp_path, server.base, key)
        finally:
            stop(server.proc)
        assert "unhandled error" not in server.log.read_text()
