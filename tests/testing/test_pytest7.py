"""A workspace whose venv holds pytest 7 (html5lib pins ``pytest<8``; the plugin supports
pytest 7+): the files its conftest collects itself run as under pytest. The collection probe
loaded the conftests through pytest 8's API, failed on every candidate, took each for a test
file, and pytest 7 refused the run ("found no collectors for ...")."""

from __future__ import annotations

import subprocess
import sys

import pytest
from test_custom_collectors import yaml_workspace
from test_fidelity_trials import outcomes
from testing_helpers import Workspace

from maestro.engine.interpreter import Interpreter, query_interpreter


@pytest.fixture(scope="session")
def interpreter_pytest7(tmp_path_factory: pytest.TempPathFactory) -> Interpreter:
    """A venv with pytest 7; skipped when it cannot be made here."""
    venv = tmp_path_factory.mktemp("pytest7") / "venv"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run(
            [str(venv / "bin/python"), "-m", "pip", "install", "-q", "pytest>=7,<8"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"cannot make a venv with pytest 7: {exc}")
    return query_interpreter(venv / "bin/python")


def test_files_a_conftest_collects_run_under_pytest_7(
    ws: Workspace, interpreter_pytest7: Interpreter
) -> None:
    yaml_workspace(ws)
    seven = Workspace(ws.root, interpreter_pytest7)
    expected = {
        "tests/specs/test_simple.yaml::hello": "passed",
        "tests/specs/test_simple.yaml::world": "passed",
        "tests/specs/test_more.yaml::one": "passed",
        "tests/specs/case_mod.py::alpha": "passed",
    }
    for _ in range(2):  # first run, then from the cache
        summary = seven.run()
        assert summary.exit_code == 0
        found = outcomes(summary)
        assert {node: found.get(node) for node in expected} == expected
        assert not any("README" in node or "notes.yaml" in node for node in found)
