"""Runs tied to their runner: the lifeline module in a real child, and the record of running
pytest groups with which a new run kills one a dead runner left behind (and only such a one)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from workspace_procs import alive, wait_dead

from maestro.engine.interpreter import Interpreter
from maestro.engine.runner import LIFELINE_FD_ENV, plugin_dir, run_pytest_sync, runs_dir

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="checks processes through /proc")

WriteWorkspace = Callable[[dict[str, str]], Path]
SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]

# An owner that records a run the way the runner does, starts its "pytest" (a sleeper that holds
# the group lock and has no lifeline) and prints its pid; killing the owner leaves an orphan.
OWNER = """
import subprocess, sys, time
from pathlib import Path
from maestro.engine.runner import RunRecord, runs_dir

record = RunRecord(runs_dir(Path(sys.argv[1])))
child = subprocess.Popen(
    sys.argv[2:], pass_fds=(record.group_fd,), start_new_session=True, stdin=subprocess.DEVNULL
)
record.spawned(child.pid)
print(child.pid, flush=True)
time.sleep(60)
"""

# The test the next run executes: whether the orphan is still alive while it runs.
CHECK = """
from pathlib import Path


def test_alone():
    stat = Path("/proc/@PID@/stat")
    state = stat.read_text().rsplit(")", 1)[1].split()[0] if stat.exists() else "gone"
    Path("seen").write_text(state)
"""


@pytest.fixture
def kill_later() -> Iterator[list[int]]:
    """Process groups to SIGKILL when the test ends, whatever happened."""
    groups: list[int] = []
    yield groups
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def _owner(root: Path, kill_later: list[int]) -> tuple[subprocess.Popen[str], int]:
    owner = subprocess.Popen(
        [sys.executable, "-P", "-c", OWNER, str(root), *SLEEP],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    kill_later.append(owner.pid)
    assert owner.stdout is not None
    orphan = int(owner.stdout.readline())
    kill_later.append(orphan)
    return owner, orphan


def test_an_orphaned_run_is_killed_before_the_next_run_starts(
    workspace: WriteWorkspace, interpreter: Interpreter, kill_later: list[int]
) -> None:
    root = workspace({})
    owner, orphan = _owner(root, kill_later)
    owner.kill()  # kill -9 of the runner: its run goes on, unseen
    owner.wait()
    assert alive(orphan)
    (root / "test_check.py").write_text(CHECK.replace("@PID@", str(orphan)))

    report = run_pytest_sync(root, interpreter, ["test_check.py"])

    assert report.outcomes["passed"] == 1
    assert (root / "seen").read_text() in {"gone", "Z"}  # dead before the new run began
    assert not alive(orphan)
    assert os.listdir(runs_dir(root)) == []  # both runs forgotten


def test_a_live_runners_run_is_left_alone(
    workspace: WriteWorkspace, interpreter: Interpreter, kill_later: list[int]
) -> None:
    root = workspace({})
    owner, running = _owner(root, kill_later)
    try:
        (root / "test_check.py").write_text(CHECK.replace("@PID@", str(running)))
        report = run_pytest_sync(root, interpreter, ["test_check.py"])
        assert report.outcomes["passed"] == 1
        assert (root / "seen").read_text() in {"S", "R"}
        assert alive(running)
        assert len(os.listdir(runs_dir(root))) == 2  # its owner and group files, not ours
    finally:
        owner.kill()
        owner.wait()


def test_a_finished_runs_leftover_files_are_forgotten(
    workspace: WriteWorkspace, interpreter: Interpreter, kill_later: list[int]
) -> None:
    root = workspace({"test_ok.py": "def test_ok():\n    pass\n"})
    owner, child = _owner(root, kill_later)
    os.kill(child, signal.SIGKILL)  # the run ended, then its owner died before tidying up
    assert wait_dead(child)
    owner.kill()
    owner.wait()
    assert len(os.listdir(runs_dir(root))) == 2
    assert run_pytest_sync(root, interpreter, ["test_ok.py"]).outcomes["passed"] == 1
    assert os.listdir(runs_dir(root)) == []


# --- the lifeline module -------------------------------------------------------------------------

RUNNER = """
import sys
from pathlib import Path
from maestro.engine.interpreter import query_interpreter
from maestro.engine.runner import run_pytest_sync

run_pytest_sync(Path(sys.argv[1]), query_interpreter(Path(sys.executable)), sys.argv[2:])
"""

SLOW = """
import os, signal, subprocess, sys, time
from pathlib import Path


def test_slow():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # no help from SIGTERM: the lifeline only
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    Path("pids").write_text(f"{os.getpid()} {sleeper.pid} {os.environ.get('@ENV@')}")
    time.sleep(60)
"""


def test_the_lifeline_kills_the_group_when_the_runner_dies(
    workspace: WriteWorkspace, kill_later: list[int]
) -> None:
    root = workspace({"test_slow.py": SLOW.replace("@ENV@", LIFELINE_FD_ENV)})
    runner = subprocess.Popen(
        [sys.executable, "-P", "-c", RUNNER, str(root), "-p", "maestro_lifeline", "test_slow.py"],
        start_new_session=True,
    )
    kill_later.append(runner.pid)
    pids = root / "pids"
    deadline = time.monotonic() + 60
    while not (pids.exists() and pids.read_text()):
        assert time.monotonic() < deadline and runner.poll() is None
        time.sleep(0.02)
    child, grandchild, seen = pids.read_text().split()
    kill_later.extend([int(child), int(grandchild)])
    assert seen == "None"  # the variable is not passed on to the test's own processes

    runner.kill()
    runner.wait()

    assert wait_dead(int(child), 3.0)
    assert wait_dead(int(grandchild), 3.0)


def _import_lifeline(fd: int | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(plugin_dir())}
    if fd is not None:
        env[LIFELINE_FD_ENV] = str(fd)
    code = textwrap.dedent("""
        import maestro_lifeline, time
        print("armed" if maestro_lifeline._fd >= 0 else "inert", flush=True)
        time.sleep(30)
    """)
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        pass_fds=() if fd is None else (fd,),
        start_new_session=True,
    )


def test_a_runner_that_died_before_the_import_is_noticed(kill_later: list[int]) -> None:
    read_end, write_end = os.pipe()
    os.close(write_end)  # the runner is gone before the child even started
    try:
        child = _import_lifeline(read_end)
    finally:
        os.close(read_end)
    kill_later.append(child.pid)
    assert child.wait(timeout=30) == -signal.SIGKILL


def test_the_lifeline_is_inert_without_the_runner(kill_later: list[int]) -> None:
    child = _import_lifeline(None)
    kill_later.append(child.pid)
    assert child.stdout is not None
    assert child.stdout.readline() == b"inert\n"
    child.kill()
    child.wait()


def test_the_lifeline_holds_while_the_runner_lives(kill_later: list[int]) -> None:
    read_end, write_end = os.pipe()
    try:
        child = _import_lifeline(read_end)
    finally:
        os.close(read_end)
    kill_later.append(child.pid)
    assert child.stdout is not None
    assert child.stdout.readline() == b"armed\n"
    time.sleep(0.2)
    assert child.poll() is None
    os.close(write_end)  # the runner exits
    assert child.wait(timeout=10) == -signal.SIGKILL
