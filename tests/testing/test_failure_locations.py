"""A failure's location is printed as pytest prints it: rich read "tests/test_munch.py:100:" as
the emoji code ":100:" and printed "tests/test_munch.py💯 AssertionError" (munch 4.0.0, a failure
at line 100; ":1234:" is one too)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from project_python import project_python
from testing_helpers import Workspace

MAESTRO = str(Path(sys.executable).with_name("maestro"))


def test_a_failure_at_line_100_is_printed_with_its_line_number(
    ws: Workspace, tmp_path: Path
) -> None:
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    body = "# line\n" * 98 + "def test_bad():\n    assert 1 == 2\n"  # the assert on line 100
    ws.write("tests/test_hundred.py", body)
    env = {
        **os.environ,
        "MAESTRO_DAEMON": "off",
        "MAESTRO_CACHE_DIR": str(tmp_path / "cache"),
        "MAESTRO_STATE_DIR": str(tmp_path / "state"),
    }
    done = subprocess.run(
        [MAESTRO, "test", "--no-daemon", "--", "tests/test_hundred.py"],
        cwd=ws.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "tests/test_hundred.py:100: AssertionError" in done.stdout, done.stdout
    assert "\N{HUNDRED POINTS SYMBOL}" not in done.stdout
