"""The user deletes the cache directory while the daemon runs, to start afresh: the next run
through the daemon serves nothing from the deleted file, says so, and the daemon then stops,
so that the next command opens a new cache (real daemon, real pytest, real LMDB)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import DaemonEnv

from maestro import wire
from maestro.daemon.lifecycle import start_daemon
from maestro.daemon.transport.client import SyncDaemonClient

FILES = {
    "pkg/__init__.py": "",
    "pkg/core.py": "def one():\n    return 1\n",
    "tests/test_core.py": "from pkg.core import one\n\n\ndef test_one():\n    assert one() == 1\n",
    "tests/test_other.py": "def test_other():\n    assert True\n",
}


def run_all(client: SyncDaemonClient) -> wire.RunTestsResult:
    params = wire.RunTestsParams(env=dict(os.environ))
    return client.stream(wire.RUN_TESTS, params, lambda e: None, timeout=120)


def test_a_run_after_the_cache_was_deleted_serves_nothing_from_it(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a user's `rm -rf $MAESTRO_CACHE_DIR` to force a re-run: the daemon kept the deleted file
    # open and the next run said "ran 0 files, 2 cached" until the daemon restarted
    cache = daemon_env.base / "cache"
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(cache))
    daemon_env.write_old(FILES)
    reply = start_daemon(daemon_env.root)
    assert reply is not None
    pid = daemon_env.track(reply.pid)
    with SyncDaemonClient(daemon_env.root, start=False) as client:
        assert run_all(client).ran_files == 2
        served = run_all(client)
        assert (served.ran_files, served.passed, served.notes) == (0, 2, [])
        shutil.rmtree(cache)
        fresh = run_all(client)
    assert (fresh.ran_files, fresh.passed) == (2, 2), fresh
    assert len(fresh.notes) == 1 and "was deleted while the daemon ran" in fresh.notes[0]
    deadline = time.monotonic() + 30
    while not gone(pid):  # it stops once idle: the next command opens a new cache
        if time.monotonic() > deadline:
            pytest.fail("the daemon kept running on a deleted cache")
        time.sleep(0.1)


def gone(pid: int) -> bool:
    """Exited (reaped, or a zombie of this test process, which started it)."""
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"
