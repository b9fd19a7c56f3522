"""A workspace whose pytest configuration distributes the tests with pytest-xdist (``-n 2`` in
addopts, as many projects set it) runs under Maestro with pytest's outcomes: its workers would
run the tests where nothing records them, so the run is made in one pytest process (``-n 0``)."""

from __future__ import annotations

from test_fidelity_trials import outcomes
from testing_helpers import Workspace, ran

from maestro.engine.interpreter import Interpreter


def test_tests_distributed_by_xdist_run_record_and_cache(
    ws: Workspace, interpreter_xdist: Interpreter
) -> None:
    ws.interpreter = interpreter_xdist
    ws.edit("pyproject.toml", 'testpaths = ["tests"]', 'testpaths = ["tests"]\naddopts = "-n 2"')
    first = ws.run()
    assert outcomes(first) == {
        "tests/test_a.py::test_add": "passed",
        "tests/test_b.py::test_mul": "passed",
        "tests/test_c.py::test_square": "passed",
        "tests/test_c.py::test_square_zero": "passed",
        "tests/test_data.py::test_data": "passed",
    }
    assert ran(ws.run()) == []
    ws.edit("pkg/b.py", "return a * b", "return a * b + 1")
    again = ws.run()
    assert ran(again) == ["tests/test_b.py", "tests/test_c.py"]
    assert outcomes(again)["tests/test_b.py::test_mul"] == "failed"
