"""A workspace module a test imports afresh (sys.modules emptied first, as python-dateutil's
test_imports does) is code the test ran, not text it read: the test re-runs when code of it
that ran changed (a function it executed, a constant that code names, the module's top level),
not at every edit of the module (a constant nothing it ran names, a function it never called),
as for a Python child's imports. The module stays an input of the test file."""

from __future__ import annotations

import pytest
from precision_helpers import Workspace, ran_nodes

from maestro.engine.interpreter import Interpreter

TOOL = """\
UNUSED = 1
GREETING = "one"


def value():
    return GREETING


def other():
    return 2
"""
NODE = "tests/test_reimport.py::test_reimport"
TEST = """\
import importlib
import sys


def test_reimport():
    sys.modules.pop("pkg.tool", None)
    tool = importlib.import_module("pkg.tool")
    assert tool.value() == "one"


def test_plain():
    assert True
"""


def _check(ws: Workspace) -> None:
    ws.write("pkg/tool.py", TOOL)
    ws.write("tests/test_reimport.py", TEST)
    assert ws.run().failed == 0
    ws.edit("tests/test_reimport.py", "assert True", "assert 1")  # a traced record (3.11)
    ws.run()
    # code the test never ran, or a constant no code it ran names: nothing re-runs
    ws.edit("pkg/tool.py", "UNUSED = 1", "UNUSED = 3")
    assert ran_nodes(ws.run()) == []
    ws.edit("pkg/tool.py", "return 2", "return 3")
    assert ran_nodes(ws.run()) == []
    # what it ran: the test re-runs and fails, as under pytest
    for old, new in (
        ('GREETING = "one"', 'GREETING = "two"'),  # a constant value() names
        ("return GREETING", "return GREETING + '!'"),  # a function it executed
        ("return 3\n", "return 3\n\n\nGREETING = 'three'\n"),  # the module's top level
    ):
        ws.edit("pkg/tool.py", old, new)
        summary = ws.run()
        assert NODE in ran_nodes(summary), old
        assert summary.failed == 1, old
        ws.edit("pkg/tool.py", new, old)
        assert ws.run().failed == 0


def test_a_module_a_test_imports_afresh_reruns_it_for_the_code_it_ran(
    ws: Workspace, interpreter312: Interpreter
) -> None:
    _check(Workspace(ws.root, interpreter312))


@pytest.mark.extended
def test_a_module_a_test_imports_afresh_reruns_it_for_the_code_it_ran_311(
    ws: Workspace, interpreter: Interpreter
) -> None:
    _check(Workspace(ws.root, interpreter))


def test_a_module_a_library_function_imports_lazily_stays_its_importers_input(
    ws: Workspace, interpreter312: Interpreter
) -> None:
    """pkg.lazy imports pkg.helper inside a function: the first test to call it imports it, the
    later ones only use it. A change that breaks helper's import fails them all under pytest
    (each call imports it again), so each file using pkg.lazy re-runs."""
    w = Workspace(ws.root, interpreter312)
    w.write("pkg/helper.py", "VALUE = 1\n")
    w.write(
        "pkg/lazy.py",
        "def use():\n    global helper\n    from pkg import helper\n\n    return helper.VALUE\n",
    )
    for name in ("test_a_first", "test_b_later"):
        w.write(
            f"tests/{name}.py",
            f"from pkg import lazy\n\n\ndef {name}():\n    assert lazy.use() == 1\n",
        )
    assert w.run().failed == 0
    w.edit("pkg/helper.py", "VALUE = 1\n", "VALUE = 1\nraise RuntimeError('broken')\n")
    summary = w.run()
    assert "tests/test_b_later.py::test_b_later" in ran_nodes(summary)
    assert summary.failed == 2
