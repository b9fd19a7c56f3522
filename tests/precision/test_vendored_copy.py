"""A workspace module that is a verbatim copy of an installed one (a vendored library next to
the installed distribution): its functions compile to code objects equal to the installed ones
(same name, first line, bytecode and constants; the file is not compared). The recorder must
still tell them apart: the installed copy is no input, the workspace copy is one, and an edit to
it re-runs the tests that ran it, in the pytest process and in its Python children."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from precision_helpers import Workspace, ran_nodes

from maestro.engine.interpreter import Interpreter

VENDORED = "pkg/_vendor/_structures.py"
# the installed copy runs first, in a test of its own: it is classified before the workspace copy
TESTS = """
import packaging._structures as installed

from pkg._vendor import _structures as vendored


def test_installed():
    assert repr(installed.Infinity) == "Infinity"


def test_vendored():
    assert repr(vendored.Infinity) == "Infinity"
"""
CHILD = (
    "import packaging._structures as installed; from pkg._vendor import _structures as vendored;"
    " print(repr(installed.Infinity), repr(vendored.Infinity))"
)
TEST_CHILD = f"""
import subprocess
import sys


def test_child():
    out = subprocess.run(
        [sys.executable, "-c", {CHILD!r}], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["Infinity", "Infinity"]
"""


@pytest.fixture(params=["3.11", "3.11-profile", "3.12"])
def vendored(
    request: pytest.FixtureRequest, ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> Workspace:
    if request.param == "3.11-profile":  # the Python profile function (other threads' hook)
        monkeypatch.setenv("MAESTRO_TRACE", "profile")
    if request.param == "3.12":
        interpreter: Interpreter = request.getfixturevalue("interpreter312")
        ws = Workspace(ws.root, interpreter)
    found = subprocess.run(
        [str(ws.interpreter.path), "-c", "import packaging._structures as m; print(m.__file__)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    source = Path(found).read_text()
    assert 'return "Infinity"' in source, "packaging._structures changed: pick another module"
    ws.write("pkg/_vendor/__init__.py", "")
    (ws.root / VENDORED).write_text(source)  # verbatim: same lines, same code objects
    ws.write("tests/test_vendored.py", TESTS)
    ws.write("tests/test_vendored_child.py", TEST_CHILD)
    first = ws.run()
    assert first.failed == 0
    return ws


def test_an_edit_to_a_vendored_copy_reruns_the_tests_that_ran_it(vendored: Workspace) -> None:
    vendored.edit(VENDORED, 'return "Infinity"', 'return "Broken"')
    summary = vendored.run()
    ran = ran_nodes(summary)
    assert "tests/test_vendored.py::test_vendored" in ran
    assert "tests/test_vendored_child.py::test_child" in ran
    assert summary.failed == 2  # as pytest says
