"""Python files a test module reads as text while it is collected (pycodestyle's
tests/test_data.py parametrizes one test per case of testing/data/*.py, each case's expected
codes written in a comment) are data of every node: an edit of one, even of a comment only,
re-runs the whole file. Judged per node, a comment's edit re-ran no node (no node read the
file while it ran, and its code did not change): a stale pass."""

from __future__ import annotations

from precision_helpers import Workspace, ran_nodes

CASES = "# expect: 1\nx = 1\n"
TEST = """\
import pathlib

import pytest

CASES = sorted(pathlib.Path(__file__).parent.joinpath("cases").glob("*.py"))


def _params():
    for path in CASES:
        text = path.read_text()
        expected = text.splitlines()[0].removeprefix("# expect: ")
        yield pytest.param(text, expected, id=path.name)


@pytest.mark.parametrize(("text", "expected"), list(_params()))
def test_case(text, expected):
    namespace = {}
    exec(text, namespace)
    assert str(namespace["x"]) == expected


def test_other():
    assert True
"""


def test_a_comment_of_a_python_case_file_read_at_collection_reruns_its_file(
    ws: Workspace,
) -> None:
    ws.write("tests/test_cases.py", TEST)
    ws.write("tests/cases/one.py", CASES)
    assert ws.run().failed == 0
    ws.edit("tests/cases/one.py", "# expect: 1", "# expect: 2")  # a comment: no code changed
    summary = ws.run()
    assert "tests/test_cases.py::test_case[one.py]" in ran_nodes(summary)
    assert summary.failed == 1
    # said of the file's collection, not of the node it is shown with (which never read it)
    (reasons,) = [f.planned.node_reasons for f in summary.files if not f.cached]
    assert set(reasons.values()) == {
        "depends on tests/cases/one.py, read outside any test while its file was collected, changed"
    }
