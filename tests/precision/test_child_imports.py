"""What a Python child imported from the workspace is code it ran, not text it read: a test
running ``python -m tools.show`` (``import pkg.tool as t; print(t.value())``) re-runs when code
the child ran changed (a function it executed, a constant that code names, the module's top
level), not at every edit of the module (a constant nothing it ran names, a function it never
called), as for the modules the test process itself imports. The module stays an input of the
test file even when nothing imports it statically (a change must still be looked at).

A child whose main code is in no file (``python -c CODE``) reads what it imports whole instead:
which names that code reads is unknown (tests/testing/test_command_children.py)."""

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
CHILD = "tests/test_child.py::test_child"
FILES = {
    "pkg/tool.py": TOOL,
    "tools/show.py": "import pkg.tool as t\n\nprint(t.value())\n",
    "tests/test_child.py": (
        "import subprocess\nimport sys\n\n\n"
        "def test_child():\n"
        "    cmd = [sys.executable, '-m', 'tools.show']\n"
        "    out = subprocess.run(cmd, capture_output=True, text=True)\n"
        "    assert out.stdout.strip() == 'one', out.stderr\n\n\n"
        "def test_plain():\n    assert True\n"
    ),
}


def _workspace(ws: Workspace, interpreter: Interpreter) -> Workspace:
    workspace = Workspace(ws.root, interpreter)
    for rel, text in FILES.items():
        workspace.write(rel, text)
    assert workspace.run().failed == 0
    workspace.edit("tests/test_child.py", "assert True", "assert 1")  # a traced record (3.11)
    workspace.run()
    return workspace


def _check(ws: Workspace) -> None:
    # code the child never ran, or a constant no code it ran names: nothing re-runs
    ws.edit("pkg/tool.py", "UNUSED = 1", "UNUSED = 3")
    assert ran_nodes(ws.run()) == []
    ws.edit("pkg/tool.py", "return 2", "return 3")
    assert ran_nodes(ws.run()) == []
    # what it ran: the test re-runs and fails, as under pytest
    for old, new in (
        ('GREETING = "one"', 'GREETING = "two"'),  # a constant value() names
        ("return GREETING", "return GREETING + '!'"),  # a function it executed
        ("UNUSED = 3", "UNUSED = 3\nprint('x')"),  # the module's top level
    ):
        ws.edit("pkg/tool.py", old, new)
        summary = ws.run()
        assert CHILD in ran_nodes(summary), old
        assert summary.failed == 1, old
        ws.edit("pkg/tool.py", new, old)
        assert ws.run().failed == 0  # (its earlier result, under the same key again)


def test_a_child_reruns_for_the_code_it_ran_only(
    ws: Workspace, interpreter312: Interpreter
) -> None:
    _check(_workspace(ws, interpreter312))


@pytest.mark.extended
def test_a_child_reruns_for_the_code_it_ran_only_311(
    ws: Workspace, interpreter: Interpreter
) -> None:
    _check(_workspace(ws, interpreter))  # the child records by cProfile
