"""A data file a workspace library module's code read, and may keep (a table loaded lazily into a
global), re-runs every node of each test file importing the module; the reason says so in terms
of that module, never of a node that did not read the file (sqlparse: 'test_x.py::test_y
sqlparse/cli.py read tests/files/begintag.sql, changed' named a test that never read it)."""

from __future__ import annotations

import pytest
from precision_helpers import Workspace, ran_nodes

LAZY = """\
from pathlib import Path

_TABLE = None


def table():
    global _TABLE
    if _TABLE is None:
        _TABLE = Path(__file__).parent.joinpath("rows.txt").read_text().split()
    return _TABLE


def unrelated():
    return 1
"""


def test_a_lazily_kept_table_reruns_a_later_test_that_never_read_it(ws: Workspace) -> None:
    ws.write("pkg/rows.py", LAZY)
    ws.write("pkg/rows.txt", "a b\n")
    ws.write(
        "tests/test_first.py",
        "from pkg.rows import table\n\n\ndef test_reads():\n    assert table() == ['a', 'b']\n",
    )
    # runs after test_first.py: served from the global, it never reads rows.txt itself
    ws.write(
        "tests/test_later.py",
        "from pkg.rows import table, unrelated\n\n\n"
        "def test_served():\n    assert table() == ['a', 'b']\n\n\n"
        "def test_other():\n    assert unrelated() == 1\n",
    )
    assert ws.run().failed == 0
    ws.write("pkg/rows.txt", "a b c\n")
    plan = ws.plan()
    later = next(f for f in plan.files if f.target == "tests/test_later.py")
    why = (
        "pkg/rows.py, which this file imports, read pkg/rows.txt (changed) "
        "and may keep what it read"
    )
    assert later.run_nodes is None  # the whole file
    assert later.node_reasons == {
        "tests/test_later.py::test_served": why,
        "tests/test_later.py::test_other": why,
    }
    assert later.describe().endswith(f"the whole file: {why}")  # said of the file
    summary = ws.run()
    assert {"tests/test_first.py::test_reads", "tests/test_later.py::test_served"} <= set(
        ran_nodes(summary)
    )
    assert summary.failed == 2  # as plain pytest: both see the new table


@pytest.mark.extended
def test_a_test_module_that_read_the_file_is_told_as_this_file(ws: Workspace) -> None:
    """Under --doctest-modules the reading module is a test file too: its own nodes are told
    that this file read it, not that it imports itself."""
    ws.write(
        "pyproject.toml",
        '[project]\nname = "demo"\nversion = "0"\n\n[tool.pytest.ini_options]\n'
        'testpaths = ["pkg", "tests"]\naddopts = "--doctest-modules"\n',
    )
    ws.write("pkg/rows.py", LAZY.replace("def unrelated():\n", 'def unrelated():\n    """\n'
             "    >>> table()\n    ['a', 'b']\n    \"\"\"\n"))  # fmt: skip
    ws.write("pkg/rows.txt", "a b\n")
    ws.write(
        "tests/test_later.py",
        "from pkg.rows import table\n\n\ndef test_served():\n    assert table() == ['a', 'b']\n",
    )
    assert ws.run().failed == 0
    ws.write("pkg/rows.txt", "a b c\n")
    plan = ws.plan()
    own = next(f for f in plan.files if f.target == "pkg/rows.py")
    assert own.node_reasons == {
        "pkg/rows.py::pkg.rows.unrelated": (
            "this file read pkg/rows.txt (changed) and may keep what it read"
        )
    }
    assert ws.run().failed == 2
