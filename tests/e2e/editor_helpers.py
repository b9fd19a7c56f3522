"""A small multi-file project for the real-editor tests (Neovim, Emacs), the README recipe each
editor runs as written, and cleanup of the daemons they start.

The project is a git repository (editors find the root by it; "impacted" is the working tree
against HEAD): a source module two test files import, a failing test, passing ones elsewhere.
State and cache live under a short /tmp path (AF_UNIX socket paths are short).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

FILES = {
    ".gitignore": """
        __pycache__/
        .pytest_cache/
        """,
    "pyproject.toml": """
        [project]
        name = "editordemo"
        version = "0"

        [tool.pytest.ini_options]
        testpaths = ["tests"]
        """,
    "pkg/__init__.py": "",
    "pkg/calc.py": """
        def add(a, b):
            return a + b


        def div(a, b):
            if b == 0:
                raise ZeroDivisionError("no zero please")
            return a / b
        """,
    "pkg/geometry.py": """
        from pkg.calc import div


        def ratio(width, height):
            return div(width, height)
        """,
    "pkg/text.py": """
        def shout(word):
            return word.upper() + "!"
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
    "tests/test_geometry.py": """
        from pkg.geometry import ratio


        def test_ratio():
            assert ratio(4, 2) == 2
        """,
    "tests/test_text.py": """
        from pkg.text import shout


        def test_shout():
            assert shout("hi") == "HI!"
        """,
}
FAIL_LINE = 9  # tests/test_calc.py: test_div_zero's assert (1-based)


class Project:
    """The project on disk, its isolated Maestro state, and an environment to start editors in."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = (base / "ws").resolve()
        bin_dir = str(Path(sys.executable).parent)  # `maestro` and the python with pytest
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "MAESTRO_STATE_DIR": str(base / "st"),
            "MAESTRO_CACHE_DIR": str(base / "ca"),
            "MAESTRO_DAEMON_START_TIMEOUT": "60",
            "HOME": str(base / "home"),  # no user config, history or packages
            "XDG_CONFIG_HOME": str(base / "home/.config"),
            "XDG_DATA_HOME": str(base / "home/.local/share"),
            "XDG_STATE_HOME": str(base / "home/.local/state"),
            "XDG_CACHE_HOME": str(base / "home/.cache"),
        }
        for name in ("XDG_RUNTIME_DIR", "MAESTRO_DAEMON_IDLE", "COLUMNS", "LINES"):
            self.env.pop(name, None)

    def write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))

    def commit(self) -> None:
        git = ["git", "-c", "user.email=t@t", "-c", "user.name=t", "-c", "commit.gpgsign=false"]
        if not (self.root / ".git").exists():
            subprocess.run([*git, "init", "-q"], cwd=self.root, check=True)
        subprocess.run([*git, "add", "-A"], cwd=self.root, check=True)
        subprocess.run([*git, "commit", "-q", "-m", "work"], cwd=self.root, check=True)


@pytest.fixture
def project() -> Iterator[Project]:
    base = Path(tempfile.mkdtemp(prefix="medit", dir="/tmp"))
    made = Project(base)
    (base / "home").mkdir()
    for rel, text in FILES.items():
        made.write(rel, text)
    # the workspace's interpreter is the one with pytest (a person's project venv)
    made.write("maestro.toml", f"interpreter = {sys.executable!r}\n")
    made.commit()
    try:
        yield made
    finally:
        kill_daemons(made.root)
        assert not daemon_processes(made.root), "a daemon survived the test"
        shutil.rmtree(base, ignore_errors=True)


def recipe(heading: str, language: str) -> str:
    """The first ```language block under the README heading that starts with ``heading``: the
    tests run the recipes exactly as a person copies them."""
    text = README.read_text()
    start = text.index("\n### " + heading)
    block = re.compile(rf"```{language}\n(.*?)```", re.S).search(text, start)
    assert block is not None, f"no {language} block under {heading!r} in README.md"
    return block.group(1)


def daemon_processes(root: Path) -> list[int]:
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


def kill_daemons(root: Path) -> None:
    for pid in daemon_processes(root):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while daemon_processes(root) and time.monotonic() < deadline:
        time.sleep(0.05)
