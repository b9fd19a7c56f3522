"""Files a conftest's `collect_ignore` / `collect_ignore_glob` leave out of pytest's walk (Python
code, known only by running it): Maestro counts, runs and names them as pytest collects them.
Before, such a file was still counted ("5 test files" where pytest collects 2), listed by
`maestro impacted`, named by every full run, and named by the user (`maestro test
tests/test_ignored.py`) said "no tests ran" where pytest, given that path, collects and runs it.
The real console script in a subprocess, beside plain pytest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from project_python import plain_pytest, project_python

MAESTRO = str(Path(sys.executable).with_name("maestro"))

CONFTEST = """\
import sys

collect_ignore = ["test_ignored.py", "legacy", "broken"]
if sys.version_info >= (3, 0):
    collect_ignore_glob = ["*_py2.py"]
"""
FAILS = "def test_it():\n    assert False\n"


def maestro(cwd: Path, *args: str, daemon: str = "off", **extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "E2E")}  # COLUMNS: rich's
    env.update(MAESTRO_DAEMON=daemon, **extra)  # width when piped
    done = subprocess.run(
        [MAESTRO, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    return done.stdout + done.stderr


def workspace(root: Path) -> None:
    (root / "tests/legacy").mkdir(parents=True)
    # a folder of a conftest alone (a walk runs it by that conftest), ignored: never imported
    (root / "tests/broken").mkdir()
    (root / "tests/broken/conftest.py").write_text("raise ImportError('broken')\n")
    (root / "maestro.toml").write_text(f"interpreter = {str(project_python())!r}\n")
    (root / "tests/conftest.py").write_text(CONFTEST)
    (root / "tests/test_ignored.py").write_text(FAILS)
    (root / "tests/legacy/test_old.py").write_text(FAILS)
    (root / "tests/test_thing_py2.py").write_text(FAILS)
    (root / "tests/test_ok.py").write_text("def test_ok():\n    pass\n")
    (root / "tests/test_other.py").write_text("def test_other():\n    pass\n")


def pytest(cwd: Path, *args: str, **extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "E2E"}
    return plain_pytest(project_python(), cwd, *args, env={**env, **extra}).stdout


def counted_files(stats: str) -> list[str]:
    """The test file count `maestro graph stats` shows."""
    return [
        line.split()[-1] for line in stats.splitlines() if line.split()[:2] == ["test", "files"]
    ]


def test_files_a_conftest_ignores_are_counted_and_run_as_pytest_collects_them(
    isolated: Path,
) -> None:
    root = isolated / "ws"
    workspace(root)

    assert "2 tests collected" in pytest(root, "--co", "-q")
    assert "2 passed" in pytest(root)
    # before any run: the graph's own commands ask the conftest too
    stats = maestro(root, "graph", "stats")
    assert counted_files(stats) == ["2"], stats
    impacted = maestro(root, "impacted", "tests/conftest.py")
    assert "2 test files impacted" in impacted, impacted
    assert "test_ignored" not in impacted and "legacy" not in impacted, impacted

    said = maestro(root, "test")
    assert "2 test files: 0 cached (0 tests), 2 to run\n" in said, said
    assert "2 passed" in said and "ignored" not in said and "error" not in said, said
    # a no-change run asks nothing again: the answer is kept, keyed by the conftests' text
    memo = next((isolated / "state").rglob("collectors.json"))
    asked = memo.stat().st_mtime_ns
    said = maestro(root, "test")
    assert "2 test files: 2 cached (2 tests), 0 to run\n" in said, said
    assert memo.stat().st_mtime_ns == asked

    explained = maestro(root, "explain", "tests/test_ignored.py")
    assert "tests/test_ignored.py is not a test file" in explained, explained
    assert "collect_ignore" in explained and "cached" not in explained, explained

    # named, pytest collects a file whatever collect_ignore says: its failure
    assert "1 failed" in pytest(root, "tests/test_ignored.py")
    said = maestro(root, "test", "tests/test_ignored.py")
    assert "1 failed" in said, said
    assert "1 failed" in pytest(root, "tests/legacy/test_old.py")
    said = maestro(root, "test", "tests/legacy/test_old.py")
    assert "1 failed" in said, said
    # ...and the next full run still leaves them out, as pytest does
    said = maestro(root, "test")
    assert "2 test files: 2 cached (2 tests), 0 to run\n" in said, said

    # the conftest no longer ignores the file: it is a test file again, and fails
    (root / "tests/conftest.py").write_text(CONFTEST.replace('"test_ignored.py", ', ""))
    assert "1 failed, 2 passed" in pytest(root)
    said = maestro(root, "test")
    assert "3 test files: " in said, said
    assert "1 failed, 2 passed" in said, said
    assert counted_files(maestro(root, "graph", "stats")) == ["3"]


def test_the_daemon_asks_the_conftest_before_any_run(isolated: Path) -> None:
    # graph stats and impacted through a daemon on a fresh workspace: the daemon's graph
    # counted the ignored files until a run had asked the conftest
    root = isolated / "ws"
    workspace(root)
    try:
        stats = maestro(root, "graph", "stats", daemon="start")
        assert counted_files(stats) == ["2"], stats
        status = subprocess.run([MAESTRO, "daemon", "status"], cwd=root, capture_output=True)
        assert status.returncode == 0, "no daemon answered"
        impacted = maestro(root, "impacted", "tests/conftest.py", daemon="start")
        assert "2 test files impacted" in impacted, impacted
        said = maestro(root, "test", daemon="start")
        assert "2 test files: 0 cached (0 tests), 2 to run\n" in said, said
    finally:
        maestro(root, "daemon", "stop")


def test_ignores_that_follow_a_variable_follow_it(isolated: Path) -> None:
    # `collect_ignore = [] if os.environ.get("E2E") == "1" else ["e2e"]`: the answer kept for
    # one value must not be served for another (pytest would run the end-to-end tests)
    root = isolated / "ws"
    (root / "tests/e2e").mkdir(parents=True)
    (root / "maestro.toml").write_text(f"interpreter = {str(project_python())!r}\n")
    (root / "tests/conftest.py").write_text(
        'import os\n\ncollect_ignore = [] if os.environ.get("E2E") == "1" else ["e2e"]\n'
    )
    (root / "tests/e2e/test_flow.py").write_text(FAILS)
    (root / "tests/test_ok.py").write_text("def test_ok():\n    pass\n")

    assert "1 passed" in pytest(root) and "failed" not in pytest(root)
    said = maestro(root, "test")
    assert "1 test file: " in said and "1 passed" in said and "failed" not in said, said
    assert "1 failed, 1 passed" in pytest(root, E2E="1")
    said = maestro(root, "test", E2E="1")
    assert "2 test files: " in said and "1 failed, 1 passed" in said, said
    said = maestro(root, "test")
    assert "1 test file: 1 cached (1 test), 0 to run\n" in said, said
    assert counted_files(maestro(root, "graph", "stats", E2E="1")) == ["2"]
