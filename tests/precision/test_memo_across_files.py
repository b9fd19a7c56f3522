"""A memo filled by one test file's tests and read by another's, in the same pytest process.

The memo rules of node-level selection (docs/action-key.md: a changed ``memoised`` function, and a
function of the same file whose code names a changed one) re-run a node that got the changed
function's result from a memo without executing it. The memo need not have been filled by a test
of the same file: any test that ran before it in the process may have filled it. A narrowing of
either rule must keep these nodes re-running, as plain pytest would fail them.
"""

from __future__ import annotations

import pytest
from precision_helpers import Workspace, ran_nodes

from maestro.engine.interpreter import Interpreter

FILL = "tests/test_a_fill.py::test_fills_the_memo"
SERVED = "tests/test_b_served.py::test_served_from_the_memo"

HAND_WRITTEN = """
    import re


    class _Memo:
        def __init__(self):
            self._memo = {}

        def __call__(self, flags):
            if flags not in self._memo:
                self._memo[flags] = self._build(flags)
            return self._memo[flags]

        def _build(self, flags):
            return re.compile("localhost", flags)


    matcher = _Memo()


    def is_local(text):
        return matcher(re.I).match(text) is not None
    """

LRU_CACHED = """
    import functools


    @functools.lru_cache
    def pattern():
        return "localhost"


    def is_local(text):
        return text.lower() == pattern()
    """


CASES = pytest.mark.parametrize(
    ("source", "builder", "reason"),
    [
        (HAND_WRITTEN, 're.compile("localhost"', "which names the changed pkg.memo._Memo._build"),
        (LRU_CACHED, 'return "localhost"', "which names the memoised pkg.memo.pattern"),
    ],
    ids=["hand-written", "lru_cache"],
)


@CASES
def test_a_node_served_from_a_memo_another_file_filled_reruns(
    ws: Workspace, source: str, builder: str, reason: str
) -> None:
    _served_from_another_files_memo(ws, source, builder, reason)


@pytest.mark.slow
@CASES
def test_a_node_served_from_a_memo_another_file_filled_reruns_on_312(
    ws: Workspace, interpreter312: Interpreter, source: str, builder: str, reason: str
) -> None:
    """The same through sys.monitoring (3.12+), which records each code object's first start
    apart from its later calls."""
    _served_from_another_files_memo(Workspace(ws.root, interpreter312), source, builder, reason)


def _write_filler_and_served(ws: Workspace) -> None:
    """test_a fills the memo of pkg.memo.is_local, test_b (collected after it) is served from it."""
    ws.write(
        "tests/test_a_fill.py",
        "from pkg.memo import is_local\n\n\ndef test_fills_the_memo():\n"
        "    assert is_local('localhost')\n",
    )
    ws.write(
        "tests/test_b_served.py",
        "from pkg.memo import is_local\n\n\ndef test_served_from_the_memo():\n"
        "    assert is_local('LOCALHOST')\n",
    )


def _served_from_another_files_memo(ws: Workspace, source: str, builder: str, reason: str) -> None:
    """test_a fills the memo (runs the builder), test_b, later in the same process, only reads
    it; after a change to the builder plain pytest fails both."""
    ws.write("pkg/memo.py", source)
    _write_filler_and_served(ws)
    assert ws.run().failed == 0
    ws.edit("pkg/memo.py", builder, builder.replace("localhost", "localhostx"))
    served = next(f for f in ws.plan().files if f.target == "tests/test_b_served.py")
    # it never ran the builder itself: only the memo rule re-runs it
    assert reason in served.node_reasons[SERVED]
    summary = ws.run()
    assert {FILL, SERVED} <= set(ran_nodes(summary))
    assert summary.failed == 2  # as plain pytest: the served node gets the new builder's result


CONSTANT_LRU = """
    import functools

    from pkg import table


    @functools.cache
    def pattern():
        return table.HOSTS[0]


    def is_local(text):
        return text.lower() == pattern()
    """

CONSTANT_HAND_WRITTEN = """
    from pkg import table

    _MEMO = {}


    def _build():
        return table.HOSTS[0]


    def pattern():
        if "p" not in _MEMO:
            _MEMO["p"] = _build()
        return _MEMO["p"]


    def is_local(text):
        return text.lower() == pattern()
    """


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (CONSTANT_LRU, "which names pkg.memo.pattern, which names the changed pkg.table.HOSTS"),
        (CONSTANT_HAND_WRITTEN, "which names pkg.memo._build, which names the changed pkg.table"),
    ],
    ids=["functools.cache", "hand-written"],
)
def test_a_node_served_from_a_memo_of_a_changed_constant_reruns(
    ws: Workspace, source: str, reason: str
) -> None:
    """User trial of rich 14.3.3: its cell widths come from a table module (a constant) that a
    `functools.cache`d loader reads; with the table edited, plain pytest failed 2 tests of
    tests/test_cells.py, `maestro test` served them as passed: no test of that file ran the
    loader (an earlier file had filled its cache), so none executed code naming the constant.
    (rich imports its table by a computed name, which this does not cover.)"""
    ws.write("pkg/table.py", 'HOSTS = ("localhost",)\n')
    ws.write("pkg/memo.py", source)
    _write_filler_and_served(ws)
    assert ws.run().failed == 0
    ws.edit("pkg/table.py", '"localhost"', '"localhostx"')
    served = next(f for f in ws.plan().files if f.target == "tests/test_b_served.py")
    assert reason in served.node_reasons.get(SERVED, ""), served.node_reasons
    summary = ws.run()
    assert {FILL, SERVED} <= set(ran_nodes(summary))
    assert summary.failed == 2  # as plain pytest: the served node gets the new table's value


COMPUTED_IMPORT = """
    import functools
    import importlib

    VERSIONS = ("a",)


    @functools.cache
    def load():
        name = f".table_{VERSIONS[-1]}"
        return importlib.import_module(name, "pkg").TABLE


    def width(c):
        return load()[c]
    """


COMPUTED_FULL_NAME = COMPUTED_IMPORT.replace(
    'importlib.import_module(name, "pkg")', 'importlib.import_module(f"pkg.table_{VERSIONS[-1]}")'
)


COMPUTED_ELSEWHERE = COMPUTED_IMPORT.replace(
    'f".table_{VERSIONS[-1]}"', 'f"pkg.table_{VERSIONS[-1]}"'
).replace('import_module(name, "pkg")', "import_module(name)")


# no package named anywhere in the file: only the run knows which module it imported
COMPUTED_UNNAMED = COMPUTED_IMPORT.replace(
    'f".table_{VERSIONS[-1]}"', '__package__ + ".table_" + VERSIONS[-1]'
).replace('import_module(name, "pkg")', "import_module(name)")


@pytest.mark.parametrize(
    "source",
    [COMPUTED_IMPORT, COMPUTED_FULL_NAME, COMPUTED_ELSEWHERE, COMPUTED_UNNAMED],
    ids=["package-argument", "name-prefix", "name-built-before", "name-unnamed"],
)
def test_a_memo_of_a_module_imported_by_a_computed_name_reruns_what_it_served(
    ws: Workspace, source: str
) -> None:
    """rich 14.3.3's shape: `rich._unicode_data.load` is cached and imports its table module by a
    computed name (`import_module(module_name, "rich._unicode_data")`); only the file whose test
    first called it imported the table, so the later files' keys had no such input, and with the
    table edited `maestro test` served tests/test_cells.py's failing tests as passed. A computed
    import of a literal package counts as importing each of its modules."""
    assert source.count("import_module(") == 1
    ws.write("pkg/__init__.py", source)
    ws.write("pkg/table_a.py", 'TABLE = {"x": 1}\n')
    for name in ("a", "b"):
        ws.write(
            f"tests/test_{name}.py",
            f"from pkg import width\n\n\ndef test_{name}():\n    assert width('x') == 1\n",
        )
    assert ws.run().failed == 0
    ws.edit("pkg/table_a.py", '"x": 1', '"x": 2')
    summary = ws.run()
    assert {"tests/test_a.py::test_a", "tests/test_b.py::test_b"} <= set(ran_nodes(summary))
    assert summary.failed == 2  # as plain pytest: both read the edited table
