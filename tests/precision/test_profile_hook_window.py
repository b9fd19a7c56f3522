"""A test that sets its own profile hook for a while and puts Maestro's back (``previous =
sys.getprofile(); sys.setprofile(f); ...; sys.setprofile(previous)``, as filelock's tests do)
ran code the recorder did not see meanwhile: before 3.12 the recorder's hook is a profile hook
too. Likewise a test that turns the hook off (the recorder takes it back as the test ends).
What the test then depends on is unknown, so a change re-runs it, as pytest would."""

from __future__ import annotations

import pytest
from precision_helpers import Workspace, ran_nodes

# the function it runs under its own hook is named nowhere in the code it runs (no name to
# follow from the test to the changed function)
HELPER = """\
    from pkg import calc


    def go():
        return getattr(calc, "tri" + "ple")(2)
    """

UNDER_ITS_OWN_HOOK = """\
    import sys

    from pkg import helper


    def test_calls_under_its_own_hook():
        previous = sys.getprofile()
        sys.setprofile(lambda *a: None)
        try:
            value = helper.go()
        finally:
            sys.setprofile(previous)
        assert value == 6
    """


IN_A_THREAD = """\
    import sys
    import threading

    from pkg import helper


    def test_calls_under_its_own_hook():
        values = []

        def work():
            previous = sys.getprofile()
            sys.setprofile(lambda *a: None)
            try:
                values.append(helper.go())
            finally:
                sys.setprofile(previous)

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        assert values == [6]
    """

# a recorded Python child (before 3.12 its recorder is cProfile's profiler too)
IN_A_CHILD = """\
    import subprocess
    import sys

    CODE = (
        "import sys\\n"
        "from pkg import helper\\n"
        "previous = sys.getprofile()\\n"
        "sys.setprofile(lambda *a: None)\\n"
        "value = helper.go()\\n"
        "sys.setprofile(previous)\\n"
        "assert value == 6, value\\n"
    )


    def test_calls_under_its_own_hook():
        subprocess.run([sys.executable, "-c", CODE], check=True)
    """

TURNS_IT_OFF = """\
    import sys

    from pkg import helper


    def test_calls_under_its_own_hook():
        sys.setprofile(None)
        assert helper.go() == 6
    """


@pytest.mark.parametrize(
    ("test", "hook"),
    [
        (UNDER_ITS_OWN_HOOK, "lsprof"),
        (UNDER_ITS_OWN_HOOK, "profile"),
        (IN_A_THREAD, "lsprof"),
        (IN_A_THREAD, "profile"),
        (IN_A_CHILD, "lsprof"),
        (TURNS_IT_OFF, "lsprof"),
        (TURNS_IT_OFF, "profile"),
    ],
    ids=[
        "put-back", "put-back-profile", "thread", "thread-profile", "child", "off",
        "off-profile",
    ],
)  # fmt: skip
def test_what_a_test_ran_under_its_own_profile_hook_is_not_served_past_a_change(
    ws: Workspace, test: str, hook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAESTRO_TRACE", hook)
    ws.write("pkg/helper.py", HELPER)
    ws.write("tests/test_window.py", test)
    assert ws.run().failed == 0
    ws.edit("pkg/calc.py", "return x * 3", "return x * 4")
    summary = ws.run()
    # plain pytest fails it now: triple(2) is 8
    assert "tests/test_window.py::test_calls_under_its_own_hook" in ran_nodes(summary)
    outcomes = {
        t.node_id: t.outcome
        for f in summary.files
        if f.result is not None and f.target == "tests/test_window.py"
        for t in f.result.tests
    }
    assert outcomes == {"tests/test_window.py::test_calls_under_its_own_hook": "failed"}


LEAVES_IT_ALONE = """\
    import subprocess
    import sys
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from pkg import calc


    def test_fails():
        assert calc.triple(1) == 4


    def test_passes():
        assert calc.double(1) == 2


    def test_threads():
        thread = threading.Thread(target=calc.double, args=(1,))
        thread.start()
        thread.join()
        with ThreadPoolExecutor(2) as pool:
            assert list(pool.map(calc.double, [1, 2])) == [2, 4]


    def test_child():  # its main code in a file: the child's record says what it ran
        subprocess.run([sys.executable, "-m", "pkg.child_main"], check=True)
    """
CHILD_MAIN = "from pkg import calc\n\nassert calc.double(1) == 2\n"


@pytest.mark.parametrize("hook", ["lsprof", "profile"])
def test_tests_that_leave_the_hook_alone_keep_their_own_record(
    ws: Workspace, hook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a module imported in a window, a failing test, threads and a child: the recorder takes
    # its own hook off and puts it back itself, and a new thread installs the recorder's, which
    # is no test's doing
    monkeypatch.setenv("MAESTRO_TRACE", hook)
    ws.write("tests/test_f.py", LEAVES_IT_ALONE)
    ws.write("pkg/child_main.py", CHILD_MAIN)
    ws.run()
    ws.edit("pkg/calc.py", "return double(x) + 1", "return 1 + double(x)")
    plan = ws.plan()
    assert [f.target for f in plan.files if f.runs] == ["tests/test_calc.py", "tests/test_f.py"]
    for f in plan.files:
        assert not any("whole workspace" in r for r in f.node_reasons.values()), f.node_reasons
    f = next(f for f in plan.files if f.target == "tests/test_f.py")
    assert f.run_nodes == ("tests/test_f.py::test_fails",)
