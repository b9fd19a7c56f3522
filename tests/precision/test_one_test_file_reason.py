"""A test file with a single test, re-run for a reason of the whole file (a conftest it imports
read a changed data file; its own module-level code changed), says it of the file, never as
'<node> <reason>' (fasteners: 'inputs changed: tests/data/conf.json: tests/test_helpers.py::
test_try_lock tests/conftest.py, which this file imports, read tests/data/conf.json (changed)
and may keep what it read')."""

from __future__ import annotations

from precision_helpers import Workspace

CONFTEST = """\
import json
import pathlib

import pytest


@pytest.fixture(scope="session")
def conf():
    return json.loads((pathlib.Path(__file__).parent / "conf.json").read_text())
"""


def test_a_one_test_file_rerun_for_its_conftest_s_read_says_it_of_the_file(ws: Workspace) -> None:
    ws.write("tests/conftest.py", CONFTEST)
    ws.write("tests/conf.json", '{"n": 3}\n')
    ws.write("tests/test_conf.py", "def test_uses(conf):\n    assert conf['n'] == 3\n")
    ws.write("tests/test_alone.py", "def test_only():\n    assert 1 + 1 == 2\n")
    assert ws.run().failed == 0
    ws.write("tests/conf.json", '{"n": 2}\n')
    plan = ws.plan()
    alone = next(f for f in plan.files if f.target == "tests/test_alone.py")
    assert alone.runs
    said = alone.describe()
    assert "test_only tests/conftest.py" not in said, said
    assert said == (
        "inputs changed: tests/conf.json: the whole file: tests/conftest.py, which this file "
        "imports, read tests/conf.json (changed) and may keep what it read"
    ), said
    summary = ws.run()
    assert summary.failed == 1  # as plain pytest: test_uses sees the new value
