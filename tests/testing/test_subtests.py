"""Subtests (pytest's own from 9.0, `unittest.TestCase.subTest`): a failed subtest fails its test
in pytest's JUnit XML and its exit code even when the test function itself returns. Found on
cachetools, whose threading tests loop over `self.subTest(info=...)`: Maestro recorded and cached
those tests as passed and exited 0 where pytest said "1 failed". Real pytest children, real LMDB."""

from __future__ import annotations

import pytest
from test_fidelity_trials import outcomes, pytest_says
from testing_helpers import Workspace

from maestro.engine import testing

SUBTESTS = """
import unittest

import pytest


class T(unittest.TestCase):
    def test_unittest(self):
        for i in range(3):
            with self.subTest(i=i):
                assert i != BAD_UNITTEST, "unittest subtest fails"


def test_fixture(subtests):
    for i in range(3):
        with subtests.test(msg="part", i=i):
            assert i != BAD_FIXTURE, "fixture subtest fails"


def test_skips_one(subtests):
    with subtests.test(msg="s"):
        pytest.skip("not here")


def test_all_pass(subtests):
    with subtests.test(msg="fine"):
        pass
"""


def ours(summary: testing.Summary) -> dict[str, str]:
    return {n: o for n, o in outcomes(summary).items() if n.startswith("tests/test_sub.py")}


def write(ws: Workspace, bad_unittest: int, bad_fixture: int) -> None:
    ws.write(
        "tests/test_sub.py",
        f"BAD_UNITTEST = {bad_unittest}\nBAD_FIXTURE = {bad_fixture}\n{SUBTESTS}",
    )


@pytest.fixture(autouse=True)
def _needs_builtin_subtests() -> None:
    pytest.importorskip("_pytest.subtests", reason="subtests are built into pytest from 9.0")


def test_a_failed_subtest_fails_its_test_as_under_pytest(ws: Workspace) -> None:
    write(ws, bad_unittest=1, bad_fixture=2)
    truth = pytest_says(ws)
    junit = {  # pytest's JUnit XML: what a CI server shows per test
        "tests/test_sub.py::T::test_unittest": "failed",
        "tests/test_sub.py::test_fixture": "failed",
        "tests/test_sub.py::test_skips_one": "skipped",
        "tests/test_sub.py::test_all_pass": "passed",
    }
    assert truth["tests/test_sub.py::test_fixture"] == "failed"  # pytest's own line for it
    summary = ws.run()
    assert ours(summary) == junit
    assert summary.exit_code == 1
    # pytest's summary line for the file: "3 failed, 3 passed, 1 skipped, 5 subtests passed"
    others = len(outcomes(summary)) - len(junit)  # the sample workspace's passing tests
    assert (summary.failed, summary.passed, summary.skipped) == (3, 3 + others, 1)
    messages = {t.node_id: t.message for r, _ in summary.results() for t in r.tests}
    assert "(i=1)" in (messages["tests/test_sub.py::T::test_unittest"] or "")
    assert "unittest subtest fails" in (messages["tests/test_sub.py::T::test_unittest"] or "")
    assert "[part] (i=2)" in (messages["tests/test_sub.py::test_fixture"] or "")
    # a failure is never served as a pass: the next run runs it again and says the same
    again = ws.run()
    assert ours(again) == junit
    assert again.exit_code == 1


def test_fixed_subtests_pass_then_are_served(ws: Workspace) -> None:
    write(ws, bad_unittest=1, bad_fixture=2)
    assert ws.run().exit_code == 1
    write(ws, bad_unittest=-1, bad_fixture=-1)
    summary = ws.run()
    assert summary.exit_code == 0
    assert outcomes(summary)["tests/test_sub.py::T::test_unittest"] == "passed"
    assert outcomes(ws.run())["tests/test_sub.py::test_fixture"] == "passed"
