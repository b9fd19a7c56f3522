"""A Python child of a test that asks whether a workspace file is there without reading it
(``os.path.isfile``: an ``os.stat``, which raises no audit event) makes the test depend on it:
creating the file re-runs the test, which fails as under pytest (served as passed before; found
with yamllint, whose `python -m yamllint` looks for a `.yamllint` above its working folder)."""

from __future__ import annotations

from precision_helpers import Workspace, ran_nodes

CHILD_TEST = """
import subprocess
import sys


def test_child_sees_no_flag():
    code = "import os, sys; sys.exit(os.path.isfile('tests/flag.txt'))"
    subprocess.run([sys.executable, "-c", code], check=True)
"""


def test_a_file_a_child_checks_is_there_reruns_the_test_when_created(ws: Workspace) -> None:
    ws.write("tests/test_child.py", CHILD_TEST)
    assert ws.run().failed == 0
    assert ran_nodes(ws.run()) == []  # nothing changed: served
    ws.write("tests/flag.txt", "x\n")
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_child.py::test_child_sees_no_flag"]
    assert summary.failed == 1
