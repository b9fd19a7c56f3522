"""The idle daemon's re-recording of untraced results (before 3.12) is the daemon's own work: the
``retrace`` setting turns it off, and the policy's run windows hold it as they hold speculation
(a ``background`` run). `maestro status` says which. Real daemon, real pytest, real LMDB."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import DaemonEnv
from test_rpc_retrace import traced
from test_speculation import FILES, pyproject, run_all, sessions, wait_for

from maestro import wire
from maestro.daemon.lifecycle import start_daemon
from maestro.daemon.transport.client import SyncDaemonClient

pytestmark = pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ traces every run")

MAESTRO = str(Path(sys.executable).with_name("maestro"))


def closed_window() -> str:
    """A run window (background and speculative runs, the default kinds) that opens in 3 h."""
    opens = datetime.now(UTC) + timedelta(hours=3)
    closes = opens + timedelta(hours=1)
    return f"""
[tool.maestro.policy.windows.night]
tz = "UTC"
start = "{opens:%H:%M}"
end = "{closes:%H:%M}"
"""


def start(env: DaemonEnv, monkeypatch: pytest.MonkeyPatch, extra: str) -> Path:
    """The workspace of test_speculation with `extra` settings, the first run untraced (the
    default before 3.12), its daemon started."""
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(env.base / "cache"))
    monkeypatch.delenv("MAESTRO_TRACE", raising=False)
    marker = env.base / "sessions.txt"
    monkeypatch.setenv("SPEC_MARKER", str(marker))
    env.write_old(
        {
            **FILES,
            "pyproject.toml": pyproject(False).replace("[tool.pytest", extra + "\n[tool.pytest"),
        }
    )
    reply = start_daemon(env.root)
    assert reply is not None
    env.track(reply.pid)
    return marker


def retrace_status(client: SyncDaemonClient) -> wire.RetraceStatus:
    status = client.call(wire.STATUS).retrace
    assert status is not None
    return status


def status_text(env: DaemonEnv) -> str:
    done = subprocess.run(
        [MAESTRO, "status", "--root", str(env.root)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_retrace_false_never_re_records(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = daemon_env
    marker = start(env, monkeypatch, "retrace = false\n")
    with SyncDaemonClient(env.root, start=False) as client:
        first = run_all(client)
        assert first.exit_code == 0 and sessions(marker) == 1
        status = retrace_status(client)
        assert (status.enabled, status.state, status.pending) == (False, "off", 0)
        time.sleep(3.0)  # past the idle delay after which the re-recording would start
        assert sessions(marker) == 1, "a pytest process re-recorded with retrace = false"
        assert not any(traced(env.root).values())
    assert "retrace off (retrace = false)" in status_text(env)


def test_a_closed_run_window_holds_the_re_recording(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = daemon_env
    marker = start(env, monkeypatch, closed_window())
    with SyncDaemonClient(env.root, start=False) as client:
        first = run_all(client)
        assert first.exit_code == 0 and sessions(marker) == 1
        wait_for(lambda: retrace_status(client).state == "held", what="the policy's hold")
        status = retrace_status(client)
        assert "window" in status.reason and status.pending == 2, status
        assert sessions(marker) == 1 and not any(traced(env.root).values())
        text = status_text(env)
        assert "retrace held (policy: " in text and "2 test files to re-record" in text, text
        # the window goes: the next run (served, nothing runs) lets the re-recording through
        (env.root / "pyproject.toml").write_text(pyproject(False))
        served = run_all(client)
        assert served.exit_code == 0 and served.ran_files == 0
        wait_for(lambda: all(traced(env.root).values()), timeout=60, what="traced results")
        assert sessions(marker) == 2
        status = retrace_status(client)
        assert status.state == "idle" and status.runs == 1 and status.stored == 2, status
