"""Which earlier result a change is judged against.

Before 3.12 a cold run is untraced. An edit then re-runs whole files (and records them); undoing
it serves the cold run's results again (same key). The next edit was judged against those, the
nearest, which have no record: whole files again, at every edit after an undo (python-dateutil
in the fidelity bench: 14 files for a constant read by 4). An older result of the same file that
has a record judges it per node."""

from __future__ import annotations

import sys

import pytest
from precision_helpers import Workspace, ran_nodes

READS_AFTER_A_CALL = (
    "import pathlib\n\nfrom pkg import calc\n\n\ndef test_reads():\n"
    "    assert calc.triple(1) == 3\n"
    "    assert pathlib.Path('tests/values.txt').read_text().strip() == 'ok'\n"
)


def edit_and_undo(ws: Workspace) -> None:
    """An edit that makes a test fail before it reads its data file (its run records other
    inputs than the first run's), then the edit undone: the tree is the first run's again."""
    ws.write("tests/test_data.py", READS_AFTER_A_CALL)
    assert ws.run().failed == 0
    ws.edit("pkg/calc.py", "return x * 3", "return x * 4")
    assert ws.run().failed == 2  # test_triple, test_reads
    ws.edit("pkg/calc.py", "return x * 4", "return x * 3")


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ traces every run (cheap)")
def test_an_edit_after_an_undo_is_judged_against_a_traced_result(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAESTRO_TRACE")
    first = ws.run()
    assert first.report is not None and first.report.session_trace is None
    ws.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    ws.run()  # whole files, traced
    ws.edit("pkg/calc.py", "return 3 * x", "return x * 3")
    assert ran_nodes(ws.run()) == []  # the cold run's results, served again
    ws.edit("pkg/calc.py", "return x * RATE", "return RATE * x")
    summary = ws.run()
    # against the traced result: triple changed back (its test re-runs), double changed
    assert ran_nodes(summary) == [
        "tests/test_calc.py::test_combo",
        "tests/test_calc.py::test_double",
        "tests/test_calc.py::test_triple",
    ]
    assert summary.failed == 0


def test_an_undone_edit_that_changed_what_a_test_read_is_served_from_the_cache(
    ws: Workspace,
) -> None:
    # the edit makes the test fail before it reads its data file: the edit's run records other
    # inputs than the first run, so keying the undone file by them named no stored result
    edit_and_undo(ws)
    undone = ws.run()
    assert ran_nodes(undone) == []
    assert (undone.failed, undone.passed) == (0, 5)
    # still keyed by what the first run read: its data file changes the test's outcome
    ws.edit("tests/values.txt", "ok", "changed")
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_data.py::test_reads"]
    assert summary.failed == 1


def test_an_undone_edit_is_not_served_past_a_conftest_added_since(ws: Workspace) -> None:
    # the earlier result never read the new conftest (it was not there): not a result for now
    edit_and_undo(ws)
    ws.write("tests/conftest.py", "import pytest\n\n\n@pytest.fixture(autouse=True)\n"
             "def broken():\n    raise RuntimeError('set-up fails')\n")  # fmt: skip
    summary = ws.run()
    assert summary.passed == 0
    assert summary.errors == 5


def test_after_an_undone_edit_is_served_the_next_edit_is_judged_per_node(ws: Workspace) -> None:
    edit_and_undo(ws)
    assert ran_nodes(ws.run()) == []
    # judged against the result served, as its own run recorded it: the data file the edit's
    # run never reached is no change
    ws.edit("pkg/calc.py", "return x * RATE", "return RATE * x")
    assert ran_nodes(ws.run()) == [
        "tests/test_calc.py::test_combo",
        "tests/test_calc.py::test_double",
    ]


def test_an_edit_after_an_undone_one_is_not_judged_by_a_file_a_session_hook_read_then(
    ws: Workspace,
) -> None:
    # a conftest hook reads every case file at session start (an input of every test file); a
    # case added, then removed: the next edit is judged against the first run's result, where
    # the removed case, absent as then, is no change
    ws.write(
        "tests/conftest.py",
        "import pathlib\n\n\ndef pytest_sessionstart(session):\n"
        "    for case in sorted(pathlib.Path('tests/cases').glob('*.txt')):\n"
        "        assert case.read_text().strip() == 'ok'\n",
    )
    ws.write("tests/cases/a.txt", "ok\n")
    assert ws.run().failed == 0
    ws.write("tests/cases/b.txt", "ok\n")
    ws.run()
    (ws.root / "tests/cases/b.txt").unlink()
    assert ran_nodes(ws.run()) == []
    ws.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    assert ran_nodes(ws.run()) == ["tests/test_calc.py::test_triple"]


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ traces every run (cheap)")
def test_an_untraced_result_served_again_is_kept_for_later_undone_edits(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the cold run's untraced results are served at each undo but stay no baseline; three edits
    # later (each undone) they must still be kept: the third edit's run records other inputs
    # (the test fails before it reads its data file), so only an earlier result serves its undo
    monkeypatch.delenv("MAESTRO_TRACE")
    ws.write("tests/test_data.py", READS_AFTER_A_CALL)
    assert ws.run().failed == 0
    for old, new in [
        ("return double(x) + 1", "return 1 + double(x)"),
        ("return x * RATE", "return RATE * x"),
        ("return x * 3", "return x * 4"),
    ]:
        ws.edit("pkg/calc.py", old, new)
        ws.run()
        ws.edit("pkg/calc.py", new, old)
        undone = ws.run()
        assert ran_nodes(undone) == []
        assert (undone.failed, undone.passed) == (0, 5)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ traces every run (cheap)")
def test_a_failing_edit_of_a_test_confirmed_by_a_rerun_keeps_the_result_its_undo_returns_to(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the edit adds a data file and makes one test of the file read it and fail; its failure
    # is confirmed by re-running the file up to it, which stores the edit's result again: that
    # must not push out the cold run's result, the one the undo returns to
    monkeypatch.delenv("MAESTRO_TRACE")
    ws.write("tests/test_data.py", READS_AFTER_A_CALL.replace("\ndef test_reads", TEST_BEFORE))
    assert ws.run().failed == 0
    ws.edit("pkg/calc.py", "return double(x) + 1", "return 1 + double(x)")
    ws.run()
    ws.edit("pkg/calc.py", "return 1 + double(x)", "return double(x) + 1")
    assert ran_nodes(ws.run()) == []
    ws.write("tests/other.txt", "bad\n")
    ws.edit("tests/test_data.py", "tests/values.txt", "tests/other.txt")
    assert ws.run().failed == 1
    ws.edit("tests/test_data.py", "tests/other.txt", "tests/values.txt")
    (ws.root / "tests/other.txt").unlink()
    undone = ws.run()
    assert ran_nodes(undone) == []
    assert (undone.failed, undone.passed) == (0, 6)


TEST_BEFORE = "\ndef test_before():\n    assert True\n\n\ndef test_reads"


def test_an_edit_after_an_undone_module_level_edit_is_judged_against_the_result_it_narrows(
    ws: Workspace,
) -> None:
    # found on pyflakes: a module-level line of checker.py edited (every test re-runs), undone
    # with a test helper edited (run), that undone too and a function body edited. Two kept
    # results then differ from the tree by checker.py alone; against the newer, the line put
    # back counted as a change: all 796 tests re-ran, told "module-level code changed at
    # pyflakes/checker.py:23", a line the user had restored
    names = "import builtins\n\nRATE = 2\nNAMES = frozenset(dir(builtins)) | {'a'}\n"
    ws.edit("pkg/calc.py", "RATE = 2\n", names)
    assert ws.run().failed == 0
    ws.edit("pkg/calc.py", "{'a'}", "{'b'}")
    assert "tests/test_calc.py::test_triple" in ran_nodes(ws.run())  # module-level: every test
    # undone with a test edited: run, the newest result holds neither edit
    ws.edit("pkg/calc.py", "{'b'}", "{'a'}")
    ws.edit("tests/test_calc.py", "calc.combo(1) == 1 +", "calc.combo(1) - 1 ==")
    assert ran_nodes(ws.run()) == ["tests/test_calc.py::test_combo"]
    ws.edit("tests/test_calc.py", "calc.combo(1) - 1 ==", "calc.combo(1) == 1 +")
    ws.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    reasons = [f.describe() for f in ws.plan().files if f.runs]
    assert not any("module-level" in r for r in reasons), reasons
    assert ran_nodes(ws.run()) == ["tests/test_calc.py::test_triple"]
