"""A path after an option the project's conftest declares without a value is a path, as pytest
reads it. User trial of ecdsa 0.19.2, whose conftest adds ``--fast`` (``action="store_true"``):
`maestro test -- src/ecdsa/test_numbertheory.py --fast src/ecdsa/test_zb_new.py` took the last
path for ``--fast``'s value and left it with pytest, which ran it; its outcomes were in no count,
so a failing test there was missing: "1 passed", exit 0, where `pytest test_a.py --fast
test_b.py` says "1 failed, 1 passed" (exit 1). So did a flag of an installed pytest plugin
(hypothesis's ``--hypothesis-show-statistics``). The real console script beside plain pytest on
the lean project interpreter."""

from __future__ import annotations

import sys
from pathlib import Path

from console_script import same_as_pytest
from project_python import project_python

MAESTRO = str(Path(sys.executable).with_name("maestro"))

CONFTEST = """\
import argparse


def pytest_addoption(parser):
    parser.addoption("--fast", action="store_true", default=False)
    group = parser.getgroup("zb")
    group.addoption("--quick", "-Q", action="store_const", const=1)
    group.addoption("--color-out", action=argparse.BooleanOptionalAction, default=False)
    parser.addoption("--level", default="1")  # takes a value
"""


def test_a_path_after_a_conftest_flag_is_run_and_counted_as_pytest_does(
    isolated: Path, tmp_path: Path
) -> None:
    root = isolated / "ws"
    (root / "tests").mkdir(parents=True)
    (root / "maestro.toml").write_text(f"interpreter = {str(project_python())!r}\n")
    (root / "conftest.py").write_text(CONFTEST)
    (root / "tests/test_a.py").write_text("def test_a():\n    pass\n")
    (root / "tests/test_b.py").write_text("def test_b():\n    assert False\n")
    (root / "tests/test_c.py").write_text("def test_c():\n    pass\n")
    python = project_python()
    for args in (
        ["tests/test_a.py", "--fast", "tests/test_b.py"],  # was '1 passed', exit 0
        ["tests/test_a.py", "--quick", "tests/test_b.py"],
        ["tests/test_a.py", "--no-color-out", "tests/test_b.py"],
        # a value-taking option keeps its value: pytest runs test_c.py alone
        ["--level", "tests/test_b.py", "tests/test_c.py"],
    ):
        check(root, python, tmp_path, args)


def test_a_path_after_an_installed_plugins_flag_is_run_and_counted_as_pytest_does(
    isolated: Path, tmp_path: Path
) -> None:
    python = project_python("hypothesis")  # its pytest plugin declares the flag
    root = isolated / "ws"
    (root / "tests").mkdir(parents=True)
    (root / "maestro.toml").write_text(f"interpreter = {str(python)!r}\n")
    (root / "tests/test_a.py").write_text("def test_a():\n    pass\n")
    (root / "tests/test_b.py").write_text("def test_b():\n    assert False\n")
    check(
        root,
        python,
        tmp_path,
        ["tests/test_a.py", "--hypothesis-show-statistics", "tests/test_b.py"],
    )
    check(root, python, tmp_path, ["--hypothesis-seed", "3", "tests/test_b.py"])


def check(root: Path, python: Path, tmp_path: Path, args: list[str]) -> None:
    same_as_pytest(root, python, tmp_path, args)
