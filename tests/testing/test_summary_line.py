"""`maestro test`'s counts line says what pytest's says, in pytest's order and words: "4 failed,
480 passed, 28 subtests passed" on cachetools 8.0.3 (unittest subTest under pytest 9's built-in
subtests, run with -q) where Maestro said "480 passed, 4 failed"; "4 passed, 30 deselected" for
`-k clear` where Maestro left the deselected out. Fresh, fully cached and mixed runs alike. Real
pytest children, the real CLI, a real LMDB cache."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from project_python import project_python

MAESTRO = str(Path(sys.executable).with_name("maestro"))

SUBTESTS = """
import unittest


class T(unittest.TestCase):
    def test_loop(self):
        for i in range(3):
            with self.subTest(i=i):
                assert i != BAD


def test_plain():
    pass
"""

MIXED = """
import pytest


def test_clear_one():
    pass


def test_clear_two():
    pass


def test_other():
    pass


@pytest.mark.slow
def test_slow_clear():
    pass


def test_skip():
    pytest.skip("no")


@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False


def test_fails():
    assert False
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    env.update(
        MAESTRO_DAEMON="off",
        MAESTRO_CACHE_DIR=str(tmp_path / "cache"),
        MAESTRO_STATE_DIR=str(tmp_path / "state"),
    )
    return env


def _workspace(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "ws"
    for rel, text in {
        "maestro.toml": f"interpreter = {str(project_python())!r}\n",
        "pytest.ini": "[pytest]\nmarkers =\n    slow: slow\n",
        **files,
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def pytest_line(root: Path, *args: str) -> str:
    """pytest's counts line, without its time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    done = subprocess.run(
        [str(project_python()), "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    last = done.stdout.strip().splitlines()[-1].strip("= ")
    return re.sub(r" in [0-9.]+s( \(.*\))?$", "", last)


def maestro_line(root: Path, tmp_path: Path, *args: str, daemon: str = "off") -> str:
    """Maestro's counts line, without what it adds after the dash (files run and cached)."""
    done = subprocess.run(
        [MAESTRO, "test", *args], cwd=root, env=_env(tmp_path) | {"MAESTRO_DAEMON": daemon},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if " — ran " in line]
    assert lines, done.stdout + done.stderr
    return lines[-1].partition(" — ")[0]


@pytest.fixture(autouse=True)
def _needs_builtin_subtests() -> None:
    pytest.importorskip("_pytest.subtests", reason="subtests are built into pytest from 9.0")


@pytest.mark.parametrize("verbosity", [(), ("-q",), ("-v",)], ids=["default", "q", "v"])
def test_subtests_passed_are_counted_as_pytest_counts_them(
    tmp_path: Path, verbosity: tuple[str, ...]
) -> None:
    root = _workspace(tmp_path, {"tests/test_sub.py": "BAD = 1\n" + SUBTESTS})
    truth = pytest_line(root, *verbosity)
    # pytest 9 counts a passed subtest only when its subtest verbosity is not 0
    assert ("subtests passed" in truth) == bool(verbosity), truth
    maestro = ["--", *verbosity] if verbosity else []
    assert maestro_line(root, tmp_path, *maestro) == truth  # fresh
    assert maestro_line(root, tmp_path, *maestro) == truth  # served: the failure re-runs
    (root / "tests/test_sub.py").write_text("BAD = -1\n" + SUBTESTS)
    (root / "tests/test_more.py").write_text("def test_x():\n    pass\n")
    truth = pytest_line(root, *verbosity)
    assert maestro_line(root, tmp_path, *maestro) == truth  # fresh
    assert maestro_line(root, tmp_path, *maestro) == truth  # all cached
    other = ["--", "-v"] if not verbosity else []  # the same results, shown the other way
    assert maestro_line(root, tmp_path, *other) == pytest_line(root, *other[1:])


def test_the_counts_are_in_pytest_order_and_words(tmp_path: Path) -> None:
    root = _workspace(tmp_path, {"tests/test_mixed.py": MIXED})
    truth = pytest_line(root)
    assert truth == "1 failed, 4 passed, 1 skipped, 1 xfailed", truth
    assert maestro_line(root, tmp_path) == truth
    assert maestro_line(root, tmp_path) == truth


@pytest.mark.parametrize("select", [("-k", "clear"), ("-m", "not slow")], ids=["k", "m"])
def test_deselected_tests_are_counted_as_pytest_counts_them(
    tmp_path: Path, select: tuple[str, ...]
) -> None:
    root = _workspace(
        tmp_path,
        {"tests/test_mixed.py": MIXED, "tests/test_two.py": "def test_b():\n    pass\n"},
    )
    truth = pytest_line(root, *select)
    assert "deselected" in truth, truth
    assert maestro_line(root, tmp_path, "--", *select) == truth  # fresh
    assert maestro_line(root, tmp_path, "--", *select) == truth  # test_two.py served
    # a mix: one file edited runs, the other is served
    (root / "tests/test_two.py").write_text(
        "def test_b():\n    pass\n\n\ndef test_c():\n    pass\n"
    )
    truth = pytest_line(root, *select)
    assert maestro_line(root, tmp_path, "--", *select) == truth
    assert maestro_line(root, tmp_path, "--", *select) == truth


@pytest.mark.parametrize(
    "ini", ["addopts = -q", "verbosity_subtests = 1", "addopts = -v\nverbosity_subtests = 0"]
)
def test_subtests_passed_follow_the_configuration(tmp_path: Path, ini: str) -> None:
    root = _workspace(tmp_path, {"tests/test_sub.py": "BAD = -1\n" + SUBTESTS})
    (root / "pytest.ini").write_text(f"[pytest]\n{ini}\n")
    truth = pytest_line(root)
    assert maestro_line(root, tmp_path) == truth  # fresh
    assert maestro_line(root, tmp_path) == truth  # cached


def test_subtests_are_counted_through_the_daemon_as_pytest_counts_them(tmp_path: Path) -> None:
    """The daemon reads the verbosity from the run's own arguments and environment: "-q" on the
    command line or in the client's PYTEST_ADDOPTS, a run and the cache alike."""
    root = _workspace(
        tmp_path,
        {"tests/test_sub.py": "BAD = 1\n" + SUBTESTS, "tests/test_ok.py": "BAD = -1\n" + SUBTESTS},
    )
    truth = pytest_line(root, "-q")
    assert truth == "1 failed, 4 passed, 5 subtests passed", truth
    try:
        assert maestro_line(root, tmp_path, "--", "-q", daemon="start") == truth  # fresh
        assert maestro_line(root, tmp_path, "--", "-q", daemon="start") == truth  # test_ok served
        assert maestro_line(root, tmp_path, daemon="start") == pytest_line(root)
        addopts = _env(tmp_path) | {"MAESTRO_DAEMON": "start", "PYTEST_ADDOPTS": "-q"}
        done = subprocess.run(
            [MAESTRO, "test"], cwd=root, env=addopts, capture_output=True, text=True, timeout=180
        )
        assert f"{truth} — ran 1 file" in done.stdout, done.stdout
    finally:
        subprocess.run(
            [MAESTRO, "daemon", "stop"], cwd=root, env=_env(tmp_path), capture_output=True,
            timeout=60,
        )  # fmt: skip
