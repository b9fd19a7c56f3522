"""A test that opens a file outside the workspace which is not there (a configuration file looked
for in a folder above the project) depends on its staying away: once it is created, the test
re-runs and fails as under pytest (served as passed before)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from precision_helpers import Workspace, ran_nodes


@pytest.fixture
def outside() -> Iterator[Path]:
    # not under pytest's own temporary folders, which are a test's scratch and never inputs
    folder = Path(tempfile.mkdtemp(prefix="maestro-outside-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_missing_file_outside_that_appears_reruns_the_test(ws: Workspace, outside: Path) -> None:
    config = outside / "tool.cfg"
    ws.write(
        "tests/test_config.py",
        "def test_no_config():\n"
        "    try:\n"
        f"        open({str(config)!r}).close()\n"
        "    except FileNotFoundError:\n"
        "        return\n"
        "    raise AssertionError('a configuration file was found')\n",
    )
    assert ws.run().failed == 0
    assert ran_nodes(ws.run()) == []  # still absent: served
    config.write_text("[tool]\n")
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_config.py::test_no_config"]
    assert summary.failed == 1
