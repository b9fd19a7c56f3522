"""An undo and a new edit are judged by the run that recorded per test, not by the run of the
undone module-level edit: cachetools, tomlkit and boltons re-ran whole files after a constant or
conftest edit was put back and a function edited ("whose module-level code changed at
tomlkit/_utils.py:117", a line back as it was). Real pytest children, a real LMDB cache."""

from __future__ import annotations

import pytest
from precision_helpers import Workspace, ran_nodes

TABLE = """\
_BASE = {"a": 1, "e": 2, "t": 3}
TABLE = {**{k: v for k, v in _BASE.items() if k != "e"}}


def look(k):
    return TABLE.get(k)


def shout(word):
    return word.upper()
"""

TESTS = """\
from pkg import calc, table


def test_look():
    assert table.look("a") == 1


def test_shout():
    assert table.shout("a") == "A"


def test_double():
    assert calc.double(2) == 4


def test_plain():
    assert True
"""


def test_an_undone_module_level_edit_leaves_the_file_judged_per_test(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAESTRO_TRACE")  # a user's default: the first run before 3.12 untraced
    ws.write("pkg/table.py", TABLE)
    ws.write("tests/test_table.py", TESTS)
    assert ws.run().failed == 0
    ws.edit("pkg/table.py", "return word.upper()", "return word.upper() + ''")
    assert ws.run().failed == 0  # the file whole, recorded per test
    ws.edit("pkg/table.py", "return word.upper() + ''", "return word.upper()")
    ws.edit("pkg/table.py", 'if k != "e"', 'if k not in "et"')
    assert ws.run().failed == 0  # module-level code: every test of the importers
    ws.edit("pkg/table.py", 'if k not in "et"', 'if k != "e"')
    ws.edit("pkg/calc.py", "return x * RATE", "return x * RATE + 1")
    summary = ws.run()
    mine = sorted(n for n in ran_nodes(summary) if n.startswith("tests/test_table.py"))
    # judged by the run of the shout edit (the two kept results differ from now in as many
    # files): shout is back since it, double is edited now; test_look and test_plain are
    # served (the table edit is undone)
    assert mine == ["tests/test_table.py::test_double", "tests/test_table.py::test_shout"]
    assert summary.report is not None
    failed = {n for n, r in summary.report.results.items() if r.outcome == "failed"}
    assert "tests/test_table.py::test_double" in failed  # as under plain pytest
    assert "tests/test_table.py::test_shout" not in failed
