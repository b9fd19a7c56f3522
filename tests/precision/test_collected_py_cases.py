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


READS_OTHER = """\
import pathlib


def test_reads_other_source():
    assert "def test_data" in pathlib.Path(__file__).with_name("test_b.py").read_text()
"""
READS_DATA = """\
import pathlib


def test_data():
    assert pathlib.Path(__file__).with_name("data.txt").read_text() == "1\\n"
"""


def test_a_data_file_reached_through_another_test_file_is_not_said_read_at_collection(
    ws: Workspace,
) -> None:
    """A test that reads another test file's source (Hypothesis reads every loaded module's, for
    its constants: jsonpatch's property_tests.py and tests.py) has that file's data as inputs
    too; its edit re-runs the reader whole, said as what it is: neither the reader's collection
    nor its tests read the data ('read outside any test while its file was collected' was
    wrong)."""
    ws.write("tests/test_a.py", READS_OTHER)
    ws.write("tests/test_b.py", READS_DATA)
    ws.write("tests/data.txt", "1\n")
    assert ws.run().failed == 0
    ws.write("tests/data.txt", "2\n")
    plan = ws.plan()
    reader = next(f for f in plan.files if f.target == "tests/test_a.py")
    assert reader.node_reasons == {
        "tests/test_a.py::test_reads_other_source": "depends on tests/data.txt (changed) "
        "through another file its run imported or read, not by a read of its own "
        "(`maestro impacted tests/data.txt` shows the chain)"
    }
    summary = ws.run()
    assert "tests/test_a.py::test_reads_other_source" in ran_nodes(summary)
    assert summary.failed == 1  # as plain pytest: test_b's test, test_a's passes
