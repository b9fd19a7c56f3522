"""Cancelling a run kills the whole process group quickly and leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from workspace_procs import alive

from maestro.engine.events import Event, SessionStart, TestStart
from maestro.engine.interpreter import Interpreter
from maestro.engine.runner import run_pytest

WriteWorkspace = Callable[[dict[str, str]], Path]

SLEEPER = """
import subprocess
import sys
import time
from pathlib import Path


def test_sleeps():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    Path("grandchild.pid").write_text(str(child.pid))
    time.sleep(60)
"""


async def _run_then_cancel(
    root: Path, interpreter: Interpreter, grace_s: float
) -> tuple[float, int, int]:
    events: list[Event] = []
    started = asyncio.Event()

    def on_event(event: Event) -> None:
        events.append(event)
        if isinstance(event, TestStart):
            started.set()

    task = asyncio.create_task(
        run_pytest(root, interpreter, ["test_sleep.py"], on_event=on_event, grace_s=grace_s)
    )
    await asyncio.wait_for(started.wait(), 30)
    pid_file = root / "grandchild.pid"
    for _ in range(100):
        if pid_file.exists() and pid_file.read_text():
            break
        await asyncio.sleep(0.05)
    grandchild = int(pid_file.read_text())
    child = next(e.pid for e in events if isinstance(e, SessionStart))
    began = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return time.monotonic() - began, child, grandchild


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="checks processes through /proc")
def test_cancel_kills_child_and_grandchild(
    workspace: WriteWorkspace, interpreter: Interpreter
) -> None:
    root = workspace({"test_sleep.py": SLEEPER})
    elapsed, child, grandchild = asyncio.run(_run_then_cancel(root, interpreter, grace_s=3.0))
    assert elapsed < 5.0
    assert not alive(child)
    # The grandchild is reparented to init (or a subreaper) once killed; give it a moment.
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild)
    with pytest.raises(ChildProcessError):
        os.waitpid(child, os.WNOHANG)  # already reaped: no zombie of ours


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="checks processes through /proc")
def test_cancel_escalates_to_sigkill_when_sigterm_is_ignored(
    workspace: WriteWorkspace, interpreter: Interpreter
) -> None:
    stubborn = SLEEPER.replace(
        "def test_sleeps():",
        "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n\n\ndef test_sleeps():",
    )
    root = workspace({"test_sleep.py": stubborn})
    elapsed, child, _ = asyncio.run(_run_then_cancel(root, interpreter, grace_s=1.0))
    assert 0.9 < elapsed < 5.0
    assert not alive(child)


def test_timeout_is_a_cancellation(workspace: WriteWorkspace, interpreter: Interpreter) -> None:
    root = workspace({"test_sleep.py": "import time\n\ndef test_s():\n    time.sleep(60)\n"})

    async def run() -> None:
        async with asyncio.timeout(2.0):
            await run_pytest(root, interpreter, ["test_sleep.py"])

    began = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(run())
    assert time.monotonic() - began < 8.0
