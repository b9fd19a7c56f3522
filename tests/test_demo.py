"""`make run` runs `maestro demo`: it must work on a fresh machine and show the cache at work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "maestro.cli", "demo", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # not the repo root, whose maestro/ folder would shadow the installed package
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "3 test files: 0 cached (0 tests), 3 to run" in out  # first run
    assert "3 test files: 3 cached (7 tests), 0 to run" in out  # nothing changed
    assert "2 test files impacted by 1 change" in out  # the edit, with reasons
    assert "imports shapes.geometry (line 1) → src/shapes/geometry.py" in out
    assert "2 test files: 0 cached (0 tests), 2 to run" in out  # only the impacted re-run
    assert "read it while running (recorded) → tests/data/cases.json" in out
