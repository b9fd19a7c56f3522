"""A function that ran at import or collection time, changed where its import-time runs never
went (3.12+, where the recorder keeps the lines such a function ran).

structlog builds a ``ConsoleRenderer()`` when ``structlog._config`` is imported; a change inside
its ``if _IS_WINDOWS:`` branch, which never runs on Linux, re-ran every test of the session. What
the import built is the same with the new version when none of the changed statements ran
there: only the tests that executed the function re-run. Whenever a changed statement ran, or
the change can alter the statements that did (a new local name, a ``global``, a ``yield``), or
there is no line record (3.11's profiler, a function first run inside a test), every test of the
files that imported it re-runs, as before."""

from __future__ import annotations

import sys

import pytest
from precision_helpers import Workspace, ran_nodes

from maestro.engine.interpreter import Interpreter
from maestro.graph.fingerprints import (
    diff,
    fingerprint_source,
    map_lines,
    unexecuted_change,
)

RENDER = """\
import sys


class Renderer:
    def __init__(self, colors=True):
        self.colors = colors
        if colors and sys.platform == "win32-never":
            self.mode = "windows"
        else:
            self.mode = "plain"

    def render(self, text):
        return f"[{self.mode}] {text}"


DEFAULT = Renderer()
"""
FILES = {
    "pkg/render.py": RENDER,
    "tests/conftest.py": "import pkg.render  # the session imports it: its import is everyone's\n",
    "tests/test_render.py": (
        "from pkg.render import DEFAULT, Renderer\n\n\n"
        "def test_new():\n    assert Renderer(colors=False).render('x') == '[plain] x'\n\n\n"
        "def test_default():\n    assert DEFAULT.mode == 'plain'\n"
    ),
}
CALC = [
    "tests/test_calc.py::test_combo",
    "tests/test_calc.py::test_double",
    "tests/test_calc.py::test_triple",
]
EVERY = sorted(
    [
        *CALC,
        "tests/test_data.py::test_does_not_read",
        "tests/test_data.py::test_reads",
        "tests/test_other.py::test_imports_only",
        "tests/test_render.py::test_default",
        "tests/test_render.py::test_new",
    ]
)


@pytest.fixture
def ws312(ws: Workspace, interpreter312: Interpreter) -> Workspace:
    workspace = Workspace(ws.root, interpreter312)
    for rel, text in FILES.items():
        workspace.write(rel, text)
    assert workspace.run().failed == 0
    return workspace


def test_a_change_its_import_never_ran_reruns_only_its_executors(ws312: Workspace) -> None:
    ws312.edit("pkg/render.py", 'self.mode = "windows"', 'self.mode = "win"')
    plan = ws312.plan()
    other = next(f for f in plan.files if f.target == "tests/test_calc.py")
    assert "ran at import or collection time" not in other.describe()
    # test_default only reads what the import built; test_new executed __init__ itself
    assert ran_nodes(ws312.run()) == ["tests/test_render.py::test_new"]
    # the record stays line-precise after a partial run: a second such change selects the same
    ws312.edit("pkg/render.py", 'self.mode = "win"', 'self.mode = "nt"')
    assert ran_nodes(ws312.run()) == ["tests/test_render.py::test_new"]


def test_line_records_follow_the_lines_that_moved(ws312: Workspace) -> None:
    """The served files keep their line records through a change that moved every line of the
    function, at the new places: a later change where the import never went still re-runs only
    the executors, one to a statement that ran at import re-runs every file."""
    ws312.edit("pkg/render.py", "import sys\n", "import sys\n# moves every line below\n")
    ws312.edit("pkg/render.py", 'self.mode = "windows"', 'self.mode = "win"')
    assert ran_nodes(ws312.run()) == ["tests/test_render.py::test_new"]
    ws312.edit("pkg/render.py", 'self.mode = "win"', 'self.mode = "nt"')
    assert ran_nodes(ws312.run()) == ["tests/test_render.py::test_new"]
    ws312.edit("pkg/render.py", 'self.mode = "plain"', 'self.mode = "basic"')
    summary = ws312.run()
    assert ran_nodes(summary) == EVERY
    assert summary.failed == 2


STYLED = {
    "pkg/render.py": RENDER.replace(
        "def __init__(self, colors=True):\n", "def __init__(self, colors=True, style=None):\n"
    ).replace(
        "        self.colors = colors\n",
        "        self.colors = colors\n        if style:\n            self.style = style\n",
    ),
    "tests/test_style.py": (
        "from pkg.render import Renderer\n\n\n"
        "def test_style():\n    assert Renderer(style='x').style == 'x'\n"
    ),
}


def test_a_line_only_tests_ran_is_no_import_time_line(ws312: Workspace) -> None:
    """The import never ran `self.style = style`, a test did: only the tests that executed
    the function re-run."""
    for rel, text in STYLED.items():
        ws312.write(rel, text)
    assert ws312.run().failed == 0
    ws312.edit("pkg/render.py", "self.style = style", "self.style = style * 2")
    summary = ws312.run()
    assert ran_nodes(summary) == [
        "tests/test_render.py::test_new",
        "tests/test_style.py::test_style",
    ]
    assert summary.failed == 1


def test_a_line_a_test_ran_first_and_an_import_later_is_an_import_time_line(
    ws312: Workspace,
) -> None:
    """A test ran the line first; a module imported by a later test ran it again at its
    import, and keeps what it built: every file re-runs (the later test would pass stale)."""
    for rel, text in STYLED.items():
        ws312.write(rel, text)
    ws312.write("pkg/late.py", "from pkg.render import Renderer\n\nOBJ = Renderer(style='x')\n")
    ws312.write(
        "tests/test_zlate.py",
        "def test_late():\n    from pkg import late\n\n    assert late.OBJ.style == 'x'\n",
    )
    assert ws312.run().failed == 0
    ws312.edit("pkg/render.py", "self.style = style", "self.style = style * 2")
    summary = ws312.run()
    assert "tests/test_zlate.py::test_late" in ran_nodes(summary)
    assert "tests/test_calc.py::test_double" in ran_nodes(summary)
    assert summary.failed == 2


def test_a_change_its_import_ran_reruns_every_file(ws312: Workspace) -> None:
    ws312.edit("pkg/render.py", 'self.mode = "plain"', 'self.mode = "basic"')
    summary = ws312.run()
    assert ran_nodes(summary) == EVERY
    assert summary.failed == 2  # both render tests see the new mode


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # an assignment anywhere makes `sys` local in the whole function: the import raises
        ('self.mode = "windows"', 'sys = None\n            self.mode = "windows"'),
        # a yield anywhere makes it a generator
        ('self.mode = "windows"', 'self.mode = "windows"\n            yield'),
        # a global declaration anywhere
        ('self.mode = "windows"', 'global DEFAULT\n            self.mode = "windows"'),
        # a statement added at the end of the branch that ran
        ('self.mode = "plain"', 'self.mode = "plain"\n            self.extra = 1'),
        # a statement added before one that ran
        ("self.colors = colors", "self.colors = colors\n        pass"),
        # a default value
        ("def __init__(self, colors=True)", "def __init__(self, colors=1)"),
    ],
)
def test_a_change_that_can_reach_the_statements_that_ran_reruns_every_file(
    ws312: Workspace, old: str, new: str
) -> None:
    ws312.edit("pkg/render.py", old, new)
    plan = ws312.plan()
    for target in ("tests/test_calc.py", "tests/test_other.py", "tests/test_render.py"):
        planned = next(f for f in plan.files if f.target == target)
        assert "ran at import or collection time" in planned.describe(), target


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ records the lines")
def test_without_a_line_record_every_file_reruns(ws: Workspace) -> None:
    """3.11 (cProfile records no lines): as before, every file that imported it."""
    for rel, text in FILES.items():
        ws.write(rel, text)
    assert ws.run().failed == 0  # traced: the tests set MAESTRO_TRACE=always
    ws.edit("pkg/render.py", 'self.mode = "windows"', 'self.mode = "win"')
    assert ran_nodes(ws.run()) == EVERY


def _unexecuted(old: str, new: str, lines: set[int]) -> bool:
    before, after = (
        fingerprint_source(RENDER.encode()),
        fingerprint_source(RENDER.replace(old, new).encode()),
    )
    assert "Renderer.__init__" in diff(before, after).changed
    return unexecuted_change(before, after, "Renderer.__init__", lines)


RAN = {6, 7, 10}  # __init__'s lines that ran (``else:`` itself has no line event)


@pytest.mark.parametrize(
    ("old", "new", "unexecuted"),
    [
        ('self.mode = "windows"', 'self.mode = "win"', True),
        ('self.mode = "windows"', 'self.mode = "windows"\n            print(1)', True),
        ('            self.mode = "windows"\n', "            pass\n", True),
        ('self.mode = "plain"', 'self.mode = "basic"', False),
        ('self.mode = "windows"', 'sys = None\n            self.mode = "windows"', False),
        ('self.mode = "windows"', 'self.mode = "windows"\n            yield', False),
        ('self.mode = "windows"', 'global DEFAULT\n            self.mode = "windows"', False),
        ("def __init__(self, colors=True)", "def __init__(self, colors=False)", False),
        ('"win32-never"', '"win32"', False),  # the condition ran
        ('self.mode = "plain"', 'self.mode = "plain"\n            self.x = 1', False),
        ("self.colors = colors", "pass\n        self.colors = colors", False),
    ],
)
def test_unexecuted_change(old: str, new: str, unexecuted: bool) -> None:
    assert _unexecuted(old, new, RAN) is unexecuted


def test_unexecuted_change_handlers() -> None:
    source = (
        "def f():\n    try:\n        return 1\n    except KeyError:\n        return 2\n"
        "    except ValueError:\n        return 3\n"
    )
    before = fingerprint_source(source.encode())

    def check(old: str, new: str) -> bool:
        after = fingerprint_source(source.replace(old, new).encode())
        return unexecuted_change(before, after, "f", {2, 3})

    assert check("return 2", "return 4")  # a handler's body that never ran
    assert not check("except KeyError", "except LookupError")  # catches what it let through
    assert not check(  # a new handler before the others
        "    except KeyError:", "    except OSError:\n        return 0\n    except KeyError:"
    )


def test_map_lines() -> None:
    before = fingerprint_source(RENDER.encode())
    moved = RENDER.replace("import sys\n", "import sys\n# one more line\n").replace(
        'self.mode = "windows"', 'self.mode = "win"\n            self.x = 1'
    )
    after = fingerprint_source(moved.encode())
    # every statement that ran moved one line down; the changed branch never ran
    assert map_lines(before, after, "Renderer.__init__", RAN) == {7, 8, 12}
    # a changed statement that ran: no mapping
    ran_changed = RENDER.replace('self.mode = "plain"', 'self.mode = "basic"')
    assert (
        map_lines(before, fingerprint_source(ran_changed.encode()), "Renderer.__init__", RAN)
        is None
    )


REGISTRY = """\
REGISTRY = {}


def setup(name):
    if name == "a":
        REGISTRY["a"] = 1
    REGISTRY[name] = REGISTRY.get(name, 0) + 1
"""


def test_a_function_a_conftest_calls_twice_before_the_session_keeps_its_first_lines(
    ws: Workspace, interpreter312: Interpreter
) -> None:
    """The recorder's first-start callback runs at every start before the session; it reset
    the function's line record each time, and the lines of the first call (each reported
    once) were lost: `setup`'s record said none of its lines ran at import, a change in its
    first call's branch re-ran no test, and test_a, which reads what the conftest built, was
    served as passed while pytest failed it."""
    ws312 = Workspace(ws.root, interpreter312)
    ws312.write("pkg/reg.py", REGISTRY)
    ws312.write("tests/conftest.py", 'from pkg import reg\n\nreg.setup("a")\nreg.setup("b")\n')
    ws312.write(
        "tests/test_reg.py",
        "from pkg.reg import REGISTRY\n\n\ndef test_a():\n    assert REGISTRY['a'] == 2\n",
    )
    assert ws312.run().failed == 0
    ws312.edit("pkg/reg.py", 'REGISTRY["a"] = 1', 'REGISTRY["a"] = 5')
    summary = ws312.run()
    assert "tests/test_reg.py::test_a" in ran_nodes(summary)
    assert summary.failed == 1


SKIPPED = (
    "import pytest\n\nimport pkg.render\n\ntry:\n    import no_such_module_here\n"
    "except ImportError:\n    pytest.skip('needs no_such_module_here', allow_module_level=True)\n"
    "\n\ndef test_with_it():\n    assert pkg.render.DEFAULT.mode == 'plain'\n"
)


def test_a_file_skipped_at_import_is_served_after_a_change_its_import_never_reached(
    ws312: Workspace,
) -> None:
    """structlog's test_twisted.py, skipped without twisted: its import builds a
    ConsoleRenderer, so it executed __init__ there, but never the changed statement."""
    ws312.write("tests/test_skipped.py", SKIPPED)
    ws312.run()
    ws312.edit("pkg/render.py", 'self.mode = "windows"', 'self.mode = "win"')
    summary = ws312.run()
    assert ran_nodes(summary) == ["tests/test_render.py::test_new"]
    assert summary.skipped == 1
    # a statement the import ran: the skipped file re-runs with every other
    ws312.edit("pkg/render.py", 'self.mode = "plain"', 'self.mode = "basic"')
    summary = ws312.run()
    assert ran_nodes(summary) == sorted([*EVERY, "tests/test_skipped.py"])
    assert summary.failed == 2 and summary.skipped == 1
