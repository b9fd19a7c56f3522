"""A private class attribute's inert value, end to end (real pytest children, a real cache).

Its change re-runs the tests that executed code reading it (by name, or by a computed name
that may be it), not every importer of its module; it re-runs every importer when its class
or its name may be read by code that does not spell it (a public name, a decorated class, a
string naming it, module-level code reading it). python-dateutil's ``_rrulestr._weekday_map``
(rrule.py:1471) re-ran every node of every file that imported rrule."""

from __future__ import annotations

import pytest
from precision_helpers import Workspace, ran_nodes

TABLE = """\
import functools


class _Table(object):
    _rates = {"a": 2}
    _names = ("x",)
    limit = 5

    def rate(self, key):
        return self._rates[key]

    def names(self):
        return self._names

    def plain(self):
        return 7

    def get(self, name):
        return getattr(self, name)

    def handler(self, name):
        return getattr(self, "_on_" + name)()

    def _on_plain(self):
        return 7


TABLE = _Table()


@functools.lru_cache
def cached_rate():
    return _Table._rates["a"]


def rate_twice():
    return cached_rate() * 2
"""
TESTS = """\
from pkg.table import TABLE, rate_twice


def test_rate():
    assert TABLE.rate("a") == 2


def test_names():
    assert TABLE.names() == ("x",)


def test_plain():
    assert TABLE.plain() == 7


def test_handler():
    assert TABLE.handler("plain") == 7


def test_get():
    assert TABLE.get("_na" + "mes") == ("x",)
"""
MEMO = """\
from pkg.table import rate_twice


def test_first():
    assert rate_twice() == 4


def test_second():
    assert rate_twice() == 4
"""
ALL = sorted(
    [
        *(f"tests/test_table.py::test_{n}" for n in ("rate", "names", "plain", "handler", "get")),
        "tests/test_memo.py::test_first",
        "tests/test_memo.py::test_second",
    ]
)


def _workspace(ws: Workspace, table: str = TABLE, tests: str = TESTS) -> Workspace:
    ws.write("pkg/table.py", table)
    ws.write("tests/test_table.py", tests)
    ws.write("tests/test_memo.py", MEMO)
    return ws


def _ran(ws: Workspace) -> list[str]:
    return [n for n in ran_nodes(ws.run()) if "test_table" in n or "test_memo" in n]


def test_a_changed_private_attribute_reruns_only_the_tests_that_read_it(ws: Workspace) -> None:
    _workspace(ws)
    assert _ran(ws) == ALL
    ws.edit("pkg/table.py", '_names = ("x",)', '_names = ("y",)')
    plan = ws.plan()
    table = next(f for f in plan.files if f.target == "tests/test_table.py")
    assert table.node_reasons["tests/test_table.py::test_names"] == (
        "executed pkg.table._Table.names, which reads the changed pkg.table._Table._names, "
        "changed at pkg/table.py"
    )
    assert "by a computed name" in table.node_reasons["tests/test_table.py::test_get"]
    summary = ws.run()
    # test_rate, test_plain, test_handler (a computed name that cannot be `_names`) and
    # test_memo's tests read nothing of `_names`: served
    assert ran_nodes(summary) == [
        "tests/test_table.py::test_get",
        "tests/test_table.py::test_names",
    ]
    assert (summary.exit_code, summary.failed) == (1, 2)  # both now fail, as plain pytest says
    ws.edit("pkg/table.py", '_names = ("y",)', '_names = ("x",)')
    assert ws.run().exit_code == 0


def test_a_memoised_reader_reruns_the_tests_served_from_its_cache(ws: Workspace) -> None:
    """test_second gets `cached_rate`'s result from the cache test_first filled: it never runs
    the function that reads `_rates`, but calls it by name."""
    _workspace(ws)
    _ran(ws)
    ws.edit("pkg/table.py", '_rates = {"a": 2}', '_rates = {"a": 3}')
    summary = ws.run()
    assert ran_nodes(summary) == [
        "tests/test_memo.py::test_first",
        "tests/test_memo.py::test_second",
        "tests/test_table.py::test_get",  # getattr(self, name) may read any attribute
        "tests/test_table.py::test_rate",
    ]
    assert summary.failed == 3


@pytest.mark.parametrize(
    ("table", "tests", "edit"),
    [
        # a public name: code outside the workspace may read it by convention
        (TABLE, TESTS, ("limit = 5", "limit = 6")),
        # a decorated class: the decorator may read its namespace (dataclass, attrs...)
        (
            "import functools\n\n\ndef keep(c):\n    return c\n\n\n"
            + TABLE.replace("class _Table(object):", "@keep\nclass _Table(object):", 1).replace(
                "import functools\n", "", 1
            ),
            TESTS,
            ('_names = ("x",)', '_names = ("y",)'),
        ),
        # module-level code reads it
        (TABLE + "\nFIRST = _Table._names[0]\n", TESTS, ('_names = ("x",)', '_names = ("y",)')),
        # a string spells it: monkeypatch.setattr(TABLE, "_names", ...), patch.object, eval
        (
            TABLE,
            TESTS + "\n\ndef test_spelled(monkeypatch):\n"
            '    monkeypatch.setattr(TABLE, "_rates", {})\n',
            ('_rates = {"a": 2}', '_rates = {"a": 3}'),
        ),
        # an attribute added: every importer (another class of the same name may be read)
        (TABLE, TESTS, ('_names = ("x",)', '_names = ("x",)\n    _more = 1')),
    ],
    ids=["public", "decorated", "module-level", "string", "added"],
)
def test_a_class_attribute_that_may_be_read_unseen_reruns_every_importer(
    ws: Workspace, table: str, tests: str, edit: tuple[str, str]
) -> None:
    _workspace(ws, table, tests)
    first = ran_nodes(ws.run())
    table_nodes = [n for n in first if "test_table" in n]
    ws.edit("pkg/table.py", *edit)
    ran = ran_nodes(ws.run())
    assert [n for n in ran if "test_table" in n] == table_nodes


LOOPS = """\
class _Delta(object):
    _names = ("x",)
    hour = 1
    minute = 2

    def names(self):
        return self._names

    def fields(self):
        out = []
        for attr in ["hour", "minute"]:
            out.append(getattr(self, attr))
        for attr in ("minute",):
            out.append(getattr(self, attr))
        return out

    def counted(self):
        return sum(getattr(self, a) is not None for a in ("hour", "minute"))


DELTA = _Delta()
"""
LOOP_TESTS = """\
from pkg.delta import DELTA


def test_names():
    assert DELTA.names() == ("x",)


def test_fields():
    assert DELTA.fields()[0] in (1, ("x",))


def test_counted():
    assert DELTA.counted() == 2
"""
NAMES = ('_names = ("x",)', '_names = ("y",)')
LOOP = 'for attr in ["hour", "minute"]:'


def _loop_workspace(ws: Workspace, delta: str) -> list[str]:
    ws.write("pkg/delta.py", delta)
    ws.write("tests/test_delta.py", LOOP_TESTS)
    return [n for n in ran_nodes(ws.run()) if "test_delta" in n]


def test_a_computed_name_from_a_loop_over_literal_strings_reads_only_those(
    ws: Workspace,
) -> None:
    """``for attr in ["hour", "minute"]: getattr(self, attr)`` (python-dateutil's
    ``relativedelta.__add__``; ``__repr__`` has two such loops over one variable) reads no
    private attribute that no string spells: a change to ``_names`` re-runs only the test that
    reads it by name."""
    assert len(_loop_workspace(ws, LOOPS)) == 3
    ws.edit("pkg/delta.py", *NAMES)
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_delta.py::test_names"]
    assert (summary.exit_code, summary.failed) == (1, 1)


@pytest.mark.parametrize(
    ("delta", "fails"),
    [
        # the loop spells the private name: every importer (`private_strings`)
        (LOOPS.replace(LOOP, 'for attr in ["_names", "minute"]:'), True),
        # the loop variable is rebound: any name
        (
            LOOPS.replace(LOOP, 'for attr in ["names"]:').replace(
                "out.append(getattr(self, attr))",
                'attr = "_" + attr\n            out.append(getattr(self, attr))',
                1,
            ),
            True,
        ),
        # a parameter of the same name: the loop is not all that binds it
        (LOOPS.replace("def fields(self):", "def fields(self, attr=None):"), False),
        # not a literal collection (the other loop over the same variable is)
        (LOOPS.replace(LOOP, 'for attr in list(["hour", "minute"]):'), False),
    ],
    ids=["spelled", "rebound", "parameter", "computed"],
)
def test_a_loop_that_may_read_the_changed_attribute_still_reruns(
    ws: Workspace, delta: str, fails: bool
) -> None:
    assert len(_loop_workspace(ws, delta)) == 3
    ws.edit("pkg/delta.py", *NAMES)
    summary = ws.run()
    assert "tests/test_delta.py::test_fields" in ran_nodes(summary)
    assert summary.failed == (2 if fails else 1)  # test_names and, reading `_names`, test_fields
