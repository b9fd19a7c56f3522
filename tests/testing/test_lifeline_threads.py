"""The tests see the threads they see under plain pytest: one. The lifeline that ties a run to
its runner read its pipe in a thread of the pytest process, a second thread: a test asserting
`threading.active_count() == 1` (a thread-leak check) failed under `maestro test` only, and on
Python 3.12 each os.fork() of a test (pexpect's spawn, pytester.spawn_pytest) raised a
DeprecationWarning ("This process is multi-threaded, use of fork() may lead to deadlocks"):
pytest-timeout 2.4.0's suite said "42 passed, 1 skipped, 4 xfailed, 6 warnings" where pytest
says no warning. On Linux the kernel now signals the runner's death through the pipe (F_SETSIG),
no thread. The real console script beside plain pytest on the lean project interpreter, run,
then served."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from console_script import twice_as_pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="F_SETSIG is Linux's")

THREADS = """import os
import threading
import warnings


def os_threads():
    with open("/proc/self/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[17])


def test_one_thread():
    assert threading.active_count() == 1, threading.enumerate()
    assert os_threads() == 1


def test_fork_warns_nothing():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    assert [str(w.message) for w in caught] == []
"""


def test_the_tests_see_one_thread_as_under_plain_pytest(isolated: Path) -> None:
    twice_as_pytest(isolated / "ws", "test_threads.py", THREADS, isolated, "2 passed")
