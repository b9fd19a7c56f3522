"""A small multi-file project for the real-editor tests (Neovim, Emacs), the README recipe each
editor runs as written, and cleanup of the daemons they start.

The project is a git repository (editors find the root by it; "impacted" is the working tree
against HEAD): a source module two test files import, a failing test, passing ones elsewhere.
State and cache live under a short /tmp path (AF_UNIX socket paths are short).

``real_project`` is a real one instead: python-dateutil's sdist (the project the editor
problems were found on), downloaded once with pip into the gitignored .bench/dl that the benches
share; the tests that use it skip, saying why, when PyPI cannot be reached.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from workspace_procs import (
    CALC_FAIL_LINE,
    CALC_FILES,
    commit_all,
    kill_daemons,  # noqa: F401 (vscode_screenshots imports it from here)
    no_daemon_left,
    pyproject,
    write_files,
)

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
REAL_DIST, REAL_VERSION = "python-dateutil", "2.9.0.post0"
DOWNLOADS = REPO / ".bench" / "dl"  # gitignored, shared with the benches' downloads
REAL_VENV = REPO / ".bench" / "e2e" / "dateutil-venv"
REAL_TEST_DEPS = ("six", "pytest>=8", "pytest-cov", "freezegun", "hypothesis>=3.30")

FILES = {
    ".gitignore": """
        __pycache__/
        .pytest_cache/
        """,
    "pyproject.toml": pyproject("editordemo"),
    **CALC_FILES,
    "pkg/geometry.py": """
        from pkg.calc import div


        def ratio(width, height):
            return div(width, height)
        """,
    "pkg/text.py": """
        def shout(word):
            return word.upper() + "!"
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
FAIL_LINE = CALC_FAIL_LINE  # tests/test_calc.py: test_div_zero's assert (1-based)


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
        write_files(self.root, {rel: text})

    def commit(self) -> None:
        commit_all(self.root)


@contextlib.contextmanager
def _checked_out(
    prefix: str, fill: Callable[[Project], None], interpreter: str = sys.executable
) -> Iterator[Project]:
    """A project in a fresh /tmp folder with a home beside it, filled by ``fill`` and committed;
    on exit no daemon is left and the folder is gone."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    made = Project(base)
    (base / "home").mkdir()
    try:
        fill(made)
        # the workspace's interpreter is the one with pytest (a person's project venv)
        made.write("maestro.toml", f"interpreter = {interpreter!r}\n")
        made.commit()
        yield made
    finally:
        no_daemon_left(made.root)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def project() -> Iterator[Project]:
    def fill(made: Project) -> None:
        for rel, text in FILES.items():
            made.write(rel, text)

    with _checked_out("medit", fill) as made:
        yield made


def real_sdist() -> Path:
    """The real project's sdist, downloaded once (pip, PyPI); skips the test when unreachable."""
    archive = DOWNLOADS / f"{REAL_DIST}-{REAL_VERSION}.tar.gz"
    if not archive.exists():
        DOWNLOADS.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
             f"{REAL_DIST}=={REAL_VERSION}", "-d", str(DOWNLOADS)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if not archive.exists():
            pytest.skip(f"cannot download {archive.name} (PyPI): {proc.stderr.strip()[-300:]}")
    return archive


def real_python() -> Path:
    """The real project's venv, as its developers make it (its requirements-dev.txt less
    coverage and build tools), made once with pip into the gitignored .bench; skips the test when
    PyPI cannot be reached. Maestro's own venv does not do: its pytest-asyncio warns at start-up,
    and dateutil's `filterwarnings = error` turns that into pytest's internal error."""
    venv = REAL_VENV
    python = venv / "bin" / "python"
    stamp = venv / ".e2e-ready"
    if stamp.exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    made = subprocess.run(
        [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=300
    )
    assert made.returncode == 0, made.stderr
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *REAL_TEST_DEPS],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if pip.returncode != 0:
        pytest.skip(f"cannot install {REAL_DIST}'s test dependencies: {pip.stderr.strip()[-300:]}")
    stamp.touch()
    return python


def unpack_real(archive: Path, made: Project) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(made.base, filter="data")
    (made.base / archive.name.removesuffix(".tar.gz")).rename(made.root)


@pytest.fixture
def real_project() -> Iterator[Project]:
    """python-dateutil as a person checks it out: its sources and tests, a git repository, its
    own venv (the interpreter its tests run with)."""
    archive = real_sdist()
    python = real_python()

    with _checked_out("mreal", lambda made: unpack_real(archive, made), str(python)) as made:
        yield made


def recipe(heading: str, language: str) -> str:
    """The first ```language block under the README heading that starts with ``heading``: the
    tests run the recipes exactly as a person copies them."""
    text = README.read_text()
    start = text.index("\n### " + heading)
    block = re.compile(rf"```{language}\n(.*?)```", re.S).search(text, start)
    assert block is not None, f"no {language} block under {heading!r} in README.md"
    return block.group(1)
