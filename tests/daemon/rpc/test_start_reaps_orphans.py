"""A daemon that starts kills the pytest runs a dead runner left behind, without waiting for a
run to do it (it does so once its first answer is out)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

from conftest import DaemonEnv, started
from workspace_procs import alive, wait_dead

from maestro import wire
from maestro.daemon.transport.client import SyncDaemonClient

# records a run the way the runner does, starts a sleeper holding the group lock, prints its pid
OWNER = """
import subprocess, sys, time
from pathlib import Path
from maestro.engine.runner import RunRecord, runs_dir

record = RunRecord(runs_dir(Path(sys.argv[1])))
child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(60)"],
    pass_fds=(record.group_fd,), start_new_session=True, stdin=subprocess.DEVNULL,
)
record.spawned(child.pid)
print(child.pid, flush=True)
time.sleep(60)
"""


def test_a_starting_daemon_kills_a_dead_runners_run(daemon_env: DaemonEnv) -> None:
    daemon_env.write_old({"pkg/__init__.py": "", "pkg/mod.py": "X = 1\n"})
    owner = subprocess.Popen(
        [sys.executable, "-P", "-c", OWNER, str(daemon_env.root)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert owner.stdout is not None
    orphan = int(owner.stdout.readline())
    try:
        owner.kill()  # kill -9 of the runner: its run goes on, unseen
        owner.wait()
        assert alive(orphan)
        started(daemon_env)
        with SyncDaemonClient(daemon_env.root, start=False, timeout=30) as client:
            client.call(wire.IMPACTED, wire.ImpactedParams(paths=["pkg/mod.py"]))
        assert wait_dead(orphan, 15.0)
    finally:
        for pgid in (owner.pid, orphan):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
