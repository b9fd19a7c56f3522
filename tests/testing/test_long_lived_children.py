"""A Python process one test starts and later tests keep using (execnet's `gw` fixture keeps its
worker interpreters in a session-scoped group; a server a fixture keeps running) does work for
those later tests that no record of theirs holds: its record comes when it exits. A test that
runs while such a process is running depends on the whole workspace, as one that starts a
program whose reads cannot be recorded does. (execnet 2.1: 11 stale passes after an edit of code
only its workers run.)"""

from __future__ import annotations

import pytest
from testing_helpers import Workspace, ran

from maestro.engine import testing

CONFTEST = """
import subprocess
import sys

import pytest

_workers = {}


@pytest.fixture
def worker():
    if "w" not in _workers:  # started by the first test that asks, kept for the others
        _workers["w"] = subprocess.Popen(
            [sys.executable, "-c", "import sys\\nimport pkg.work as w\\n"
             "for line in sys.stdin:\\n    print(w.answer(), flush=True)"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
    return _workers["w"]
"""

TESTS = """
def ask(worker):
    worker.stdin.write("?\\n")
    worker.stdin.flush()
    return worker.stdout.readline()


def test_one(worker):
    assert ask(worker) == "42\\n"


def test_two(worker):
    assert ask(worker) == "42\\n"
"""

NODES = ("tests/test_w.py::test_one", "tests/test_w.py::test_two")


def outcomes(summary: testing.Summary) -> dict[str, str]:
    return {t.node_id: t.outcome for r, _ in summary.results() for t in r.tests}


def test_a_worker_an_earlier_test_started_keeps_the_later_tests_from_the_cache(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAESTRO_TRACE", "always")  # per-node records from the first run on
    ws.write("pkg/work.py", "def answer():\n    return 42\n")
    ws.write("tests/conftest.py", CONFTEST)
    ws.write("tests/test_w.py", TESTS)
    first = ws.run()
    assert [outcomes(first)[n] for n in NODES] == ["passed", "passed"]
    opaque = next(t.opaque for r, _ in first.results() for t in r.tests if t.node_id == NODES[1])
    assert any("kept running" in why for why in opaque)
    ws.edit("pkg/work.py", "return 42", "return 41")  # code only the worker runs
    assert [outcomes(ws.run())[n] for n in NODES] == ["failed", "failed"]


def test_multiprocessing_resource_tracker_keeps_no_later_test_from_the_cache(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # loguru: a test creating a Lock of a "spawn" or "forkserver" context starts
    # multiprocessing's resource tracker, a Python process kept until the session ends; it
    # only unlinks named semaphores at exit, yet every later test of the session (1581 of
    # loguru's 1645) was opaque and re-ran at any edit
    monkeypatch.setenv("MAESTRO_TRACE", "always")
    ws.write("pkg/__init__.py", "")
    ws.write("pkg/other.py", "X = 1\n")
    ws.write(
        "tests/test_a.py",
        "import multiprocessing\nimport time\n\n\ndef test_lock():\n"
        "    multiprocessing.get_context('spawn').Lock()\n"
        "    time.sleep(2)  # the tracker is up (marked running) when the next test starts\n",
    )
    ws.write("tests/test_b.py", "def test_later():\n    assert True\n")
    first = ws.run()
    later = "tests/test_b.py::test_later"
    assert outcomes(first)[later] == "passed"
    assert next(t.opaque for r, _ in first.results() for t in r.tests if t.node_id == later) == []
    ws.edit("pkg/other.py", "X = 1", "X = 2")  # nothing imports it
    assert ran(ws.run()) == []


FORKED_POOL = """
import concurrent.futures
import multiprocessing

# forked by the first test that submits, kept for the others
POOL = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))


def test_start():
    assert POOL.submit(abs, -2).result() == 2


def test_square():
    # only the worker imports and runs pkg.work
    assert POOL.submit(eval, "__import__('pkg.work').work.square(3)").result() == 9
"""


def test_a_forked_worker_an_earlier_test_started_keeps_the_later_tests_from_the_cache(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a fork of the pytest process leaves no record at all: the test that forks is opaque, and
    # a later test handing work to the fork it left running was served as passed after an edit
    # of the code only the fork ran
    monkeypatch.setenv("MAESTRO_TRACE", "always")
    ws.write("pkg/work.py", "def square(x):\n    return x * x\n")
    ws.write("tests/test_pool.py", FORKED_POOL)
    nodes = ("tests/test_pool.py::test_start", "tests/test_pool.py::test_square")
    first = ws.run()
    assert [outcomes(first)[n] for n in nodes] == ["passed", "passed"]
    later = next(t.opaque for r, _ in first.results() for t in r.tests if t.node_id == nodes[1])
    assert any("kept running" in why for why in later)
    ws.edit("pkg/work.py", "x * x", "x * x + 1")
    assert [outcomes(ws.run())[n] for n in nodes] == ["passed", "failed"]


def test_an_earlier_tests_record_does_not_stand_for_a_child_that_left_none(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a detached child of the first test ends (leaving its record) while the next test runs a
    # child that leaves none (`-I`): counting records, one stood for the other, and the data
    # file only the `-I` child read was no input of the second test
    monkeypatch.setenv("MAESTRO_TRACE", "always")
    ws.write("data.txt", "one\n")
    ws.write(
        "tests/test_a.py",
        "import subprocess\nimport sys\n\n\ndef test_detach():\n"
        "    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1.5)'])\n",
    )
    ws.write(
        "tests/test_b.py",
        "import subprocess\nimport sys\nimport time\n\n\ndef test_isolated_child():\n"
        "    out = subprocess.run([sys.executable, '-I', '-c', "
        "'print(open(\"data.txt\").read().strip())'], capture_output=True, text=True)\n"
        "    time.sleep(3)  # the first test's child ends, and leaves its record, meanwhile\n"
        "    assert out.stdout == 'one\\n'\n",
    )
    later = "tests/test_b.py::test_isolated_child"
    first = ws.run()
    assert outcomes(first)[later] == "passed"
    ws.edit("data.txt", "one", "two")
    assert outcomes(ws.run())[later] == "failed"  # as plain pytest says


QUIET_THEN_HOOK = """
import subprocess
import sys

import pytest

_workers = {}


@pytest.hookimpl(trylast=True)
def pytest_runtest_logfinish(nodeid, location):
    # after the recorder closed test_one's window (its folder of records empty, no process
    # started yet): a worker started between two tests, ready before the next one starts
    if nodeid.endswith("test_quiet"):
        worker = subprocess.Popen(
            [sys.executable, "-c", "import sys\\nprint('up', flush=True)\\nimport pkg.work as w\\n"
             "for line in sys.stdin:\\n    print(w.answer(), flush=True)"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        worker.stdout.readline()
        _workers["w"] = worker


@pytest.fixture
def worker():
    return _workers["w"]
"""

QUIET_TESTS = """
def test_quiet():
    assert True


def test_uses(worker):
    worker.stdin.write("?\\n")
    worker.stdin.flush()
    assert worker.stdout.readline() == "42\\n"
"""


def test_a_worker_started_after_a_quiet_test_keeps_the_next_test_from_the_cache(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the recorder skips looking for running children as a test starts while none can be:
    # a process started since (here between two tests, by a hook) must end that
    monkeypatch.setenv("MAESTRO_TRACE", "always")
    ws.write("pkg/work.py", "def answer():\n    return 42\n")
    ws.write("tests/conftest.py", QUIET_THEN_HOOK)
    ws.write("tests/test_q.py", QUIET_TESTS)
    first = ws.run()
    uses = "tests/test_q.py::test_uses"
    assert outcomes(first)[uses] == "passed"
    opaque = next(t.opaque for r, _ in first.results() for t in r.tests if t.node_id == uses)
    assert any("kept running" in why for why in opaque)
    ws.edit("pkg/work.py", "return 42", "return 41")  # code only the worker runs
    assert outcomes(ws.run())[uses] == "failed"
