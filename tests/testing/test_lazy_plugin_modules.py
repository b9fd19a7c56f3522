"""A module the code under test loads by name (flake8's plugins through entry points,
``importlib.import_module``) is imported once, by the first test file that gets there; later
files run its code without importing it, and no import statement names it. On flake8 7.1.1,
its example plugin installed editable: after an edit of the plugin, `maestro test` said 7
failed where pytest said 21 (14 tests of test_plugins.py and test_main.py served as passed
from the cache: their keys did not name the plugin's file). Now a file's inputs hold the
files of the code its tests ran (traced), and, on an untraced cold run, every module a test
of the run imported first. The real console script in a subprocess, beside plain pytest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from project_python import plain_pytest, project_python

MAESTRO = str(Path(sys.executable).with_name("maestro"))

APP = """\
import importlib

NAMES = ["plug"]


def plugins():
    return [importlib.import_module(name) for name in NAMES]
"""
TEST = """\
from app import plugins


def test_{0}():
    assert plugins()[0].f() == 1
"""

PLUG = "def f():\n    return {0}\n\n\ndef g():\n    return {1}\n"


def maestro(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # rich's width when piped
    env.update(MAESTRO_DAEMON="off")
    done = subprocess.run(
        [MAESTRO, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    return done.stdout + done.stderr


def summary(said: str) -> str:
    return said.strip().splitlines()[-1]


def test_a_module_another_file_loaded_first_is_an_input_of_the_files_running_its_code(
    isolated: Path,
) -> None:
    root = isolated / "ws"
    (root / "tests").mkdir(parents=True)
    (root / "maestro.toml").write_text(f"interpreter = {str(project_python())!r}\n")
    (root / "app.py").write_text(APP)
    (root / "plug.py").write_text("def f():\n    return 1\n")
    for name in ("a", "b"):
        (root / f"tests/test_{name}.py").write_text(TEST.format(name))

    said = maestro(root, "test")
    assert "2 passed" in summary(said), said
    # the cold run (untraced before 3.12) ran test_b's use of plug without importing it
    (root / "plug.py").write_text("def f():\n    return 2\n")
    truth = plain_pytest(project_python(), root, "-q").stdout
    assert "2 failed" in summary(truth), truth
    said = maestro(root, "test")
    assert summary(said).startswith("2 failed —"), said

    # a traced run: what test_b ran names plug.py
    (root / "plug.py").write_text(PLUG.format(1, 0))
    said = maestro(root, "test")
    assert "2 passed" in summary(said), said
    # a change to code no test ran serves test_b (test_a's test imported plug.py: a read)
    (root / "plug.py").write_text(PLUG.format(1, 5))
    said = maestro(root, "test")
    assert summary(said).startswith("2 passed — ran 1 file, 1 cached"), said
    assert "tests/test_b.py ." not in said, said
    (root / "plug.py").write_text(PLUG.format(3, 5))
    said = maestro(root, "test")
    assert summary(said).startswith("2 failed —"), said
