"""A data file read through the reader a conftest fixture returns (a function nested in the
fixture) counts for the test that called it, when the reader keeps nothing; a reader that may
keep what it read (behind a cache, or holding a memo of the fixture's) counts for every file in
the conftest's scope. tomlkit 0.15.3: editing tests/examples/fruit.toml, which one test reads
through the ``example`` fixture's reader, re-ran all 13 test files."""

from __future__ import annotations

import pytest
from precision_helpers import Workspace, ran_nodes

CONFTEST = """\
import functools
import os

import pytest

HERE = os.path.dirname(__file__)


@pytest.fixture{scope}
def example():
{body}
    return _example
"""

PLAIN = """\
    def _example(name):
        with open(os.path.join(HERE, "examples", name + ".txt"), encoding="utf-8") as f:
            return f.read()
"""

KEEPERS = {
    "a cache around the reader": (
        '(scope="session")',
        "    @functools.lru_cache(maxsize=None)\n" + PLAIN,
    ),
    "a session fixture's value": (
        '(scope="session")',
        '    with open(os.path.join(HERE, "examples", "fruit.txt")) as f:\n'
        "        text = f.read()\n\n"
        "    def _example(name):\n"
        "        return text\n",
    ),
    "a memo of the fixture's": (
        '(scope="session")',
        "    seen = {}\n\n"
        "    def _example(name):\n"
        "        if name not in seen:\n"
        '            with open(os.path.join(HERE, "examples", name + ".txt")) as f:\n'
        "                seen[name] = f.read()\n"
        "        return seen[name]\n",
    ),
}


def _workspace(ws: Workspace, scope: str, body: str, later: str) -> None:
    ws.write("tests/conftest.py", CONFTEST.format(scope=scope, body=body))
    ws.write("tests/examples/fruit.txt", "apple\n")
    ws.write("tests/examples/veg.txt", "leek\n")
    ws.write(
        "tests/test_fruit.py",
        'def test_fruit(example):\n    assert example("fruit") == "apple\\n"\n',
    )
    ws.write("tests/test_veg.py", later)


def test_a_file_read_through_a_fixtures_plain_reader_reruns_its_reader_only(
    ws: Workspace,
) -> None:
    later = 'def test_veg(example):\n    assert example("veg") == "leek\\n"\n'
    _workspace(ws, "", PLAIN, later)
    assert ws.run().failed == 0
    ws.write("tests/examples/fruit.txt", "pear\n")
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_fruit.py::test_fruit"]
    assert summary.failed == 1


@pytest.mark.parametrize("keeper", sorted(KEEPERS))
def test_a_file_a_fixtures_reader_may_keep_reruns_its_scope(ws: Workspace, keeper: str) -> None:
    scope, body = KEEPERS[keeper]
    # runs after test_fruit.py: served from what the reader kept, it never reads fruit.txt
    later = 'def test_later(example):\n    assert example("fruit") == "apple\\n"\n'
    _workspace(ws, scope, body, later)
    assert ws.run().failed == 0
    ws.write("tests/examples/fruit.txt", "pear\n")
    summary = ws.run()
    assert "tests/test_veg.py::test_later" in ran_nodes(summary), keeper
    assert summary.failed == 2, keeper
