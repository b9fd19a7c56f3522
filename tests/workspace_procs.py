"""Shared by the tests that start real daemons (RPC, LSP, editors): which daemons serve a
workspace, how to stop them all, and the small failing-test project several of them drive.

On sys.path through pytest's `pythonpath` (pyproject.toml), so every test folder imports it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from pytest import MonkeyPatch

GIT = ["git", "-c", "user.email=t@t", "-c", "user.name=t", "-c", "commit.gpgsign=false"]

# A module two tests import, one of them failing: test_div_zero's assert is line 9 of
# tests/test_calc.py and pkg/calc.py raises at line 7.
CALC_FILES = {
    "pkg/__init__.py": "",
    "pkg/calc.py": """
        def add(a, b):
            return a + b


        def div(a, b):
            if b == 0:
                raise ZeroDivisionError("no zero please")
            return a / b
        """,
    "tests/__init__.py": "",
    "tests/test_calc.py": """
        from pkg.calc import add, div


        def test_add():
            assert add(1, 2) == 3


        def test_div_zero():
            assert div(1, 0) == 0


        class TestMore:
            def test_div(self):
                assert div(4, 2) == 2
        """,
}
CALC_FAIL_LINE = 9
CALC_RAISE_LINE = 7

# A second module that one test file imports: an edit there impacts that file only.
OTHER_FILES = {
    "pkg/other.py": """
        def hello():
            return "hello"
        """,
    "tests/test_other.py": """
        import pkg.other


        def test_hello():
            assert pkg.other.hello() == "hello"
        """,
}


# An extension module `_speed` whose answer() is 42: C source built in place by a test
EXTENSION_C_SOURCE = """\
#include <Python.h>
static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(42); }
static PyMethodDef M[] = {{"answer", answer, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef D = {PyModuleDef_HEAD_INIT, "_speed", NULL, -1, M};
PyMODINIT_FUNC PyInit__speed(void) { return PyModule_Create(&D); }
"""


def pyproject(name: str) -> str:
    """A project named ``name`` whose tests pytest finds under tests/."""
    return f"""
        [project]
        name = "{name}"
        version = "0"

        [tool.pytest.ini_options]
        testpaths = ["tests"]
        """


def write_files(root: Path, files: dict[str, str]) -> None:
    """Write ``files`` (relative path -> indented text) below ``root``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


def commit_all(root: Path, message: str = "work") -> None:
    """Commit the whole tree (a repository is made first if there is none)."""
    if not (root / ".git").exists():
        subprocess.run([*GIT, "init", "-q"], cwd=root, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-q", "-m", message], cwd=root, check=True)


def daemon_processes(root: Path) -> list[int]:
    """Pids of the live (non-zombie) `python -m maestro.daemon <root>` processes."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"maestro.daemon" in argv and os.fsencode(root) in argv and state != "Z":
            found.append(int(entry.name))
    return found


def waiting_pytest(root: Path) -> list[int]:
    """Pids of the pytest processes started ahead of a run (``maestro_warm``) in ``root``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if b"maestro_warm" in cmdline and cwd == str(root) and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def kill_daemons(root: Path, timeout: float = 5.0) -> None:
    """SIGKILL every daemon of ``root`` and wait until none is left (or ``timeout``): a daemon
    another process spawned gets its signal when it is next scheduled, which on a loaded
    machine can take a moment."""
    for pid in daemon_processes(root):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while daemon_processes(root) and time.monotonic() < deadline:
        time.sleep(0.02)


def no_daemon_left(root: Path) -> None:
    """A test's teardown: kill every daemon of ``root``, and fail if one survives."""
    kill_daemons(root)
    assert not daemon_processes(root), "a daemon survived the test"


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (read from /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_running(marker: Path, cli: subprocess.Popen[str], seconds: float) -> None:
    """Wait until a test the `cli` runs wrote `marker` (it is under way); fail with what the CLI
    printed if it ended first or the time ran out."""
    deadline = time.monotonic() + seconds
    while not marker.exists() and cli.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), cli.communicate(timeout=10)


def wait_dead(pid: int, seconds: float = 5.0) -> bool:
    """Whether ``pid`` is gone (or a zombie) within ``seconds``."""
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not alive(pid)


@contextlib.contextmanager
def daemon_workspace(
    monkeypatch: MonkeyPatch,
    files: Mapping[str, str] | Callable[[Path], Mapping[str, str]],
    prefix: str,
) -> Iterator[Path]:
    """A workspace for tests that start a real daemon, under a short /tmp path (AF_UNIX socket
    paths are short); ``files`` may be made from the scratch folder it gets. Its daemons are
    killed and the folder removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    root = (base / "ws").resolve()
    for rel, text in (files(base) if callable(files) else files).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.setenv("MAESTRO_STATE_DIR", str(base / "st"))
    # a cache of its own: results another run of the same files stored (the user's cache, an
    # earlier test session) would be served, and "failed last time" hides what changed
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("MAESTRO_DAEMON_START_TIMEOUT", "30")
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    try:
        yield root
    finally:
        kill_daemons(root)
        shutil.rmtree(base, ignore_errors=True)
