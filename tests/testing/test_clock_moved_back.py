"""A test that moves pytest's clock backwards (freezegun, time-machine: they patch the time
functions pytest's timing module holds) gets a negative duration from pytest: its result is
still the test's, as in plain pytest's report."""

from __future__ import annotations

from testing_helpers import Workspace


def test_a_negative_duration_keeps_the_files_results(ws: Workspace) -> None:
    # freezegun 1.5.5's tests: a freeze_time started in one test and stopped in the next makes
    # the second one's duration about minus the time since 2000; the whole file's results were
    # dropped ("skipping invalid plugin event", "1 files did not finish", "0 passed").
    ws.write(
        "tests/test_clock.py",
        """
        import _pytest.timing as timing
        from time import perf_counter


        def test_winds_the_clock_forward():
            timing.perf_counter = lambda: perf_counter() + 1e6


        def test_winds_it_back():
            timing.perf_counter = perf_counter


        def test_after():
            assert False
        """,
    )
    summary = ws.run()
    tests = [t for r, _ in summary.results() for t in r.tests if "test_clock" in t.node_id]
    assert {t.node_id: t.outcome for t in tests} == {
        "tests/test_clock.py::test_winds_the_clock_forward": "passed",
        "tests/test_clock.py::test_winds_it_back": "passed",
        "tests/test_clock.py::test_after": "failed",
    }
    assert min(t.duration_s for t in tests) >= 0
    ws.edit("tests/test_clock.py", "assert False", "assert True")
    assert ws.run().failed == 0
