"""Real processes over loopback: the CLI administers the data dir, `serve` runs the server, and
Debian's ccache (a client nobody here wrote) gets a remote hit from a second, empty local cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CLI = "from maestro.cli.coordinator_cmd import coordinator_app; coordinator_app()"


def cli(tmp: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", CLI, *args],
        cwd=tmp,  # never the source tree (it would shadow the installed package)
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MAESTRO_COORDINATOR_DATA_DIR": str(tmp / "data")},
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    cli(tmp_path, "tenant", "add", "team")
    cli(tmp_path, "tenant", "add", "cc", "--raw-ac")
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "serve", "--port", "0", "--host", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "server.log", "wb"),  # noqa: SIM115
        env={**os.environ, "MAESTRO_COORDINATOR_DATA_DIR": str(tmp_path / "data")},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, (tmp_path / "server.log").read_text()
        port = int(json.loads(line)["port"])
        yield port, tmp_path
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _token(port: int, key: str) -> str:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/token",
        data=json.dumps({"api_key": key}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        token: str = json.load(resp)["token"]
        return token


@pytest.mark.slow
def test_cli_serve_revoke_end_to_end(server: tuple[int, Path]) -> None:
    port, tmp = server
    created = json.loads(cli(tmp, "key", "create", "team", "--role", "read-write", "--json"))
    token = _token(port, created["api_key"])
    url = f"http://127.0.0.1:{port}/team/cas/" + "0" * 64
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with pytest.raises(urllib.error.HTTPError) as miss:
        urllib.request.urlopen(req, timeout=10)
    assert miss.value.code == 404
    cli(tmp, "key", "revoke", created["key_id"])  # another process, while the server runs
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(req, timeout=10)
    assert denied.value.code == 401
    log = (tmp / "server.log").read_text()
    assert token not in log and created["api_key"] not in log
    assert '"status":401' in log


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("ccache") is None or shutil.which("gcc") is None,
    reason="needs Debian's ccache and gcc (apt-get install -y ccache)",
)
def test_ccache_remote_hit(server: tuple[int, Path]) -> None:
    port, tmp = server
    key = json.loads(cli(tmp, "key", "create", "cc", "--role", "read-write", "--json"))["api_key"]
    token = _token(port, key)
    src = tmp / "src"
    src.mkdir()
    (src / "hello.c").write_text('#include <stdio.h>\nint main(void){puts("hi");return 0;}\n')

    def compile_with(cache_dir: Path) -> dict[str, int]:
        env = {
            **os.environ,
            "CCACHE_DIR": str(cache_dir),
            "CCACHE_REMOTE_STORAGE": f"http://127.0.0.1:{port}/cc|layout=bazel|bearer-token={token}",
            "CCACHE_NOHASHDIR": "1",
        }
        subprocess.run(
            ["ccache", "gcc", "-c", "hello.c", "-o", "hello.o"],
            cwd=src,
            env=env,
            check=True,
            timeout=60,
        )
        stats = subprocess.run(
            ["ccache", "--print-stats"], env=env, capture_output=True, text=True, check=True
        ).stdout
        return {k: int(v) for k, v in (ln.split("\t") for ln in stats.splitlines() if "\t" in ln)}

    first = compile_with(tmp / "ccache-1")
    assert first.get("remote_storage_miss", 0) >= 1, first
    assert first.get("remote_storage_error", 0) == 0, first
    second = compile_with(tmp / "ccache-2")
    assert second.get("remote_storage_hit", 0) >= 1, second
    assert second.get("local_storage_hit", 0) == 0, second
