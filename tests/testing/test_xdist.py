"""A workspace whose pytest configuration distributes the tests with pytest-xdist (``-n 2`` in
addopts, as many projects set it) runs under Maestro with pytest's outcomes: its workers would
run the tests where nothing records them, so the run is made in one pytest process (``-n 0``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_fidelity_trials import outcomes
from testing_helpers import Workspace, ran

from maestro.engine.interpreter import Interpreter, query_interpreter


@pytest.fixture(scope="session")
def interpreter_xdist(tmp_path_factory: pytest.TempPathFactory) -> Interpreter:
    """A venv on this environment's packages with pytest-xdist added (skipped when it cannot
    be installed here)."""
    venv = tmp_path_factory.mktemp("xdist") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "host.pth").write_text(str(Path(pytest.__file__).parent.parent) + "\n")
    try:
        subprocess.run(
            [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-deps",
             "pytest-xdist>=3", "execnet>=2"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"cannot install pytest-xdist here: {exc}")
    return query_interpreter(venv / "bin/python")


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
