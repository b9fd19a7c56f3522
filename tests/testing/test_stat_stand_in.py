"""The recorder's stand-ins for ``os.stat``/``os.lstat`` pass for them wherever code asks which
function it is, in the test process and in its Python children.

Seen on a user trial (pyfakefs 6.3.2's own suite): 3 tests failed under Maestro that pass
under pytest: ``os.stat in os.supports_follow_symlinks`` was False (shutil decides on it whether
its ``rmtree`` takes the safe walk), and pyfakefs did not fake ``from os import stat`` (it
recognises os's functions by name and module)."""

from __future__ import annotations

from test_fidelity_trials import outcomes, pytest_says
from testing_helpers import Workspace

IDENTITY = """
import os
import subprocess
import sys

CHECK = (
    "import os; "
    "assert os.stat.__name__ == 'stat' and os.lstat.__name__ == 'lstat'; "
    "assert os.stat.__module__ == os.lstat.__module__ == os.name; "
    "assert os.stat in os.supports_fd and os.stat in os.supports_dir_fd; "
    "assert os.stat in os.supports_follow_symlinks"
)


def test_stat_is_os_stat_here():
    exec(CHECK)


def test_stat_is_os_stat_in_a_child():
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
"""


def test_the_recorders_stat_passes_for_os_stat(ws: Workspace) -> None:
    ws.write("tests/test_identity.py", IDENTITY)
    found = {n: o for n, o in outcomes(ws.run()).items() if "test_identity" in n}
    assert found == {n: o for n, o in pytest_says(ws).items() if "test_identity" in n}
    assert set(found.values()) == {"passed"}, found
