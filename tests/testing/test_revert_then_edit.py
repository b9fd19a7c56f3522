"""An edit that failed a test, undone (served from the cache), then an edit elsewhere: the next run
is judged against what the user last saw, not against the failing run that was undone (BA's
munch and bs4 trials: "test_f failed last time" for a test the last run served as passed, and
every file the undone edit touched re-ran)."""

from __future__ import annotations

from testing_helpers import Workspace, outcomes

PKG = "def f():\n    return 1\n\n\ndef g():\n    return 2\n"
TEST = """
import calc


def test_f():
    assert calc.f() == 1


def test_g():
    assert calc.g() == 2


def test_other():
    assert True
"""


def test_an_undone_failing_edit_is_not_the_reference_of_the_next_edit(ws: Workspace) -> None:
    ws.write("calc.py", PKG)
    ws.write("tests/test_f.py", TEST)
    ws.run()
    ws.run()  # a traced record
    ws.edit("calc.py", "return 1", "return 0")
    assert outcomes(ws.run())["tests/test_f.py::test_f"] == "failed"
    ws.edit("calc.py", "return 0", "return 1")
    back = ws.run()
    assert outcomes(back)["tests/test_f.py::test_f"] == "passed"
    ws.edit("calc.py", "return 2", "return 3")
    planned = next(f for f in ws.plan().files if f.target == "tests/test_f.py")
    # test_f runs again (judged by the failing run's per-test record: the served result has
    # none before 3.12), but is not said to have failed last time: the last run showed it pass
    said = planned.describe()
    assert "failed last time (as of the last run with a per-test record)" in said or (
        "failed last time" not in said
    ), said
    assert "tests/test_f.py::test_g" in (planned.run_nodes or ())
