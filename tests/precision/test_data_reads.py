"""A data file read through a workspace library function, end to end (real pytest children, a
real cache): it counts for the test file reading it when the library code keeps nothing of it,
and for every file importing the library when the code may keep it (a global, a memo, a class
attribute, a container it was handed). markdown-it-py 4.3.0: editing one fixture file that
tests/test_port/test_fixtures.py reads through ``markdown_it.utils.read_fixture_file`` re-ran
every test file importing markdown_it."""

from __future__ import annotations

import pytest
from precision_helpers import Workspace, ran_nodes

READER = """\
import functools
from pathlib import Path

HERE = Path(__file__).parent


def read_cases(path):
    text = Path(path).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def count(path):
    return len(read_cases(path))
"""

USER = """\
from pathlib import Path

from pkg.cases import read_cases

CASES = read_cases(Path(__file__).parent / "cases.txt")


def test_cases():
    assert CASES == ["a", "b"]


def test_counted():
    from pkg.cases import count

    assert count(Path(__file__).parent / "cases.txt") == 2
"""

OTHER = """\
import pkg.cases


def test_other():
    assert pkg.cases.HERE.name == "pkg"
"""


def _workspace(ws: Workspace, reader: str, user: str, other: str) -> None:
    ws.write("pkg/cases.py", reader)
    ws.write("tests/cases.txt", "a\nb\n")
    ws.write("tests/test_user.py", user)
    ws.write("tests/test_other.py", other)


def test_a_file_read_through_a_pure_library_function_reruns_its_readers_only(
    ws: Workspace,
) -> None:
    _workspace(ws, READER, USER, OTHER)
    assert ws.run().failed == 0
    ws.write("tests/cases.txt", "a\nb\nc\n")
    summary = ws.run()
    # the collection read re-runs its whole file; the file that only imports the reader does
    # not re-run
    assert ran_nodes(summary) == [
        "tests/test_user.py::test_cases",
        "tests/test_user.py::test_counted",
    ]
    assert summary.failed == 2
    graph = ws.graph()
    assert "tests/cases.txt" not in graph.index.dynamic.get("pkg/cases.py", [])


KEEPERS = {
    "a memoising decorator": """
        @functools.lru_cache(maxsize=None)
        def table():
            return read_cases(HERE.parent / "tests/cases.txt")
        """,
    "a global written": """
        _TABLE = None


        def table():
            global _TABLE
            if _TABLE is None:
                _TABLE = read_cases(HERE.parent / "tests/cases.txt")
            return _TABLE
        """,
    "a module-level container filled": """
        _MEMO = []


        def table():
            if not _MEMO:
                _MEMO.extend(read_cases(HERE.parent / "tests/cases.txt"))
            return _MEMO
        """,
    "a class attribute": """
        class Holder:
            rows = {}


        def table():
            if "rows" not in Holder.rows:
                Holder.rows["rows"] = read_cases(HERE.parent / "tests/cases.txt")
            return Holder.rows["rows"]
        """,
    "a module attribute set": """
        import pkg as _root

        _root.ROWS = None


        def table():
            if _root.ROWS is None:
                _root.ROWS = read_cases(HERE.parent / "tests/cases.txt")
            return _root.ROWS
        """,
    "a container it was handed": """
        _MEMO = {}


        def fill(into, path):
            into["rows"] = read_cases(path)


        def table():
            if "rows" not in _MEMO:
                fill(_MEMO, HERE.parent / "tests/cases.txt")
            return _MEMO["rows"]
        """,
}


@pytest.mark.parametrize("keeper", sorted(KEEPERS))
def test_a_file_a_library_may_keep_reruns_every_importer(ws: Workspace, keeper: str) -> None:
    import textwrap

    reader = READER + "\n\n" + textwrap.dedent(KEEPERS[keeper])
    user = "from pkg.cases import table\n\n\ndef test_first():\n    assert table() == ['a', 'b']\n"
    # runs after test_user.py: gets the kept rows without reading
    other = "from pkg.cases import table\n\n\ndef test_later():\n    assert table() == ['a', 'b']\n"
    _workspace(ws, reader, user, other.replace("test_later", "test_other_later"))
    ws.write("tests/test_z.py", other)
    assert ws.run().failed == 0
    ws.write("tests/cases.txt", "a\nb\nc\n")
    summary = ws.run()
    assert "tests/test_z.py::test_later" in ran_nodes(summary), keeper
    assert summary.failed == 3, keeper


def test_a_test_module_passing_a_library_container_reruns_its_users(ws: Workspace) -> None:
    """The reading function stores into what it was handed: a library module's table, filled by
    a test file's collection, read by another file's test without reading the data."""
    reader = READER + (
        "\n\nTABLE = {}\n\n\ndef fill(into, path):\n    into['rows'] = read_cases(path)\n"
    )
    user = (
        "from pathlib import Path\n\nimport pkg.cases\n\n"
        "pkg.cases.fill(pkg.cases.TABLE, Path(__file__).parent / 'cases.txt')\n\n\n"
        "def test_first():\n    assert pkg.cases.TABLE['rows'] == ['a', 'b']\n"
    )
    other = "import pkg.cases as c\n\n\ndef test_later():\n    assert len(c.TABLE['rows']) == 2\n"
    _workspace(ws, reader, user, "def test_nothing():\n    pass\n")
    ws.write("tests/test_z.py", other)
    assert ws.run().failed == 0
    ws.write("tests/cases.txt", "a\nb\nc\n")
    summary = ws.run()
    assert "tests/test_z.py::test_later" in ran_nodes(summary)
    assert summary.failed == 2


def test_a_file_read_at_collection_and_by_a_test_reruns_the_whole_file(ws: Workspace) -> None:
    """A node reading the file too does not make the collection's read its own: the module's
    value (and the parametrize list) was built from it for every node."""
    ws.write("tests/cases.txt", "a\nb\n")
    ws.write(
        "tests/test_both.py",
        "from pathlib import Path\n\nCASES = Path('tests/cases.txt').read_text().split()\n\n\n"
        "def test_module_value():\n    assert CASES == ['a', 'b']\n\n\n"
        "def test_reads_again():\n"
        "    assert Path('tests/cases.txt').read_text().split() == ['a', 'b']\n",
    )
    assert ws.run().failed == 0
    ws.write("tests/cases.txt", "a\nb\nc\n")
    summary = ws.run()
    assert "tests/test_both.py::test_module_value" in ran_nodes(summary)
    assert summary.failed == 2


def test_a_test_module_handing_what_it_read_to_a_library_reruns_its_users(ws: Workspace) -> None:
    """The test module's top level stores what a pure library function read into a library
    module's table, after the read: every file importing that module re-runs."""
    reader = READER + "\n\nTABLE = {}\n"
    user = (
        "from pathlib import Path\n\nimport pkg.cases\n\n"
        "CASES = pkg.cases.read_cases(Path(__file__).parent / 'cases.txt')\n"
        "pkg.cases.TABLE.update(rows=CASES)\n\n\n"
        "def test_first():\n    assert CASES == ['a', 'b']\n"
    )
    other = "import pkg.cases as c\n\n\ndef test_later():\n    assert len(c.TABLE['rows']) == 2\n"
    _workspace(ws, reader, user, "def test_nothing():\n    pass\n")
    ws.write("tests/test_z.py", other)
    assert ws.run().failed == 0
    ws.write("tests/cases.txt", "a\nb\nc\n")
    summary = ws.run()
    assert "tests/test_z.py::test_later" in ran_nodes(summary)
    assert summary.failed == 2
