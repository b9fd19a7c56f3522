"""Several tests under one node id (a conftest's collector naming its items after a group, as
docopt-ng's usecase files do): pytest runs and counts each of them; Maestro reports, caches and
keys the node as all of them together. Real pytest children, real LMDB."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from project_python import project_python
from testing_helpers import Workspace, ran

from maestro.engine import testing

MAESTRO = str(Path(sys.executable).with_name("maestro"))

# docopt-ng's shape: each case of a group is an item named after the group
CONFTEST = """
import pytest

from pkg import checks


def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".cases" and file_path.name.startswith("test"):
        return CaseFile.from_parent(parent, path=file_path)


class CaseFile(pytest.File):
    def collect(self):
        for line in self.path.read_text().splitlines():
            group, _, check = line.partition(":")
            yield CaseItem.from_parent(self, name=group.strip(), check=check.strip())


class CaseItem(pytest.Item):
    def __init__(self, *, check, **kwargs):
        super().__init__(**kwargs)
        self.check = check
        self.funcargs = {}

    def runtest(self):
        assert getattr(checks, self.check)(), self.check

    def reportinfo(self):
        return self.path, 0, f"usecase: {self.name}"
"""

CHECKS = """
def first():
    return True


def second():
    return True
"""


def counts(summary: testing.Summary) -> tuple[int, int, int]:
    return summary.passed, summary.failed, summary.exit_code


def pytest_counts(ws: Workspace) -> tuple[int, int, int]:
    done = subprocess.run(
        [str(project_python()), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=ws.root, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    last = done.stdout.strip().splitlines()[-1]
    found = {w: int(n) for n, w in (p.split()[:2] for p in last.split(" in ")[0].split(", "))}
    return found.get("passed", 0), found.get("failed", 0), done.returncode


def workspace(ws: Workspace, cases: str) -> None:
    ws.write("tests/conftest.py", CONFTEST)
    ws.write("pkg/checks.py", CHECKS)
    ws.write("tests/test_usage.cases", cases)


def test_a_failing_test_before_a_passing_one_of_the_same_id_fails_the_run(ws: Workspace) -> None:
    # docopt-ng: a broken case of testcases.docopt::testcases(2) was followed by two passing
    # cases of the same id; `maestro test` said "520 passed", exit 0, where pytest said
    # "1 failed, 613 passed", exit 1 (the later result replaced the failure)
    workspace(ws, "group: first\ngroup: second\nalone: second\n")
    ws.edit("pkg/checks.py", "def first():\n    return True", "def first():\n    return False")
    truth = pytest_counts(ws)
    assert truth[1:] == (1, 1)
    assert counts(ws.run()) == truth
    assert counts(ws.run()) == truth  # its failed node again: the same answer
    ws.edit("pkg/checks.py", "def first():\n    return False", "def first():\n    return True")
    fixed = ws.run()
    assert counts(fixed) == pytest_counts(ws) == (truth[0] + 1, 0, 0)
    again = ws.run()  # from the cache
    assert ran(again) == [] and counts(again) == counts(fixed)


def test_a_change_to_what_an_earlier_test_of_the_id_ran_runs_it_again(ws: Workspace) -> None:
    # the node's record of what it ran was its last test's alone
    workspace(ws, "alone: second\ngroup: first\ngroup: second\n")
    before = pytest_counts(ws)
    assert before[1:] == (0, 0) and counts(ws.run()) == before
    # a run with a record of what each node ran
    ws.edit("pkg/checks.py", "def second():\n    return True", "def second():\n    return 1 == 1")
    assert counts(ws.run()) == before
    ws.edit("pkg/checks.py", "def first():\n    return True", "def first():\n    return False")
    truth = pytest_counts(ws)
    assert truth == (before[0] - 1, 1, 1)
    assert counts(ws.run()) == truth


def _testcases(path: Path) -> list[tuple[str, str, str]]:
    """(classname, name, what it holds: failure, error, skipped or nothing) per testcase."""
    return [
        (
            case.get("classname", ""),
            case.get("name", ""),
            ",".join(c.tag for c in case if c.tag != "properties"),
        )
        for case in ET.parse(path).getroot().iter("testcase")
    ]


def test_the_junit_file_and_the_counts_hold_every_test_of_a_repeated_id(
    ws: Workspace, tmp_path: Path
) -> None:
    # docopt-ng: Maestro's JUnit file held one testcase per node id where pytest's holds one
    # per test, and the plan said "3 cached (520 tests)" beside "614 passed"
    workspace(ws, "group: first\ngroup: second\ngroup: second\nalone: second\n")
    ws.edit("pkg/checks.py", "def second():\n    return True", "def second():\n    return False")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    plain, ours = tmp_path / "pytest.xml", tmp_path / "maestro.xml"
    subprocess.run(
        [str(project_python()), "-m", "pytest",
            "-q", "-p", "no:cacheprovider", f"--junitxml={plain}"],
        cwd=ws.root, env=env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    truth = _testcases(plain)
    cases = [(name, what) for classname, name, what in truth if classname.endswith(".cases")]
    assert cases == [
        ("group", ""), ("group", "failure"), ("group", "failure"), ("alone", "failure")
    ]  # fmt: skip
    env.update(
        MAESTRO_DAEMON="off",
        MAESTRO_CACHE_DIR=str(tmp_path / "cache"),
        MAESTRO_STATE_DIR=str(tmp_path / "state"),
    )

    def maestro_test() -> str:
        done = subprocess.run(
            [MAESTRO, "test", "--junit-xml", str(ours)],
            cwd=ws.root, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert _testcases(ours) == _testcases(plain), done.stdout + done.stderr
        return done.stdout

    first = maestro_test()
    assert "3 failed, 6 passed" in first
    # each failing test listed, as pytest lists them
    assert first.count("FAILED tests/test_usage.cases::group\n") == 2, first
    # only the failing nodes run again: their share of the file's tests
    assert "4 of 4 tests: tests/test_usage.cases::group" in maestro_test()
    ws.edit("pkg/checks.py", "def second():\n    return False", "def second():\n    return True")
    subprocess.run(
        [str(project_python()), "-m", "pytest",
            "-q", "-p", "no:cacheprovider", f"--junitxml={plain}"],
        cwd=ws.root, env={k: v for k, v in env.items() if not k.startswith("MAESTRO_")},
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert "9 passed" in maestro_test()
    cached = maestro_test()  # from the cache: the plan counts tests as the summary does
    assert "5 cached (9 tests)" in cached and "9 passed" in cached, cached
