"""A run of some of a file's tests chosen by the user (`-- -k`, a node id) records only what
those tests read; the file's other tests still depend on what they read in the full run. Before,
that run replaced the file's recorded deps: until the next full run `maestro impacted` of a data
file only a deselected test reads said "Nothing impacted", and `maestro test --impacted` after
an edit of it ran nothing while `maestro test` and pytest failed (prettytable: after
`maestro test -- -k title`, `maestro impacted tests/data/table_cjk.txt` listed nothing)."""

from __future__ import annotations

import pytest
from precision_helpers import Workspace

from maestro.engine import testing

TEST = """\
import pathlib

D = pathlib.Path(__file__).parent / "data"


def test_a():
    assert (D / "a.txt").read_text() == "a\\n"


def test_b():
    assert (D / "b.txt").read_text() == "b\\n"
"""


@pytest.mark.parametrize(
    "chosen",
    [
        testing.Selection(pytest_args=("-k", "test_b")),
        testing.Selection(paths=("tests/test_data.py::test_b",)),
    ],
    ids=["-k", "node id"],
)
def test_a_data_file_only_a_deselected_test_reads_stays_impacted(
    ws: Workspace, chosen: testing.Selection
) -> None:
    ws.write("tests/data/a.txt", "a\n")
    ws.write("tests/data/b.txt", "b\n")
    ws.write("tests/test_data.py", TEST)
    assert ws.run().failed == 0
    assert ws.run(chosen).failed == 0  # test_b alone: it never reads a.txt
    impacts = ws.graph().impacted([testing.Change("tests/data/a.txt", "modified")])
    assert "tests/test_data.py" in {i.target for i in impacts}
    ws.write("tests/data/a.txt", "changed\n")
    summary = ws.run(testing.Selection(impacted=True, paths=("tests/data/a.txt",)))
    assert summary.failed == 1  # as `maestro test` and plain pytest: test_a fails
