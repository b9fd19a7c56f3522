"""A test that runs mypy depends on the files mypy checks, though no audit event says it read
them: mypy 2 parses in native code (a Rust extension) and its incremental cache stands for the
files it then does not open. Real pytest children, real mypy, real LMDB; plain pytest is asked
for the truth first."""

from __future__ import annotations

import pytest
from project_python import project_python
from test_fidelity_trials import outcomes, pytest_says
from testing_helpers import Workspace

from maestro.engine.interpreter import query_interpreter

pytest.importorskip("mypy.api")

IN_PROCESS = """
from mypy import api


def test_types():
    out, err, code = api.run(["--no-error-summary", "--no-incremental", "check.py"])
    assert code == 0, out
"""

CHILD = """
import subprocess
import sys


def test_types():
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-fast-exit", "--no-error-summary", "check.py"],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stdout
"""


@pytest.mark.parametrize(
    "test", [IN_PROCESS, pytest.param(CHILD, marks=pytest.mark.extended)], ids=["api", "child"]
)
def test_a_test_that_runs_mypy_reruns_when_a_file_it_checked_changes(
    ws: Workspace, test: str
) -> None:
    # a test calling mypy.api.run on check.py (which imports pkg.typed) recorded no read of
    # either: after pkg/typed.py changed its signature, maestro test served it as passed where
    # pytest failed it
    ws.interpreter = query_interpreter(project_python("mypy"))  # a project venv with mypy
    ws.write("pkg/typed.py", "def f(x: int) -> int:\n    return x\n")
    ws.write("check.py", "from pkg.typed import f\n\nf(1)\n")
    ws.write("tests/test_types.py", test)
    assert outcomes(ws.run())["tests/test_types.py::test_types"] == "passed"
    ws.edit("pkg/typed.py", "x: int", "x: str")
    truth = pytest_says(ws, "tests/test_types.py")
    assert truth == {"tests/test_types.py::test_types": "failed"}
    assert outcomes(ws.run())["tests/test_types.py::test_types"] == "failed"
