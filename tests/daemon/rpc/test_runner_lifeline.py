"""A pytest run dies with whoever runs it, and a run left behind never overlaps the next one.

Real processes throughout: a daemon or an in-process `maestro test` is killed with SIGKILL while
a slow test (which started a grandchild of its own) runs; the test logs its pid and a heartbeat
to a file outside the workspace, so the runs that happened can be read back afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DaemonEnv, kill_hard, reap
from project_python import project_python

from maestro import wire
from maestro.daemon.lifecycle import start_daemon
from maestro.daemon.transport.client import DaemonClient
from maestro.errors import ConnectionLostError

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="finds processes through /proc"
)

MAESTRO = str(Path(sys.executable).with_name("maestro"))
SECONDS = 3.0  # how long the slow test runs when nothing kills it

SLOW_TEST = """
import os
import subprocess
import sys
import time
from pathlib import Path

LOG = Path(@LOG@)


def note(*words):
    with LOG.open("a") as f:
        f.write(" ".join(str(w) for w in words) + "\\n")


def test_slow():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    note("start", os.getpid(), sleeper.pid, time.time())
    try:
        end = time.monotonic() + @SECONDS@
        while time.monotonic() < end:
            note("beat", os.getpid(), time.time())
            time.sleep(0.05)
    finally:
        sleeper.kill()
        sleeper.wait()
    note("end", os.getpid(), time.time())
"""


@pytest.fixture
def ws(daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[DaemonEnv]:
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(daemon_env.base / "cache"))
    monkeypatch.delenv("MAESTRO_DAEMON", raising=False)
    monkeypatch.delenv("CI", raising=False)
    log = daemon_env.base / "runs.log"  # outside the workspace: not an input of the test
    files = {
        "pyproject.toml": (
            f'[project]\nname = "ws"\n\n[tool.maestro]\ninterpreter = "{project_python()}"\n\n'
            '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
        ),
        "tests/test_slow.py": SLOW_TEST.replace("@LOG@", repr(str(log))).replace(
            "@SECONDS@", repr(SECONDS)
        ),
    }
    for rel, text in files.items():
        path = daemon_env.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    try:
        yield daemon_env
    finally:
        # Whatever a failed assertion left running: pytest groups of this workspace.
        for pid in pytest_processes(daemon_env.root):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        for pid, _, sleeper in starts(daemon_env):
            for leftover in (pid, sleeper):
                cmd = _cmdline(leftover)
                if _alive(leftover) and (b"time.sleep(60)" in cmd or b"pytest" in cmd):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(leftover, signal.SIGKILL)


# --- processes -----------------------------------------------------------------------------------


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _parent(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if fields else None


def pytest_processes(root: Path) -> list[int]:
    """Live pytest processes the runner started for ``root`` (their command line names it)."""
    marker = os.fsencode(f"--rootdir={root}")
    found = []
    for entry in Path("/proc").iterdir():
        pid = int(entry.name) if entry.name.isdigit() else 0
        if pid and marker in _cmdline(pid).split(b"\0") and _alive(pid):
            found.append(pid)
    return found


def gone_within(pids: list[int], seconds: float) -> list[str]:
    """The processes of ``pids`` still alive after waiting up to ``seconds`` for them to die."""
    deadline = time.monotonic() + seconds
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [f"{p}: {_stat(p)} {_cmdline(p)!r}" for p in pids if _alive(p)]


# --- the runs log ----------------------------------------------------------------------------


def _log_lines(env: DaemonEnv) -> list[list[str]]:
    try:
        text = (env.base / "runs.log").read_text()
    except FileNotFoundError:
        return []
    # A line another process is writing may be cut short: keep complete ones only.
    sizes = {"start": 4, "beat": 3, "end": 3}
    words = [line.split() for line in text.splitlines()]
    return [w for w in words if w and sizes.get(w[0]) == len(w)]


def starts(env: DaemonEnv) -> list[tuple[int, float, int]]:
    """(pytest pid, start time, grandchild pid) of every run of the slow test so far."""
    return [(int(w[1]), float(w[3]), int(w[2])) for w in _log_lines(env) if w[0] == "start"]


def wait_started(env: DaemonEnv, timeout: float = 60.0) -> tuple[int, int]:
    """(pytest pid, grandchild pid) of the first run, once its test is under way."""
    deadline = time.monotonic() + timeout
    while not starts(env):
        assert time.monotonic() < deadline, "the slow test never started"
        time.sleep(0.02)
    pid, _, sleeper = starts(env)[0]
    return pid, sleeper


def intervals(env: DaemonEnv) -> dict[int, tuple[float, float]]:
    """pid -> (first, last) time the slow test was seen running in that pytest process."""
    seen: dict[int, list[float]] = {}
    for words in _log_lines(env):
        if words[0] in ("start", "beat", "end"):
            stamp = float(words[3] if words[0] == "start" else words[2])
            seen.setdefault(int(words[1]), []).append(stamp)
    return {pid: (min(ts), max(ts)) for pid, ts in seen.items()}


def maestro_test(env: DaemonEnv, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [MAESTRO, "test", *args],
        cwd=env.root,
        env={**os.environ, "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the finally below can stop it and anything it left
    )


def stop(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=10)


# --- tests ---------------------------------------------------------------------------------------


def test_kill_9_of_the_daemon_takes_its_pytest_along(ws: DaemonEnv) -> None:
    reply = start_daemon(ws.root)
    assert reply is not None
    daemon = ws.track(reply.pid)

    async def scenario() -> tuple[int, int]:
        async with await DaemonClient.connect(ws.root, start=False) as client:
            params = wire.RunTestsParams(paths=["tests/test_slow.py"])
            run = asyncio.create_task(client.call(wire.RUN_TESTS, params, timeout=120))
            try:
                pid, sleeper = await asyncio.to_thread(wait_started, ws)
                assert _parent(pid) == daemon  # the daemon's own child runs it
                kill_hard(daemon)
                with pytest.raises(ConnectionLostError):
                    await asyncio.wait_for(run, 10)
                return pid, sleeper
            finally:
                run.cancel()
                with contextlib.suppress(BaseException):
                    await run

    pid, sleeper = asyncio.run(scenario())
    assert gone_within([pid, sleeper], 3.0) == [], "pytest outlived the daemon that ran it"
    assert pytest_processes(ws.root) == []
    assert "end" not in {w[0] for w in _log_lines(ws)}


def test_kill_9_of_an_in_process_run_takes_its_pytest_along(ws: DaemonEnv) -> None:
    cli = maestro_test(ws, "--no-daemon")
    try:
        pid, sleeper = wait_started(ws)
        assert _parent(pid) == cli.pid  # run in the CLI's own process, no daemon
        cli.kill()
        reap(cli.pid)
        assert gone_within([pid, sleeper], 3.0) == [], "pytest outlived the CLI that ran it"
        assert pytest_processes(ws.root) == []
    finally:
        stop(cli)


def test_after_kill_9_of_the_daemon_the_fallback_run_never_overlaps_the_orphan(
    ws: DaemonEnv,
) -> None:
    reply = start_daemon(ws.root)
    assert reply is not None
    daemon = ws.track(reply.pid)
    cli = maestro_test(ws)  # through the running daemon
    try:
        pid, _ = wait_started(ws)
        assert _parent(pid) == daemon
        time.sleep(0.3)  # well into the test
        kill_hard(daemon)
        # The CLI notices and runs the same test again in its own process.
        out, err = cli.communicate(timeout=120)
        assert cli.returncode == 0, out + err
        assert "computing in process" in err
        assert "1 passed" in out
    finally:
        stop(cli)
    runs = intervals(ws)
    assert len(runs) == 2, runs
    (first, (_, first_last)), (second, (second_start, _)) = sorted(
        runs.items(), key=lambda item: item[1][0]
    )
    assert first_last < second_start, (
        f"pytest {first} was still running the test {first_last - second_start:.2f}s after "
        f"pytest {second} started it"
    )
    assert ["end", str(second)] in [w[:2] for w in _log_lines(ws)]
    assert gone_within([first], 3.0) == []
    assert pytest_processes(ws.root) == []


ORPHAN_OWNER = """
import subprocess, sys, time
from pathlib import Path
from maestro.engine.runner import RunRecord, runs_dir

record = RunRecord(runs_dir(Path(sys.argv[1])))
child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(60)"],
    pass_fds=(record.group_fd,),
    start_new_session=True,
)
record.spawned(child.pid)
print(child.pid, flush=True)
time.sleep(60)
"""


def test_a_starting_daemon_kills_the_runs_a_dead_runner_left(ws: DaemonEnv) -> None:
    # A run recorded like the runner's, whose "pytest" has no lifeline: only the record tells.
    owner = subprocess.Popen(
        [sys.executable, "-P", "-c", ORPHAN_OWNER, str(ws.root)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert owner.stdout is not None
    orphan = int(owner.stdout.readline())
    try:
        owner.kill()
        owner.wait()
        assert _alive(orphan)
        reply = start_daemon(ws.root)
        assert reply is not None
        ws.track(reply.pid)
        assert gone_within([orphan], 5.0) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(orphan, signal.SIGKILL)
