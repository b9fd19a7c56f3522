"""A test that passes within its pytest-timeout under pytest passes under Maestro: before 3.12 a
run that records what each test executes (cProfile's hook) makes a call-heavy test several times
slower, so a file whose test runs out of its timeout there runs again as pytest runs it."""

from __future__ import annotations

import sys

import pytest
from test_fidelity_trials import outcomes
from testing_helpers import Workspace

from maestro.engine.interpreter import Interpreter

pytestmark = pytest.mark.skipif(
    sys.version_info >= (3, 12), reason="3.12's recorder does not slow a call-heavy test that much"
)

# about 0.2 s as pytest runs it here, several times that traced
WORK = """
def step(x):
    return (x * 31 + 7) % 1000003


def work(n):
    x = 1
    for _ in range(n):
        x = step(x)
    return x
"""


def test_a_test_timing_out_only_while_traced_keeps_pytests_outcome(
    ws: Workspace, interpreter_timeout: Interpreter
) -> None:
    ws.interpreter = interpreter_timeout
    ws.write("pkg/work.py", WORK)
    ws.write(
        "tests/test_work.py",
        "from pkg.work import work\n\n\ndef test_work():\n    work(3_000_000)\n",
    )
    first = ws.run()  # untraced: a file's first run
    assert outcomes(first)["tests/test_work.py::test_work"] == "passed"
    took = max(t.duration_s for r, _ in first.results() for t in r.tests)
    # a timeout three times what the test took as pytest runs it; its next run is traced
    timeout = f"timeout = {max(0.5, round(3 * took, 2))}"
    ws.edit("pyproject.toml", 'testpaths = ["tests"]', f'testpaths = ["tests"]\n{timeout}')
    summary = ws.run()
    assert outcomes(summary)["tests/test_work.py::test_work"] == "passed"
    assert any("pytest-timeout" in note for note in summary.confirmed), summary.confirmed
