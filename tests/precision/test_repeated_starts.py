"""On 3.12 each test's record names every recorded function it started, however often it
started it and whatever the tests before it did: a function started once, twice, three times or
more in one test, a test that starts nothing, a session fixture set up inside a test (its own
window, after which the test's resumes), and another thread."""

from __future__ import annotations

from pathlib import Path

from precision_helpers import Workspace

from maestro.engine.interpreter import Interpreter
from maestro.engine.runner import run_pytest_sync

FILES = {
    "pkg/__init__.py": "",
    "pkg/work.py": """\
def once():
    return 1


def often():
    return 2


def in_fixture():
    return 3


def in_thread():
    return 4
""",
    "tests/test_starts.py": """\
import threading

import pytest

from pkg.work import in_fixture, in_thread, often, once


@pytest.fixture(scope="session")
def shared():
    return in_fixture() + often()


def test_none():
    pass


def test_once():
    assert once() == 1


def test_twice():
    assert often() + often() == 4


def test_thrice():
    assert often() + often() + often() == 6


def test_once_after_thrice():
    assert often() == 2


def test_many_then_fixture(request):
    for _ in range(5):
        often()
    assert request.getfixturevalue("shared") == 5
    assert once() + often() == 3


def test_none_again():
    pass


def test_many_in_a_thread():
    for _ in range(4):
        t = threading.Thread(target=in_thread)
        t.start()
        t.join()
        often()


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 1, 0, 3], ids=[f"c{i}" for i in range(8)])
def test_counted(n):
    for _ in range(n):
        often()
""",
}


def _expected() -> dict[str, dict[str, list[str]]]:
    f = "tests/test_starts.py"
    expected = {
        f"{f}::test_none": {f: ["test_none"]},
        f"{f}::test_once": {"pkg/work.py": ["once"], f: ["test_once"]},
        f"{f}::test_twice": {"pkg/work.py": ["often"], f: ["test_twice"]},
        f"{f}::test_thrice": {"pkg/work.py": ["often"], f: ["test_thrice"]},
        f"{f}::test_once_after_thrice": {"pkg/work.py": ["often"], f: ["test_once_after_thrice"]},
        # the session fixture's code is charged to every test using it, the test's own too
        f"{f}::test_many_then_fixture": {
            "pkg/work.py": ["in_fixture", "often", "once"],
            f: ["shared", "test_many_then_fixture"],
        },
        f"{f}::test_none_again": {f: ["test_none_again"]},
        f"{f}::test_many_in_a_thread": {
            "pkg/work.py": ["in_thread", "often"],
            f: ["test_many_in_a_thread"],
        },
    }
    for i, n in enumerate([0, 1, 2, 3, 4, 1, 0, 3]):
        ran = {"pkg/work.py": ["often"]} if n else {}
        expected[f"{f}::test_counted[c{i}]"] = {**ran, f: ["test_counted"]}
    return expected


def test_every_test_names_what_it_started(isolated: Path, interpreter312: Interpreter) -> None:
    ws = Workspace(isolated / "ws", interpreter312)
    for rel, text in FILES.items():
        ws.write(rel, text)
    for _ in range(2):  # the second run: every code object already compiled
        report = run_pytest_sync(ws.root, interpreter312, ["-q", "-p", "no:cacheprovider"])
        assert report.session_trace is not None and report.session_trace.mode == "monitoring"
        traces = {n: dict(sorted(t.functions.items())) for n, t in report.traces.items()}
        assert traces == _expected()
