"""`maestro explain` of a test served from a result another machine ran (a teammate's or CI's,
through the team cache) says whose run it was: after a team hit it said "no input changed since
its last run", of a file this machine had never run (user trial of the team cache). The real
console script in a subprocess; the other machine is the same cache under another host name
(`MAESTRO_HOSTNAME`, which is what a result's provenance records)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from project_python import project_python
from testing_helpers import Workspace

MAESTRO = str(Path(sys.executable).with_name("maestro"))


def maestro(cwd: Path, host: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # rich's width when piped
    env.update(MAESTRO_DAEMON="off", MAESTRO_HOSTNAME=host)
    done = subprocess.run(
        [MAESTRO, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    return done.stdout + done.stderr


def test_explain_says_a_served_result_is_another_machines(ws: Workspace) -> None:
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write("tests/test_one.py", "def test_ok():\n    assert True\n")
    assert "1 passed" in maestro(ws.root, "laptop-a", "test", "tests/test_one.py")
    theirs = maestro(ws.root, "laptop-b", "explain", "tests/test_one.py::test_ok")
    assert "tests/test_one.py::test_ok is served from the cache: the run of " in theirs, theirs
    assert " on laptop-a stored a result for these exact inputs" in theirs, theirs
    # this machine's own result: as before
    mine = maestro(ws.root, "laptop-a", "explain", "tests/test_one.py::test_ok")
    assert "served from the cache: no input changed since its last run" in mine, mine
