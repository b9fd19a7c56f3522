"""How `maestro test` ends: its output and exit status as usual, `atexit` handlers run, but not
the interpreter's finalization (tearing down every module and object of a run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from project_python import project_python
from testing_helpers import Workspace

MAESTRO = str(Path(sys.executable).with_name("maestro"))

# Loaded into the `maestro` process only (PYTHONPATH is not among the variables its pytest gets).
PROBE = """
import atexit, os

MARKS = {marks!r}


def _at_exit():
    open(os.path.join(MARKS, "atexit-ran"), "w").close()


atexit.register(_at_exit)


class _Finalized:
    def __del__(self, _open=os.open, _close=os.close, _path=os.path.join(MARKS, "finalized")):
        _close(_open(_path, 0o101, 0o600))  # O_WRONLY | O_CREAT


_sentinel = _Finalized()
"""


def test_maestro_test_ends_with_its_status_and_output_without_finalizing(
    ws: Workspace, tmp_path: Path
) -> None:
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write("tests/test_a.py", "def test_ok():\n    pass\n\ndef test_bad():\n    assert 1 == 2\n")
    marks = tmp_path / "marks"
    marks.mkdir()
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(PROBE.format(marks=str(marks)))
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env.update(MAESTRO_DAEMON="off", PYTHONPATH=str(site))
    done = subprocess.run(
        [MAESTRO, "test"], cwd=ws.root, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stdout + done.stderr
    summary = [line for line in done.stdout.splitlines() if " failed" in line]
    assert summary and "1 failed" in summary[-1] and "pytest" in summary[-1], done.stdout
    assert (marks / "atexit-ran").exists()
    assert not (marks / "finalized").exists()
    # the sentinel itself works: a plain interpreter exit finalizes it
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True, timeout=60)
    assert (marks / "finalized").exists()
