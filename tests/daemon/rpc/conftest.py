"""Fixtures for daemon RPC tests: a short private state dir and a workspace, no daemon left behind.

Paths live directly under /tmp because AF_UNIX socket paths are limited to ~107 bytes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from project_python import plain_pytest, project_python
from workspace_procs import (
    daemon_processes,  # noqa: F401 (the tests here import it from conftest)
    no_daemon_left,
)

from maestro.daemon.lifecycle import DaemonPaths, lock_holder, start_daemon


@dataclass
class DaemonEnv:
    base: Path
    root: Path
    pids: set[int] = field(default_factory=set)

    @property
    def paths(self) -> DaemonPaths:
        return DaemonPaths.for_root(self.root)

    def holder(self) -> int | None:
        pid = lock_holder(self.paths.lock)
        if pid:
            self.pids.add(pid)
        return pid

    def track(self, pid: int) -> int:
        self.pids.add(pid)
        return pid

    def write_old(self, files: dict[str, str]) -> None:
        """Write workspace files an hour old: older than any index, so a restart may trust
        their stat."""
        old = time.time() - 3600
        for rel, text in files.items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            os.utime(path, (old, old))

    def wait_stopped(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if lock_holder(self.paths.lock) is None:
                return True
            time.sleep(0.05)
        return False


def reap(pid: int, timeout: float = 5.0) -> None:
    """Wait for a killed child of this process (no-op for other processes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.02)


def kill_hard(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    reap(pid)


@pytest.fixture
def daemon_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[DaemonEnv]:
    base = Path(tempfile.mkdtemp(prefix="mrpc", dir="/tmp"))
    root = base / "ws"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'ws'\n")
    monkeypatch.setenv("MAESTRO_STATE_DIR", str(base / "st"))
    monkeypatch.setenv("MAESTRO_DAEMON_TEST_METHODS", "1")
    monkeypatch.setenv("MAESTRO_DAEMON_START_TIMEOUT", "30")
    monkeypatch.delenv("MAESTRO_DAEMON_IDLE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    env = DaemonEnv(base=base, root=root.resolve())
    try:
        yield env
    finally:
        env.holder()
        # Only pids whose command line is this workspace's daemon: a recorded pid may be reused.
        no_daemon_left(env.root)
        for pid in env.pids:
            reap(pid, timeout=0.5)
        shutil.rmtree(base, ignore_errors=True)


def started(env: DaemonEnv) -> int:
    """Start the workspace's daemon detached and track its pid for clean-up."""
    reply = start_daemon(env.root)
    assert reply is not None
    return env.track(reply.pid)


def targets(report: Any) -> list[str]:
    return sorted(i.target for i in report.impacted)


MAESTRO = str(Path(sys.executable).with_name("maestro"))


def maestro_test(ws: DaemonEnv, tmp: Path) -> dict[str, str]:
    """`maestro test` through the workspace's daemon (started if need be): outcome per test."""
    junit = tmp / "junit.xml"
    proc = subprocess.run(
        [MAESTRO, "test", "--root", str(ws.root), "--junit-xml", str(junit)],
        cwd=ws.root, capture_output=True, text=True, timeout=180,
        env={**os.environ, "MAESTRO_DAEMON": "start"},
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return junit_outcomes(junit)


def plain_pytest_outcomes(ws: DaemonEnv, tmp: Path) -> dict[str, str]:
    """Plain pytest on the same tree: outcome per test."""
    junit = tmp / "truth.xml"
    plain_pytest(project_python(), ws.root, "-q", f"--junitxml={junit}")
    return junit_outcomes(junit)


def junit_outcomes(path: Path) -> dict[str, str]:
    """ "classname name" -> passed, failure, error or skipped, from a JUnit file."""
    out: dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname')} {case.get('name')}"
        kinds = {child.tag for child in case}
        out[name] = next((k for k in ("failure", "error", "skipped") if k in kinds), "passed")
    return out
