"""Admin commands against replicas' Redis that does not answer: `maestro coordinator tenant add`
and `key rotate` fail with the Redis URL or what could not be done, and say that nothing was
changed (the real CLI, a port nothing listens on)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from coord_procs import MAESTRO


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    config = tmp_path / "coordinator.toml"
    config.write_text(
        f'state_backend = "redis"\nredis_url = "{url}"\n'
        'blob_backend = "http"\nblob_upstream_url = "http://127.0.0.1:9/"\n'
        f'data_dir = "{tmp_path / "data"}"\n'
    )
    return subprocess.run(
        [MAESTRO, "coordinator", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_tenant_add_names_the_unreachable_redis(tmp_path: Path) -> None:
    done = _run(tmp_path, "tenant", "add", "acme")
    said = done.stdout + done.stderr
    assert done.returncode != 0
    assert "could not reach the replicas' Redis (redis://127.0.0.1:" in said
    assert "nothing was changed" in said


def test_key_rotate_says_the_keys_were_not_rotated(tmp_path: Path) -> None:
    done = _run(tmp_path, "key", "rotate")
    said = done.stdout + done.stderr
    assert done.returncode != 0
    assert "could not rotate the replicas' token keys in Redis" in said
    assert "nothing was changed" in said
