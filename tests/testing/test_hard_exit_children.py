"""A Python child that ends with ``os._exit`` (mypy does, to skip freeing its objects; so does a
tool that exits from a worker thread) runs no atexit handler: its record must still be written,
else the test that started it depends on the whole workspace and re-runs at every edit. (wrapt
2.5.2: its conftest runs mypy on each tests/mypy/*.py and compares the output with a .out file;
all 37 of those nodes re-ran after any edit.)"""

from __future__ import annotations

import pytest
from testing_helpers import Workspace, ran

from maestro.engine import testing

TEST = """
import subprocess
import sys


def test_child_reads_the_data():
    out = subprocess.run(
        [sys.executable, "-c",
         "import os, sys\\nsys.stdout.write(open('tests/data.txt').read())\\n"
         "sys.stdout.flush()\\nos._exit(0)"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert out.strip() == "ok"
"""


def outcomes(summary: testing.Summary) -> dict[str, str]:
    return {t.node_id: t.outcome for r, _ in summary.results() for t in r.tests}


def test_a_child_ending_with_os_exit_leaves_its_record(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAESTRO_TRACE", "always")  # per-node records from the first run on
    ws.write("tests/test_child.py", TEST)
    node = "tests/test_child.py::test_child_reads_the_data"
    first = ws.run()
    assert outcomes(first)[node] == "passed"
    assert next(t.opaque for r, _ in first.results() for t in r.tests if t.node_id == node) == []
    ws.edit("pkg/b.py", "return a * b", "return b * a")  # nothing the child or the test read
    assert "tests/test_child.py" not in ran(ws.run())
    ws.write("tests/data.txt", "changed\n")  # what the child read
    assert outcomes(ws.run())[node] == "failed"
