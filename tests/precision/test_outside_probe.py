"""A test (or a Python child it starts) that asks whether a file outside the workspace is there
without opening it (``os.path.isfile``: an ``os.stat``, no audit event) and finds it missing
depends on its staying away: yamllint looks for its configuration from the working folder up,
past the project, so a ``.yamllint`` created in a folder above it changes the outcome. Once the
file appears the test re-runs and fails as under pytest (served as passed before)."""

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


IN_PROCESS = """
import os


def test_no_config():
    assert not os.path.isfile({config!r})
"""

IN_CHILD = """
import subprocess
import sys


def test_no_config():
    code = "import os, sys; sys.exit(os.path.isfile({config!r}))"
    subprocess.run([sys.executable, "-c", code], check=True)
"""


@pytest.mark.parametrize("where", ["in-process", "in-child"])
def test_a_missing_file_outside_a_stat_looked_for_reruns_the_test_once_created(
    ws: Workspace, outside: Path, where: str
) -> None:
    config = outside / "tool.cfg"
    body = IN_PROCESS if where == "in-process" else IN_CHILD
    ws.write("tests/test_config.py", body.format(config=str(config)))
    assert ws.run().failed == 0
    assert ran_nodes(ws.run()) == []  # still absent: served
    config.write_text("[tool]\n")
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_config.py::test_no_config"]
    assert summary.failed == 1


def test_a_file_outside_the_test_makes_after_finding_it_missing_is_no_input(
    ws: Workspace, outside: Path
) -> None:
    # a tool's cache outside the project, made by the test itself: no reason to re-run it
    marker = outside / "made.txt"
    ws.write(
        "tests/test_cache.py",
        "import os\n\n\n"
        "def test_makes_its_cache():\n"
        f"    if not os.path.isfile({str(marker)!r}):\n"
        f"        open({str(marker)!r}, 'w').close()\n",
    )
    assert ws.run().failed == 0
    assert ran_nodes(ws.run()) == []
