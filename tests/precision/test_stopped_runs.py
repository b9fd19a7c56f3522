"""A run that pytest stops early (``-x``, ``--maxfail``) leaves some tests Maestro had to run
(they executed changed code) unrun: their previous outcomes are no answer for the new code, so
no stored result may carry them."""

from __future__ import annotations

from precision_helpers import Workspace
from project_python import plain_pytest

from maestro.engine import testing

MODULE = "def f():\n    return 1\n"
TESTS = """
from pkg.m import f


def test_1():
    assert f() == 1


def test_2():
    assert f() == 1


def test_3():
    assert True
"""


def _outcomes(summary: testing.Summary) -> dict[str, str]:
    return {t.node_id: t.outcome for r, _ in summary.results() for t in r.tests}


def _pytest_failed(ws: Workspace, *args: str) -> set[str]:
    done = plain_pytest(ws.interpreter.path, ws.root, "-q", "-rf", *args)
    return {line.split(" ")[1] for line in done.stdout.splitlines() if line.startswith("FAILED ")}


def test_a_test_x_stopped_before_is_not_kept_as_it_was(ws: Workspace) -> None:
    # tinydb 4.9.0 under `maestro test -- -x`: `add` broken, pytest stopped after the first
    # failure and the file re-ran up to it; the 3 other tests that executed `add` kept their
    # previous passes, were stored so, and served again ("1 failed, 218 passed")
    ws.write("pkg/m.py", MODULE)
    ws.write("tests/test_stop.py", TESTS)
    stop = testing.Selection(pytest_args=("-x",))
    assert ws.run(stop).failed == 0
    ws.edit("pkg/m.py", "return 1", "return 2")  # test_1 and test_2 fail now
    assert _pytest_failed(ws, "-x") == {"tests/test_stop.py::test_1"}
    first = _outcomes(ws.run(stop))
    assert first["tests/test_stop.py::test_1"] == "failed"
    assert first.get("tests/test_stop.py::test_2") != "passed", first
    ws.edit(
        "tests/test_stop.py",
        "def test_1():\n    assert f() == 1",
        "def test_1():\n    assert f() == 2",
    )
    assert _pytest_failed(ws, "-x") == {"tests/test_stop.py::test_2"}
    after = _outcomes(ws.run(stop))
    assert after["tests/test_stop.py::test_1"] == "passed"
    assert after["tests/test_stop.py::test_2"] == "failed", after
