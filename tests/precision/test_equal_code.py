"""Code objects compare equal whatever their file (same name, first line, bytecode, constants),
and a record may name one copy for the other: a test file copied to another directory, a module
copied beside its original. A change to either copy still re-runs the tests that ran it."""

from __future__ import annotations

import pytest
from precision_helpers import Workspace, ran_nodes

from maestro.engine.interpreter import Interpreter

HELPER = "def helper():\n    return 1\n"
COPIED = {
    "pkg/one.py": HELPER,
    "pkg/two.py": HELPER,
    "tests/test_one.py": "from pkg import one\n\n\ndef test_one():\n    assert one.helper() == 1\n",
    "tests/test_two.py": "from pkg import two\n\n\ndef test_two():\n    assert two.helper() == 1\n",
    "tests/test_both.py": (
        "from pkg import one, two\n\n\n"
        "def test_both():\n    assert one.helper() + two.helper() == 2\n"
    ),
    "tests/v1/__init__.py": "",
    "tests/v2/__init__.py": "",
    "tests/v1/test_dup.py": "def test_sum():\n    assert 1 + 1 == 2\n",
    "tests/v2/test_dup.py": "def test_sum():\n    assert 1 + 1 == 2\n",
}


@pytest.fixture(params=["3.11", "3.12"])
def copies(request: pytest.FixtureRequest, ws: Workspace) -> Workspace:
    if request.param == "3.12":
        interpreter: Interpreter = request.getfixturevalue("interpreter312")
        ws = Workspace(ws.root, interpreter)
    for rel, text in COPIED.items():
        ws.write(rel, text)
    assert ws.run().failed == 0
    return ws


def test_an_edit_to_a_copied_test_file_reruns_its_test(copies: Workspace) -> None:
    copies.edit("tests/v2/test_dup.py", "1 + 1 == 2", "1 + 1 == 3")
    summary = copies.run()
    assert "tests/v2/test_dup.py::test_sum" in ran_nodes(summary)
    assert summary.failed == 1


def test_an_edit_to_a_copied_function_reruns_every_test_that_ran_it(copies: Workspace) -> None:
    copies.edit("pkg/two.py", "return 1", "return 2")
    summary = copies.run()
    ran = ran_nodes(summary)
    assert {"tests/test_two.py::test_two", "tests/test_both.py::test_both"} <= set(ran)
    assert summary.failed == 2
