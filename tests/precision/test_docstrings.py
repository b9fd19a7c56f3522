"""A function's docstring is its ``__doc__`` from the moment its ``def`` runs: code that never
calls the function reads it (an "every export has a docstring" test, ``help()``, a command-line
tool's help text). An edit of a docstring re-runs such readers; an edit of the body alone still
re-runs only the tests that executed it."""

from __future__ import annotations

from precision_helpers import Workspace, ran_nodes
from project_python import plain_pytest

SEQS = '''
def first(seq):
    """Returns the first item."""
    return next(iter(seq), None)


def second(seq):
    """Returns the second item."""
    return first(list(seq)[1:])


class Stack:
    def push(self, item):
        """Adds an item on top."""
        return item
'''

DOCS = """
import inspect

import pkg.seqs


def test_every_function_has_a_docstring():
    names = ["first", "second"]
    assert [n for n in names if getattr(pkg.seqs, n).__doc__ is None] == []


def test_method_help():
    assert inspect.getdoc(pkg.seqs.Stack.push) == "Adds an item on top."
"""

USES = """
from pkg.seqs import second


def test_second():
    assert second([1, 2]) == 2
"""


def _pytest_failed(ws: Workspace) -> set[str]:
    done = plain_pytest(ws.interpreter.path, ws.root, "-q", "-rf")
    return {line.split(" ")[1] for line in done.stdout.splitlines() if line.startswith("FAILED ")}


def _failed(ws: Workspace) -> set[str]:
    summary = ws.run()
    return {t.node_id for r, _ in summary.results() for t in r.tests if t.outcome == "failed"}


def test_a_docstring_read_without_a_call_follows_its_edits(ws: Workspace) -> None:
    # funcy 2.1: removing `second`'s docstring fails tests/test_interface.py::test_docs under
    # pytest; Maestro served its pass ("no input changed since its last run"): the docstring
    # counted only for `second`'s own code, which that test never executes.
    ws.write("pkg/seqs.py", SEQS)
    ws.write("tests/test_docs.py", DOCS)
    ws.write("tests/test_uses.py", USES)
    assert ws.run().failed == 0
    # a body edit: only the test that executed `second` runs (node-level records now exist)
    ws.edit(
        "pkg/seqs.py",
        "    return first(list(seq)[1:])\n",
        "    rest = list(seq)[1:]\n    return first(rest)\n",
    )
    summary = ws.run()
    assert summary.failed == 0
    assert ran_nodes(summary) == ["tests/test_uses.py::test_second"]

    ws.edit("pkg/seqs.py", '    """Returns the second item."""\n', "")
    docs = "tests/test_docs.py::test_every_function_has_a_docstring"
    assert _pytest_failed(ws) == {docs}
    assert _failed(ws) == {docs}

    ws.edit("pkg/seqs.py", '"""Adds an item on top."""', '"""Adds an item."""')
    method = "tests/test_docs.py::test_method_help"
    assert _pytest_failed(ws) == {docs, method}
    assert _failed(ws) == {docs, method}
