"""`maestro status` with no daemon says what it can read without one. User trials (VA, VB):
its help promises "the workspace daemon, its graph and the cache (never starts the daemon)",
but without a daemon it printed only "daemon not running ... start it: maestro daemon start".
The real console script in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from project_python import project_python

MAESTRO = str(Path(sys.executable).with_name("maestro"))


def maestro(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # rich's width when piped
    env.update(MAESTRO_DAEMON="off")
    return subprocess.run(
        [MAESTRO, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_status_without_a_daemon_shows_the_saved_graph_index_and_the_cache(
    isolated: Path,
) -> None:
    root = isolated / "ws"
    (root / "tests").mkdir(parents=True)
    (root / "maestro.toml").write_text(f"interpreter = {str(project_python())!r}\n")
    (root / "tests/test_a.py").write_text("def test_a():\n    pass\n")

    before = maestro(root, "status")
    assert before.returncode == 1, before
    assert "daemon not running for" in before.stdout, before.stdout
    assert "graph  not loaded, and no build saved an index yet" in before.stdout, before.stdout
    assert "cache  none yet at" in before.stdout, before.stdout
    assert not (isolated / "cache").exists()  # it reads, never creates

    assert "1 passed" in maestro(root, "test").stdout
    after = maestro(root, "status")
    assert after.returncode == 1, after
    assert "daemon not running for" in after.stdout, after.stdout
    assert "saved an index of 1 scanned file\n" in after.stdout, after.stdout
    assert "cache  1 result, " in after.stdout, after.stdout
    data = json.loads(maestro(root, "status", "--json").stdout)
    assert data["running"] is False
    assert data["graph_index"]["scanned_files"] == 1
    assert data["cache"]["actions"] == 1
