"""Before 3.12 an untraced first run is re-recorded, traced, by the idle daemon; a user's run
cancels that re-recording instead of waiting for it. Real daemon, real pytest, real LMDB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DaemonEnv
from project_python import project_python
from test_speculation import CONFTEST, SLOW, Hold, run_all, sessions, setup, wait_for

from maestro import wire
from maestro.cache import Cache
from maestro.daemon.transport.client import SyncDaemonClient
from maestro.engine import testing
from maestro.engine.interpreter import query_interpreter
from maestro.graph.build import BuildGraph
from maestro.paths import graph_index_path

pytestmark = pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ traces every run")


def traced(root: Path) -> dict[str, bool]:
    """Test file -> served from a cached result with a per-node record (None: not served)."""
    graph = BuildGraph.build(root, index_path=graph_index_path(root))
    with Cache.open() as cache:
        planned = testing.plan(
            graph, cache, query_interpreter(project_python()), testing.Selection()
        )
    return {
        f.target: not f.runs and f.cached is not None and f.cached.trace is not None
        for f in planned.files
    }


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_idle_daemon_retraces_and_a_run_cancels_it(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = daemon_env
    env.write_old({"tests/test_slow.py": SLOW, "tests/conftest.py": CONFTEST})
    marker = setup(env, monkeypatch, speculate=False)
    monkeypatch.delenv("MAESTRO_TRACE")  # the default: the first run is untraced before 3.12
    pid_file, hold = env.base / "slow.pid", Hold(env.base / "hold")
    with SyncDaemonClient(env.root, start=False) as client:
        first = run_all(client)
        assert first.exit_code == 0 and sessions(marker) == 1
        assert not any(traced(env.root).values())
        # the re-recording starts once idle; hold it in test_slow
        pid_file.unlink(missing_ok=True)
        hold.on()
        wait_for(pid_file.exists, what="the re-recording's pytest")
        pid = int(pid_file.read_text())
        assert sessions(marker) == 2 and alive(pid)
        second = run_all(client)  # not held up: served from the cache, the re-recording killed
        assert second.exit_code == 0 and second.ran_files == 0
        wait_for(lambda: not alive(pid), what="the cancelled pytest to exit")
        assert not any(traced(env.root).values())  # nothing stored by the cancelled run
        # idle again: re-recorded to the end this time
        hold.off()
        wait_for(lambda: all(traced(env.root).values()), timeout=60, what="traced results")
        third = run_all(client)
        assert third.exit_code == 0 and third.ran_files == 0


def test_results_of_a_run_without_the_daemon_are_retraced_once_served(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = daemon_env
    marker = setup(env, monkeypatch, speculate=False)
    monkeypatch.delenv("MAESTRO_TRACE")
    graph = BuildGraph.build(env.root, index_path=graph_index_path(env.root))
    with Cache.open() as cache:  # `maestro test --no-daemon`: untraced
        interpreter = query_interpreter(project_python())
        assert testing.run(graph, cache, interpreter, testing.Selection()).exit_code == 0
    assert sessions(marker) == 1 and not any(traced(env.root).values())
    with SyncDaemonClient(env.root, start=False) as client:
        served = run_all(client)
        assert served.exit_code == 0 and served.ran_files == 0
        wait_for(lambda: all(traced(env.root).values()), timeout=60, what="traced results")
        assert sessions(marker) == 2
        assert run_all(client).ran_files == 0
    assert sessions(marker) == 2  # served again: not re-recorded twice


def test_the_retrace_yields_to_a_pytest_the_user_starts(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user's own pytest in the workspace stops a re-recording in progress (tests writing into
    the working tree would trip over each other: ecdsa's recreate `t/`), nothing stored; it
    starts again once that run is over."""
    env = daemon_env
    env.write_old({"tests/test_slow.py": SLOW, "tests/conftest.py": CONFTEST})
    marker = setup(env, monkeypatch, speculate=False)
    monkeypatch.delenv("MAESTRO_TRACE")
    pid_file, hold = env.base / "slow.pid", Hold(env.base / "hold")
    (env.base / "user-hold").write_bytes(b"")
    user_hold = Hold(env.base / "user-hold")
    user_env = {
        **{k: v for k, v in os.environ.items() if k != "SPEC_MARKER"},
        "SPEC_PID": str(env.base / "user.pid"),
        "SPEC_HOLD": str(env.base / "user-hold"),
    }
    with SyncDaemonClient(env.root, start=False) as client:
        assert run_all(client).exit_code == 0 and sessions(marker) == 1
        pid_file.unlink(missing_ok=True)
        hold.on()
        wait_for(pid_file.exists, what="the re-recording's pytest")
        pid = int(pid_file.read_text())
        user_hold.on()
        user = subprocess.Popen(
            [str(project_python()), "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "tests/test_slow.py"],
            cwd=env.root, env=user_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for(lambda: not alive(pid), what="the re-recording to stop")
            hold.off()
            wait_for(
                lambda: (s := client.call(wire.STATUS).retrace) is not None
                and s.state == "held" and f"pid {user.pid}" in s.reason,
                what="the re-recording held by the user's run",
            )  # fmt: skip
            assert sessions(marker) == 2 and not any(traced(env.root).values())
        finally:
            user_hold.off()
            out = user.communicate(timeout=60)[0].decode(errors="replace")
        assert user.returncode == 0, out
        wait_for(lambda: all(traced(env.root).values()), timeout=60, what="traced results")
        assert sessions(marker) == 3
