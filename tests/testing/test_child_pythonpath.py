"""A test that starts a Python child with its own ``PYTHONPATH`` (``env={**os.environ,
"PYTHONPATH": "src"}``, as projects do to import their package from a child) drops the folder of
Maestro's recorder from it: the child leaves no record. What the child read and ran is then
unknown, so the test must depend on the whole workspace, and say why."""

from __future__ import annotations

import os

import pytest
from engine_workspace import load_plugin
from testing_helpers import Workspace

from maestro.engine import testing

TEST = """
import os
import subprocess
import sys


def test_child_checks_the_rate():
    env = {**os.environ, "PYTHONPATH": "."}
    subprocess.run(
        [sys.executable, "-c", "import pkg.rate\\nassert pkg.rate.RATE == 2, pkg.rate.RATE"],
        env=env, check=True,
    )
"""
NODE = "tests/test_child.py::test_child_checks_the_rate"


def outcomes(summary: testing.Summary) -> dict[str, str]:
    return {t.node_id: t.outcome for r, _ in summary.results() for t in r.tests}


def test_a_child_given_its_own_pythonpath_reruns_after_what_it_imports_changes(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAESTRO_TRACE", "always")  # per-node records from the first run on
    ws.write("pkg/rate.py", "RATE = 2\n")
    ws.write("tests/test_child.py", TEST)
    first = ws.run()
    assert outcomes(first)[NODE] == "passed"
    opaque = next(t.opaque for r, _ in first.results() for t in r.tests if t.node_id == NODE)
    # said "left no record (run with -I or -E, a cleared environment, or killed)" before
    assert [o.replace(str(ws.interpreter.path), "PY") for o in opaque] == [
        "ran PY with a PYTHONPATH that leaves out Maestro's recorder folder: it leaves no"
        " record, what it read is unknown"
    ]
    ws.write("pkg/rate.py", "RATE = 5\n")  # only the child imports it
    assert outcomes(ws.run())[NODE] == "failed"


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["python3", "-I", "-c", "pass"], "the flag -I"),
        (["python3", "-bE", "x.py"], "the flag -E"),
        (["python3", "-W", "Ignore", "-S", "x.py"], "the flag -S"),
        (["python3", "-WIgnore", "-c", "import x"], None),
        (["python3", "-c", "-I"], None),
        (["python3", "x.py", "-I"], None),
        (["black", "-E"], None),  # a console script's own flags
    ],
)
def test_which_python_children_leave_out_the_recorder(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], why: str | None
) -> None:
    record = load_plugin(monkeypatch).rec
    here = os.path.dirname(record.__file__)
    env = {"MAESTRO_CHILD_DIR": "/tmp/x", "PYTHONPATH": f"{here}{os.pathsep}src"}
    dropped = record.recorder_dropped
    assert dropped("subprocess.Popen", (argv[0], argv, None, env), argv[0]) == why
    assert dropped("subprocess.Popen", (argv[0], argv, None, {**env, "PYTHONPATH": "src"}),
                   argv[0]) == "a PYTHONPATH that leaves out Maestro's recorder folder"  # fmt: skip
    assert dropped("os.posix_spawn", (argv[0], argv, {"PYTHONPATH": here}), argv[0]) == (
        "an environment without MAESTRO_CHILD_DIR"
    )
