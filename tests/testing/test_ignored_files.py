"""Files pytest's walk skips by `--ignore`/`--ignore-glob` (in addopts or on the command line):
Maestro counts, runs and explains them as pytest collects them. User trial of diskcache 5.6.3
(addopts = --ignore=tests/test_djangocache.py): Maestro counted "9 test files" where pytest
collects 8, and `maestro explain` said of the ignored file both "cached" and "the file runs as a
whole". Both directions matter: an ignored file must not run, a file not ignored must still run,
and a file the user names is collected as pytest collects a file named on its command line
(whatever the ignores say). The real console script in a subprocess, beside plain pytest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from project_python import project_python

MAESTRO = str(Path(sys.executable).with_name("maestro"))


def run(cwd: Path, *command: str, addopts: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "PYTEST_ADDOPTS")}
    env.update(MAESTRO_DAEMON="off")  # COLUMNS: rich's width when piped
    if addopts is not None:
        env["PYTEST_ADDOPTS"] = addopts
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    return done.stdout + done.stderr


def maestro(cwd: Path, *args: str, addopts: str | None = None) -> str:
    return run(cwd, MAESTRO, *args, addopts=addopts)


def pytest(cwd: Path, *args: str, addopts: str | None = None) -> str:
    python = str(project_python())
    return run(cwd, python, "-m", "pytest", "-p", "no:cacheprovider", *args, addopts=addopts)


def test_ignored_files_are_neither_counted_nor_run_unless_named(isolated: Path) -> None:
    root = isolated / "ws"
    (root / "tests/legacy").mkdir(parents=True)
    (root / "maestro.toml").write_text(f"interpreter = {str(project_python())!r}\n")
    (root / "tox.ini").write_text(
        "[pytest]\naddopts = --ignore=tests/test_django.py --ignore tests/legacy "
        "--ignore-glob=*_slow.py\n"
    )
    broken = "import no_such_module_here\n\n\ndef test_x():\n    pass\n"
    (root / "tests/test_django.py").write_text(broken)
    (root / "tests/legacy/conftest.py").write_text("raise ImportError('legacy')\n")
    (root / "tests/legacy/test_old.py").write_text(broken)
    (root / "tests/test_big_slow.py").write_text(broken)
    (root / "tests/test_ok.py").write_text("def test_ok():\n    pass\n")
    # not ignored (only a name beside an ignored one): it runs, and fails
    (root / "tests/test_django_more.py").write_text("def test_more():\n    assert False\n")

    assert "1 failed, 1 passed" in pytest(root)
    said = maestro(root, "test")
    assert "2 test files: 0 cached (0 tests), 2 to run\n" in said, said
    assert "1 failed, 1 passed" in said, said
    assert "error" not in said, said

    explained = maestro(root, "explain", "tests/test_django.py")
    assert "tests/test_django.py is not a test file" in explained, explained
    assert "cached" not in explained, explained

    # named, pytest collects it whatever --ignore says: its import error
    assert "1 error" in pytest(root, "tests/test_django.py")
    said = maestro(root, "test", "tests/test_django.py")
    assert "1 error" in said, said
    assert "1 error" in maestro(root, "test", "tests/test_django.py")  # served: the same
    # ...and the next full run still leaves it out, as pytest does
    said = maestro(root, "test")
    assert "2 test files: 1 cached (1 test), 1 to run\n" in said, said
    assert "error" not in said, said

    # the command line's own --ignore: the failing file is not run, as in plain pytest
    args = ("--", "--ignore=tests/test_django_more.py")
    assert "1 passed" in pytest(root, *args[1:])
    said = maestro(root, "test", *args)
    assert "1 passed" in said and "failed" not in said, said


def test_pytest_addopts_in_the_users_environment_is_honoured_as_pytest_honours_it(
    isolated: Path,
) -> None:
    # PYTEST_ADDOPTS steers pytest, so the runner never hands it to the child; Maestro ignored
    # it altogether: `PYTEST_ADDOPTS=--ignore=tests/test_slow.py maestro test` ran (and failed)
    # the file plain pytest leaves out, and `-k` selected nothing
    root = isolated / "ws"
    (root / "tests").mkdir(parents=True)
    (root / "maestro.toml").write_text(f"interpreter = {str(project_python())!r}\n")
    (root / "tests/test_ok.py").write_text("def test_ok():\n    pass\n")
    (root / "tests/test_slow.py").write_text("def test_slow():\n    assert False\n")
    (root / "tests/test_big_glob.py").write_text("def test_big():\n    assert False\n")

    addopts = "--ignore=tests/test_slow.py --ignore-glob=*_glob.py"
    assert "1 passed" in pytest(root, addopts=addopts)
    said = maestro(root, "test", addopts=addopts)
    assert "1 test file: 0 cached (0 tests), 1 to run\n" in said, said
    assert "1 passed" in said and "failed" not in said, said
    # without it, as pytest: every file, two failures (not the result above served)
    assert "2 failed, 1 passed" in pytest(root)
    assert "2 failed, 1 passed" in maestro(root, "test")
    # a file it ignores that the user names: pytest collects it as given
    assert "1 failed" in pytest(root, "tests/test_slow.py", addopts=addopts)
    said = maestro(root, "test", "tests/test_slow.py", addopts=addopts)
    assert "1 failed" in said, said
    # the same through the run's own arguments (was 'no tests ran': the plugin applied them)
    assert "1 failed" in pytest(root, "tests/test_slow.py", "--ignore=tests/test_slow.py")
    said = maestro(root, "test", "tests/test_slow.py", "--", "--ignore=tests/test_slow.py")
    assert "1 failed" in said, said
    # its other options too, before the run's own (pytest's order)
    assert "1 passed, 2 deselected" in pytest(root, addopts="-k ok")
    said = maestro(root, "test", addopts="-k ok")
    assert "1 passed, 2 deselected" in said, said
    # one pytest cannot read is refused, as pytest refuses it
    said = maestro(root, "test", addopts="-k 'ok")
    assert "PYTEST_ADDOPTS cannot be read as pytest reads it: No closing quotation" in said, said
    assert "Traceback" not in said, said
