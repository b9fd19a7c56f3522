"""Tests that run on pyfakefs's fake file system run at pytest's pace under Maestro.

pyfakefs replaces the `os`, `os.path`, `io` and `pathlib` of every loaded module while a test
runs on its fake file system, except in the modules on its skip list. The recorder's modules were
not on it: a test failing on a fake file system with pyfakefs's `additional_skip_names` hung for
minutes (formatting its failure stats sources; the recorder's probe normalised the path through
pyfakefs's `os.path`, whose caller check walks the stack, which stats through the probe again).
Seen on pyfakefs 6.3.2's own suite: plain pytest 19 s, `maestro test` still on its first run
after 6 minutes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from project_python import venv_with
from test_fidelity_trials import outcomes, pytest_says
from testing_helpers import Workspace

from maestro.engine import testing
from maestro.engine.interpreter import Interpreter

PYPROJECT = (
    '[project]\nname = "demo"\nversion = "0"\n\n[tool.pytest.ini_options]\npythonpath = ["."]\n'
)

FAILING = """
import os

import pytest


@pytest.mark.parametrize("fs", [[["helper"]]], indirect=True)
def test_fails_on_fake_fs(fs):
    fs.create_file("/data/c.txt", contents="c")
    with open("/data/c.txt") as f:
        assert f.read() == "d"


def test_plain():
    assert os.sep == "/"
"""


@pytest.fixture(scope="session")
def interpreter_fakefs(tmp_path_factory: pytest.TempPathFactory) -> Interpreter:
    """A venv on this environment's packages with pyfakefs added, as a project's venv holds it."""
    return venv_with(tmp_path_factory, "pyfakefs>=5")


def test_a_test_failing_on_a_fake_fs_with_skip_names_reports_at_pytests_pace(
    isolated: Path, interpreter_fakefs: Interpreter
) -> None:
    # a folder whose name starts with a dot (~/.local, a .venv): its paths take the probe's
    # normalising branch
    ws = Workspace(isolated / ".projects" / "ws", interpreter_fakefs)
    ws.write("pyproject.toml", PYPROJECT)
    ws.write("helper.py", "X = 1\n")
    ws.write("tests/test_failing.py", FAILING)
    done: list[testing.Summary] = []
    runner = threading.Thread(target=lambda: done.append(ws.run()), daemon=True)
    runner.start()
    runner.join(timeout=90)  # plain pytest: under a second
    assert done, "maestro test still running after 90 s"
    assert (
        outcomes(done[0])
        == pytest_says(ws)
        == {
            "tests/test_failing.py::test_fails_on_fake_fs[fs0]": "failed",
            "tests/test_failing.py::test_plain": "passed",
        }
    )
