"""pytest's own report of a raising test formats its traceback from the source files of its
frames (through linecache). That text is the report's, not the test's: the outcome was decided
by the code that ran, which the node's record already holds. (A test that formats a traceback
itself, and judges it, still reads the files it shows: test_node_selection.py.)"""

from __future__ import annotations

from precision_helpers import Workspace, ran_nodes

XFAIL_AND_PASS = (
    "import pytest\n\n\n"
    "@pytest.mark.xfail(reason='not implemented', strict=False)\n"
    "def test_expected_to_fail():\n"
    "    raise NotImplementedError('later')\n\n\n"
    "def test_passes():\n"
    "    assert 1 + 1 == 2\n"
)


def test_an_expected_failure_does_not_rerun_for_an_edit_its_traceback_showed_nothing_of(
    ws: Workspace,
) -> None:
    ws.write("tests/test_marks.py", XFAIL_AND_PASS)
    first = ws.run()
    assert first.failed == 0
    ws.edit("tests/test_marks.py", "assert 1 + 1 == 2", "assert 2 + 2 == 4")
    summary = ws.run()
    # before: the xfailed node re-ran too, 'read tests/test_marks.py, changed' (its report's
    # traceback text), although nothing it ran changed
    assert ran_nodes(summary) == ["tests/test_marks.py::test_passes"]
    assert summary.failed == 0
