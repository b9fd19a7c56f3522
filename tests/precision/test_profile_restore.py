"""Code that saves the profile hook and puts it back (``previous = sys.getprofile()``, ...,
``sys.setprofile(previous)``: filelock's capability probes at conftest import, its tests that
interrupt a lock with a profile function) runs under Maestro as under pytest, in the pytest
process and in a Python child; what ran under the other hook went unseen, so the test re-runs at
any change (tests/precision/test_profile_hook_window.py). Before 3.12 the hook
is cProfile's profiler, which ``sys.getprofile()`` returns: put back, it was called as a Python
profile function and raised ``TypeError: 'Profile' object is not callable``."""

from __future__ import annotations

from precision_helpers import Workspace

from maestro.engine.summary import Summary

PROBE = """\
    import sys


    def _probe():
        previous = sys.getprofile()
        sys.setprofile(lambda *a: None)
        try:
            pass
        finally:
            sys.setprofile(previous)


    _probe()
    """

TESTS = """\
    import subprocess
    import sys

    from pkg.calc import triple

    CHILD = (
        "import sys; previous = sys.getprofile(); sys.setprofile(None); "
        "sys.setprofile(previous); print('child ok')"
    )


    def test_puts_the_hook_back():
        previous = sys.getprofile()
        sys.setprofile(lambda *a: None)
        sys.setprofile(previous)
        assert triple(2) == 6


    def test_a_child_puts_the_hook_back():
        done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "child ok\\n"
    """


def _outcomes(summary: Summary) -> dict[str, str]:
    return {
        t.node_id: t.outcome
        for f in summary.files
        if f.result is not None and f.target == "tests/test_restore.py"
        for t in f.result.tests
    }


def test_code_that_puts_the_profile_hook_back_runs_as_under_pytest_and_is_recorded(
    ws: Workspace,
) -> None:
    ws.write("tests/conftest.py", PROBE)
    ws.write("tests/test_restore.py", TESTS)
    summary = ws.run()
    assert _outcomes(summary) == {
        "tests/test_restore.py::test_a_child_puts_the_hook_back": "passed",
        "tests/test_restore.py::test_puts_the_hook_back": "passed",
    }  # as plain pytest says
    # what the test ran while its own hook was set went unseen: its file depends on everything
    # (tests/precision/test_profile_hook_window.py), so an edit re-runs it
    ws.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    plan = ws.plan()
    restore = next(f for f in plan.files if f.target == "tests/test_restore.py")
    assert restore.runs
    assert restore.run_nodes is None or "tests/test_restore.py::test_puts_the_hook_back" in (
        restore.run_nodes
    )
