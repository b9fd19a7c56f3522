"""A test that looks for files in a fresh temporary folder (``tempfile.mkdtemp``,
``TemporaryDirectory``) keys none of them: the folder's name is drawn at random and made new
for the run, so nothing a later run looks up can be there under that name. They were keyed as
absent once the folder was removed, and a module's reads are a union over runs: yamllint's
``tests/test_cli.py`` key grew by about 210 such names at every run. A fixed-name folder the
test makes and removes stays an input: a user may fill it later."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from precision_helpers import Workspace, ran_nodes

# a module that keeps what it looked for: its reads count for every file importing it, a union
# over runs (as yamllint's configuration loader)
CONF = """
import os

FOUND = {}


def load(folder):
    path = os.path.join(folder, "tool.cfg")
    try:
        with open(path) as f:
            FOUND[path] = f.read()
    except FileNotFoundError:
        FOUND[path] = None
    os.path.exists(os.path.join(folder, ".toolrc"))  # a probe too
    return FOUND[path]
"""

IN_PROCESS = """
import os
import tempfile

from pkg import conf


def test_scratch():
    folder = tempfile.mkdtemp(prefix="tool-tests-")
    assert conf.load(folder) is None
    os.rmdir(folder)


def test_scratch_context():
    with tempfile.TemporaryDirectory() as folder:
        assert conf.load(folder) is None
"""

IN_CHILD = """
import subprocess
import sys

CODE = '''
import os, tempfile
from pkg import conf
folder = tempfile.mkdtemp()
assert conf.load(folder) is None
os.rmdir(folder)
'''


def test_scratch_in_a_child():
    subprocess.run([sys.executable, "-c", CODE], check=True)
"""


def _temporary_names(ws: Workspace, target: str) -> list[str]:
    planned = next(f for f in ws.plan().files if f.target == target)
    temp = tempfile.gettempdir() + "/"
    return sorted(n for n in planned.key.inputs if n.startswith(temp))


@pytest.mark.parametrize("test_file", ["tests/test_scratch.py", "tests/test_child_scratch.py"])
def test_a_fresh_temporary_folder_s_files_are_no_inputs_however_many_runs(
    ws: Workspace, test_file: str
) -> None:
    ws.write("pkg/conf.py", CONF)
    ws.write("tests/test_scratch.py", IN_PROCESS)
    ws.write("tests/test_child_scratch.py", IN_CHILD)
    assert ws.run().failed == 0
    for n in range(4):  # each edit re-runs the tests that ran load(): a new folder each time
        ws.edit(
            "pkg/conf.py", "    return FOUND[path]\n", f"    x{n} = 1\n    return FOUND[path]\n"
        )
        summary = ws.run()
        assert summary.failed == 0
        assert any(n.startswith(test_file) for n in ran_nodes(summary))
        assert _temporary_names(ws, test_file) == []
    # an edit that matters still re-runs, and fails as under pytest
    ws.edit("pkg/conf.py", "FOUND[path] = None", "FOUND[path] = 'default'")
    summary = ws.run()
    assert any(n.startswith(test_file) for n in ran_nodes(summary))
    assert summary.failed == 3


FIXED = """
import os

from pkg import conf


def test_fixed_folder():
    os.makedirs({folder!r}, exist_ok=True)
    assert conf.load({folder!r}) is None
    os.rmdir({folder!r})
"""


@pytest.fixture
def fixed_folder() -> Iterator[Path]:
    # a name the test under Maestro picks itself (not drawn at random), outside the workspace
    # and pytest's own temporary folders
    parent = Path(tempfile.mkdtemp(prefix="maestro-fixed-"))
    yield parent / "tool-home"
    shutil.rmtree(parent, ignore_errors=True)


def test_a_fixed_name_folder_the_test_made_and_removed_stays_an_input(
    ws: Workspace, fixed_folder: Path
) -> None:
    ws.write("pkg/conf.py", CONF)
    ws.write("tests/test_fixed.py", FIXED.format(folder=str(fixed_folder)))
    assert ws.run().failed == 0
    assert ran_nodes(ws.run()) == []  # nothing changed: served
    # a user makes the folder and puts a configuration file in it: plain pytest fails the test
    fixed_folder.mkdir()
    (fixed_folder / "tool.cfg").write_text("[tool]\n")
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_fixed.py::test_fixed_folder"]
    assert summary.failed == 1
