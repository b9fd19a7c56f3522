"""A test that passes within its pytest-timeout under pytest passes under Maestro: before 3.12 a
run that records what each test executes (cProfile's hook) makes a call-heavy test several times
slower, so a file whose test runs out of its timeout there runs again as pytest runs it.

The test below is slow only while a profile or trace hook is set, so the traced run always runs
out of the timeout and pytest's run never does, however loaded the host (a real call-heavy test
is 2-5x slower traced, a ratio a busy host blurs)."""

from __future__ import annotations

import sys

import pytest
from test_fidelity_trials import outcomes
from testing_helpers import Workspace, ran

from maestro.engine.interpreter import Interpreter

pytestmark = pytest.mark.skipif(
    sys.version_info >= (3, 12), reason="3.12's recorder does not slow a call-heavy test that much"
)

WORK = """
import sys
import time


def work():
    # as slow as a call-heavy test under a profiler, only there
    if sys.getprofile() is not None or sys.gettrace() is not None:
        time.sleep(6)
    return 1
"""


def test_a_test_timing_out_only_while_traced_keeps_pytests_outcome(
    ws: Workspace, interpreter_timeout: Interpreter
) -> None:
    ws.interpreter = interpreter_timeout
    ws.write("pkg/work.py", WORK)
    ws.write("tests/test_work.py", "from pkg.work import work\n\n\ndef test_work():\n    work()\n")
    first = ws.run()  # untraced: a file's first run
    assert outcomes(first)["tests/test_work.py::test_work"] == "passed"
    ws.edit("pyproject.toml", 'testpaths = ["tests"]', 'testpaths = ["tests"]\ntimeout = 2')
    summary = ws.run()  # traced: the test runs out of its 2 s there, never under pytest
    assert outcomes(summary)["tests/test_work.py::test_work"] == "passed"
    assert any("pytest-timeout" in note for note in summary.confirmed), summary.confirmed
    stored = ws.run()  # the untraced run's pass was the one kept
    assert outcomes(stored)["tests/test_work.py::test_work"] == "passed"
    assert ran(stored) == []
