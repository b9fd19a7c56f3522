"""A module the import graph names but no run behind a result ever imported (a platform's
module: click's ``_winconsole`` on Linux, imported under ``if WIN:``) cannot have changed any
outcome: its change re-runs no test (3.12+, where a module's top level is recorded when it
runs). A module that ran anywhere (imported inside a test, in a Python child) or that a test
read as text still re-runs its tests."""

from __future__ import annotations

import pytest
from precision_helpers import Workspace, ran_nodes

from maestro.engine.interpreter import Interpreter

WIN = """\
import sys

FACTORIES = {0: print, 1: sys.stdout}


def stream(n):
    return FACTORIES[n]
"""
FILES = {
    "pkg/_win.py": WIN,
    "pkg/compat.py": (
        "import sys\n\n"
        "if sys.platform == 'win32-never':\n    from pkg._win import stream\n"
        "else:\n\n    def stream(n):\n        return 'posix'\n"
    ),
    "pkg/lazy.py": "TABLE = {1: print}\n\n\ndef value():\n    return 1\n",
    "pkg/_child.py": "TABLE = {1: 'one'}\n\n\ndef value():\n    return TABLE[1]\n",
    "tests/test_compat.py": (
        "from pkg.compat import stream\n\n\n"
        "def test_stream():\n    assert stream(0) == 'posix'\n\n\n"
        "def test_lazy():\n    from pkg import lazy\n\n    assert lazy.TABLE[1] is print\n"
    ),
    "tests/test_source.py": (
        "import pathlib\n\nimport pkg.compat  # noqa: F401\n\n\n"
        "def test_source():\n"
        "    assert '{0: print' in pathlib.Path('pkg/_win.py').read_text()\n\n\n"
        "def test_other():\n    assert True\n"
    ),
    "tests/test_child.py": (
        "import subprocess, sys\n\nimport pkg.compat  # noqa: F401\n\n\n"
        "def test_child():\n"
        "    code = 'import pkg._child as c; print(c.value())'\n"
        "    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)\n"
        "    assert out.stdout.strip() == 'one'\n"
    ),
}


@pytest.fixture
def ws312(ws: Workspace, interpreter312: Interpreter) -> Workspace:
    workspace = Workspace(ws.root, interpreter312)
    for rel, text in FILES.items():
        workspace.write(rel, text)
    assert workspace.run().failed == 0
    return workspace


def test_a_module_no_run_imported_reruns_only_its_reader(ws312: Workspace) -> None:
    """Every test file imports pkg.compat, which names pkg._win: only the test that read
    pkg/_win.py as text re-runs (and fails)."""
    ws312.edit("pkg/_win.py", "FACTORIES = {0: print,", "FACTORIES = {2: print,")
    summary = ws312.run()
    assert ran_nodes(summary) == ["tests/test_source.py::test_source"]
    assert summary.failed == 1
    ws312.edit("pkg/_win.py", "return FACTORIES[n]", "return FACTORIES[n + 1]")
    assert ran_nodes(ws312.run()) == ["tests/test_source.py::test_source"]  # failed last time


def test_a_module_no_run_imported_reruns_only_its_reader_after_a_partial_run(
    ws312: Workspace,
) -> None:
    """A run of some tests of a file keeps what its other tests read as the file's inputs,
    not every module it imports (read by no test): pkg/_win.py still re-runs only its reader."""
    ws312.edit("tests/test_compat.py", "== 'posix'", "== 'posix', 0")
    assert ran_nodes(ws312.run()) == ["tests/test_compat.py::test_stream"]
    ws312.edit("pkg/_win.py", "FACTORIES = {0: print,", "FACTORIES = {2: print,")
    summary = ws312.run()
    assert ran_nodes(summary) == ["tests/test_source.py::test_source"]
    assert summary.failed == 1


def test_a_module_imported_inside_a_test_reruns(ws312: Workspace) -> None:
    ws312.edit("pkg/lazy.py", "TABLE = {1: print}", "TABLE = {2: print}")
    summary = ws312.run()
    assert "tests/test_compat.py::test_lazy" in ran_nodes(summary)
    assert summary.failed == 1


def test_a_module_a_python_child_imported_reruns(ws312: Workspace) -> None:
    ws312.edit("pkg/_child.py", "TABLE = {1: 'one'}", "TABLE = {1: 'two'}")
    summary = ws312.run()
    assert "tests/test_child.py::test_child" in ran_nodes(summary)
    assert summary.failed == 1
