"""pytest failing before its session (a plugin's pytest_configure raising, as pytest-asyncio 1.x's
deprecation does under ``filterwarnings = error``): the error Maestro reports leads with the
exception's line. Before, it was the last five lines of stderr joined, INTERNALERROR> prefixes,
carets and the exception's long explanation included (~900 characters on blinker 1.9.0), the line
that says what is wrong in the middle of them, in the terminal and in the editor's message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from project_python import project_python
from testing_helpers import Workspace

MAESTRO = str(Path(sys.executable).with_name("maestro"))

CONFTEST = """
def pytest_configure(config):
    raise RuntimeError(
        "the plugin cannot start: set BOOM_HOME.\\n" + "A long explanation follows. " * 30
    )
"""


def test_a_failure_before_the_session_says_the_exception_first(
    ws: Workspace, tmp_path: Path
) -> None:
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write("conftest.py", CONFTEST)
    ws.write("tests/test_a.py", "def test_a():\n    assert True\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    plain = subprocess.run(
        [str(project_python()), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=ws.root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert plain.returncode == 3 and "RuntimeError: the plugin cannot start" in plain.stdout + (
        plain.stderr
    )
    env.update(
        MAESTRO_DAEMON="off",
        MAESTRO_CACHE_DIR=str(tmp_path / "cache"),
        MAESTRO_STATE_DIR=str(tmp_path / "state"),
    )
    done = subprocess.run(
        [MAESTRO, "test"], cwd=ws.root, env=env, capture_output=True, text=True, timeout=120
    )
    said = done.stdout + done.stderr
    assert done.returncode != 0, said
    (line,) = [x for x in said.splitlines() if "before the session started" in x]
    head = line.split("before the session started: ", 1)[1]
    assert head.startswith("RuntimeError: the plugin cannot start: set BOOM_HOME."), line
    assert "INTERNALERROR>" not in line and "A long explanation" not in line, line
    assert "conftest.py" in line, line  # where it was raised, after it
