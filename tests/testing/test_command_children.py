"""A test whose Python child runs code given on its command line (``python -c``) re-runs when a
workspace module that child imported changes, whatever the change: that code is in no file the
graph fingerprints, so which names of the module it read is unknown.

Seen on a user trial: a test ran ``python -c "import helper; print(helper.X)"``; after
``X = 1`` became ``X = 2`` plain pytest said 1 failed, Maestro served 1 passed from the cache
(the child's record said it executed helper's module body, and no function that spells X)."""

from __future__ import annotations

from test_fidelity_trials import outcomes, pytest_says
from testing_helpers import Workspace

CHILD = """
import os
import subprocess
import sys


def test_child_reads_helper():
    out = subprocess.run(
        [sys.executable, "-c", "import helper; print(helper.X)"],
        capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    assert out.stdout == "1\\n", out


def test_unrelated():
    assert True
"""

NODE = "tests/test_child.py::test_child_reads_helper"


def mine(found: dict[str, str]) -> dict[str, str]:
    return {node: outcome for node, outcome in found.items() if "test_child.py" in node}


def test_a_constant_read_by_command_line_code_of_a_child_reruns_its_test(ws: Workspace) -> None:
    ws.write("helper.py", "X = 1\n")
    ws.write("tests/test_child.py", CHILD)
    ws.run()
    ws.edit("tests/test_child.py", "def test_unrelated():", "def test_unrelated():  # edited")
    second = ws.run()  # the file's per-test records
    assert mine(outcomes(second)) == {
        NODE: "passed",
        "tests/test_child.py::test_unrelated": "passed",
    }
    ws.edit("helper.py", "X = 1", "X = 2")
    after = ws.run()
    assert mine(outcomes(after))[NODE] == "failed"
    assert mine(outcomes(after)) == mine(pytest_says(ws))
    ws.edit("helper.py", "X = 2", "X = 1")
    assert mine(outcomes(ws.run()))[NODE] == "passed"
