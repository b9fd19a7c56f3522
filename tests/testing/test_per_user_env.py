"""The user's own variables (HOME, USER, LOGNAME, SHELL, TMPDIR, TERM) reach pytest but key only
the test files that read them: two developers, or a laptop and CI, share the results of the
files that read none. Found by a trial of the team cache (two machines, one coordinator,
PyYAML): `env:HOME` was in every key, so no file was ever served across machines. A file that
reads one (through os.environ, expanduser, getpass, tempfile, tmp_path, a copy of the
environment, a program it starts, curses' C code, a session fixture, a conftest's import) runs
again when its value changes, and fails as plain pytest does. A recorded Python child charges
the test only with what it read; any other program, or a child that left no record, with all.
Real pytest, real LMDB."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from project_python import project_python
from testing_helpers import Workspace

from maestro.cache import Cache
from maestro.engine import testing

PLAIN = """
def test_plain():
    assert sum(range(4)) == 6
"""

# each asserts what the first user's environment gives: under the second user's, plain pytest
# fails it
READERS = {
    "tests/test_expanduser.py": """
import os.path

def test_home():
    assert os.path.expanduser("~/x").endswith("/alice/x")
""",
    "tests/test_pathlib_home.py": """
from pathlib import Path

def test_home():
    assert Path.home().name == "alice"
""",
    "tests/test_environ_item.py": """
import os

def test_shell_home():
    assert os.environ["HOME"].endswith("alice")
""",
    "tests/test_getpass.py": """
import getpass

def test_user():
    assert getpass.getuser() == "alice"
""",
    "tests/test_copy.py": """
import os

def test_copy():
    assert dict(os.environ.copy()).get("USER") == "alice"
""",
    "tests/test_child.py": """
import subprocess
import sys

def test_child():
    out = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ['LOGNAME'])"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert out.strip() == "alice"
""",
    "tests/test_shell_child.py": """
import subprocess

def test_shell_child():
    done = subprocess.run(["sh", "-c", 'echo "$HOME"'], capture_output=True, text=True)
    assert done.stdout.strip().endswith("alice")
""",
    "tests/test_tempfile.py": """
import tempfile

def test_tempdir():
    assert tempfile.mkdtemp().startswith(ALICE_TMP)
""",
    "tests/test_tmp_path.py": """
def test_tmp_path(tmp_path):
    assert str(tmp_path).startswith(ALICE_TMP)
""",
    "tests/test_fixture_a.py": """
def test_a(home):
    assert home.endswith("alice")
""",
    "tests/test_fixture_b.py": """
def test_b(home):
    assert home.endswith("alice")
""",
    # last: once curses is loaded, every file the process runs after is keyed on TERM and HOME
    "tests/test_zz_curses.py": """
import curses
import sys

def test_colors():
    curses.setupterm(None, sys.__stdout__.fileno())
    assert curses.tigetnum("colors") == 8
""",
}

CONFTEST = """
import os

import pytest


@pytest.fixture(scope="session")
def home():
    return os.environ["HOME"]
"""


def user(base: Path, name: str, term: str) -> dict[str, str]:
    """An environment as `name`'s machine gives it: its own home, user name and temporary
    folder (resolved: pytest resolves its own)."""
    home, tmp = base / "home" / name, base / "tmp" / name
    home.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MAESTRO_DAEMON"))}
    env.update(
        HOME=str(home), USER=name, LOGNAME=name, TMPDIR=os.path.realpath(tmp), TERM=term,
        MAESTRO_DAEMON="off",
    )  # fmt: skip
    return env


def outcomes(summary: object) -> dict[str, tuple[str, bool]]:
    """Test file -> (its outcome, whether it was served from the cache)."""
    out = {}
    for f in summary.files:  # type: ignore[attr-defined]
        failed = any(t.outcome in ("failed", "error") for t in f.result.tests)
        out[f.target] = ("failed" if failed else "passed", f.cached)
    return out


def pytest_failures(ws: Workspace, env: dict[str, str]) -> set[str]:
    done = subprocess.run(
        [str(project_python()), "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", "tests"],
        cwd=ws.root, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return {
        line.split()[1].partition("::")[0]
        for line in done.stdout.splitlines()
        if line.startswith("FAILED ")
    }


def test_a_file_reading_none_of_them_is_served_to_another_user(ws: Workspace) -> None:
    ws.write("tests/test_plain.py", PLAIN)
    alice = user(ws.root.parent, "alice", "xterm")
    bob = user(ws.root.parent, "bob", "dumb")
    bob["SHELL"] = "/bin/zsh" if alice.get("SHELL") != "/bin/zsh" else "/bin/bash"
    selection = testing.Selection(paths=("tests/test_plain.py",))
    with Cache.open() as cache:
        first = testing.run(ws.graph(), cache, ws.interpreter, selection, environ=alice)
        assert outcomes(first) == {"tests/test_plain.py": ("passed", False)}
        second = testing.run(ws.graph(), cache, ws.interpreter, selection, environ=bob)
    # another HOME, USER, LOGNAME, SHELL, TMPDIR and TERM: the same key
    assert outcomes(second) == {"tests/test_plain.py": ("passed", True)}, second.files[
        0
    ].planned.changed
    assert "env:HOME" not in second.files[0].planned.key.inputs  # type: ignore[attr-defined]


def test_a_file_that_reads_one_runs_again_with_its_value(ws: Workspace) -> None:
    ws.write("tests/test_plain.py", PLAIN)
    alice = user(ws.root.parent, "alice", "xterm")
    bob = user(ws.root.parent, "bob", "dumb")
    ws.write("tests/conftest.py", CONFTEST)
    for rel, text in READERS.items():
        ws.write(rel, text.replace("ALICE_TMP", repr(alice["TMPDIR"])))
    readers = set(READERS)
    selection = testing.Selection()
    with Cache.open() as cache:
        first = testing.run(ws.graph(), cache, ws.interpreter, selection, environ=alice)
        assert {t for t, (o, _) in outcomes(first).items() if o == "failed"} == set()
        second = testing.run(ws.graph(), cache, ws.interpreter, selection, environ=bob)
        third = testing.run(ws.graph(), cache, ws.interpreter, selection, environ=alice)
    seen = outcomes(second)
    # every reader ran again and failed, as plain pytest does for bob; the plain file was served
    assert {t for t, (o, _) in seen.items() if o == "failed"} == readers, seen
    assert pytest_failures(ws, bob) == readers
    assert not any(cached for t, (_, cached) in seen.items() if t in readers), seen
    assert seen["tests/test_plain.py"] == ("passed", True), [
        f.planned.changed for f in second.files if f.target == "tests/test_plain.py"
    ]
    # alice again: every file served (each reader's earlier result holds for her values)
    assert all(cached and o == "passed" for o, cached in outcomes(third).values()), third


def test_a_conftest_reading_one_at_import_keys_every_file(ws: Workspace) -> None:
    ws.write("tests/test_plain.py", PLAIN)
    ws.write("tests/conftest.py", "import os\n\nSHELL = os.environ.get('SHELL')\n")
    ws.write("tests/test_other.py", "def test_other():\n    assert True\n")
    alice = user(ws.root.parent, "alice", "xterm")
    alice["SHELL"] = "/bin/bash"
    other = {**alice, "SHELL": "/bin/zsh"}
    with Cache.open() as cache:
        testing.run(ws.graph(), cache, ws.interpreter, testing.Selection(), environ=alice)
        second = testing.run(ws.graph(), cache, ws.interpreter, testing.Selection(), environ=other)
    assert not any(cached for _, cached in outcomes(second).values()), outcomes(second)
    assert {tuple(f.planned.changed) for f in second.files} == {("env:SHELL",)}  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["HOME", "TERM"])
def test_a_workspace_can_key_one_for_every_file(ws: Workspace, name: str) -> None:
    # C code of an installed extension reading it with getenv() is not seen: the workspace's
    # env-allowlist keys it for every file
    ws.write("tests/test_plain.py", PLAIN)
    ws.write("pyproject.toml", f'[tool.maestro]\nenv-allowlist = ["{name}"]\n')
    alice = user(ws.root.parent, "alice", "xterm")
    bob = user(ws.root.parent, "bob", "dumb")
    only = testing.Selection(paths=("tests/test_plain.py",))
    with Cache.open() as cache:
        testing.run(ws.graph(), cache, ws.interpreter, only, environ=alice)
        second = testing.run(ws.graph(), cache, ws.interpreter, only, environ=bob)
    assert outcomes(second) == {"tests/test_plain.py": ("passed", False)}
    assert second.files[0].planned.changed == [f"env:{name}"]  # type: ignore[attr-defined]


# Python children a test starts: a recorded one reports which of the variables it read
CHILDREN = {
    # reads none: served to another user
    "tests/test_quiet_child.py": """
import subprocess
import sys

def test_quiet_child():
    out = subprocess.run(
        [sys.executable, "-c", "print(1)"], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "1"
""",
    # reads HOME: runs again for another user, and fails as plain pytest does
    "tests/test_child_home.py": """
import subprocess
import sys

def test_child_home():
    out = subprocess.run(
        [sys.executable, "-c", "import os.path; print(os.path.expanduser('~'))"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert out.strip().endswith("alice")
""",
    # the rest pass for both, but what they read is unknown: every variable keys them
    "tests/test_child_shell.py": """
import subprocess
import sys

def test_child_shell():
    code = "import subprocess; subprocess.run(['sh', '-c', 'true'], check=True)"
    subprocess.run([sys.executable, "-c", code], check=True)
""",
    "tests/test_child_copy.py": """
import subprocess
import sys

def test_child_copy():
    code = "import os; print(len(os.environ.copy()) > 0)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip() == "True"
""",
    # reads HOME, then replaces itself with another Python program (exec: no exit)
    "tests/test_child_exec.py": """
import subprocess
import sys

def test_child_exec():
    code = (
        "import os, sys; os.environ['HOME']; "
        "os.execv(sys.executable, [sys.executable, '-c', 'print(1)'])"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
""",
    "tests/test_unrecorded_child.py": """
import subprocess
import sys

def test_unrecorded_child():
    subprocess.run([sys.executable, "-I", "-c", "print(1)"], check=True)
""",
}


def test_a_recorded_python_child_keys_only_what_it_read(ws: Workspace) -> None:
    for rel, text in CHILDREN.items():
        ws.write(rel, text)
    alice = user(ws.root.parent, "alice", "xterm")
    bob = user(ws.root.parent, "bob", "dumb")
    bob["SHELL"] = "/bin/zsh" if alice.get("SHELL") != "/bin/zsh" else "/bin/bash"
    every = sorted(f"env:{n}" for n in ("HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "TERM"))
    with Cache.open() as cache:
        first = testing.run(ws.graph(), cache, ws.interpreter, testing.Selection(), environ=alice)
        assert {o for o, _ in outcomes(first).values()} == {"passed"}, outcomes(first)
        second = testing.run(ws.graph(), cache, ws.interpreter, testing.Selection(), environ=bob)
    seen = outcomes(second)
    changed = {f.target: sorted(f.planned.changed) for f in second.files}  # type: ignore[attr-defined]
    assert seen["tests/test_quiet_child.py"] == ("passed", True), changed
    # plain pytest fails it for bob too
    assert seen["tests/test_child_home.py"] == ("failed", False), changed
    assert changed["tests/test_child_home.py"] == ["env:HOME"]
    assert pytest_failures(ws, bob) == {"tests/test_child_home.py"}
    for unknown in (
        "test_child_shell.py", "test_child_copy.py", "test_child_exec.py",
        "test_unrecorded_child.py",
    ):  # fmt: skip
        assert seen[f"tests/{unknown}"] == ("passed", False), changed
        assert changed[f"tests/{unknown}"] == every, changed
