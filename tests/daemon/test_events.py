"""Event lines from the child are validated; bad lines are skipped, never fatal."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from maestro.engine.events import FileDeps, SessionEnd, TestResult, parse_event
from maestro.engine.interpreter import Interpreter
from maestro.engine.runner import run_pytest_sync

WriteWorkspace = Callable[[dict[str, str]], Path]


def test_valid_lines_parse_into_models() -> None:
    event = parse_event(
        b'{"event":"test_result","v":1,"nodeid":"t.py::a","outcome":"failed","when":"call",'
        b'"duration_s":0.5,"raised_at":{"path":"m.py","line":3},"future_field":1}'
    )
    assert isinstance(event, TestResult)
    assert event.raised_at is not None and event.raised_at.line == 3
    deps = parse_event('{"event":"file_deps","v":1,"path":"t.py","files":[],"modules":[]}')
    assert isinstance(deps, FileDeps)
    assert isinstance(
        parse_event('{"event":"session_end","v":1,"exitstatus":0,"duration_s":1}'), SessionEnd
    )


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b'{"event":"test_result","v":1}',  # fields missing
        b'{"event":"made_up","v":1}',
        b'{"event":"session_end","v":2,"exitstatus":0,"duration_s":1}',  # another protocol
        b'{"event":"test_result","v":1,"nodeid":"x","outcome":"exploded","duration_s":0}',
        b"[1, 2]",
    ],
)
def test_invalid_lines_are_logged_and_skipped(
    line: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="maestro.engine.events"):
        assert parse_event(line) is None
    assert "skipping invalid plugin event" in caplog.text


def test_garbage_on_the_event_pipe_does_not_break_the_run(
    workspace: WriteWorkspace, interpreter: Interpreter
) -> None:
    root = workspace(
        {
            "test_garbage.py": """
            import os

            def test_writes_garbage():
                fd = int(os.environ["MAESTRO_EVENTS_FD"])
                os.write(fd, b"garbage\\n{\\"event\\": \\"nope\\", \\"v\\": 1}\\n")

            def test_after():
                pass
            """
        }
    )
    report = run_pytest_sync(root, interpreter, [])
    assert report.invalid_event_lines == 2
    assert report.outcomes == {"passed": 2}
    assert report.session_end is not None


def test_the_daemon_builds_the_run_validators_while_idle() -> None:
    """The models are built on first use (a one-shot CLI builds them once pytest has its run);
    the daemon's warm-up builds them before its first run instead."""
    probe = (
        "from maestro.daemon.services.tests import _preload\n"
        "from maestro.cache.action import ActionResult\n"
        "from maestro.engine import events\n"
        "def state():\n"
        "    return events._adapter.cache_info().currsize, ActionResult.__pydantic_complete__\n"
        "before = state()\n"
        "_preload()\n"
        "print(before, state())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd="/", timeout=120
    )
    assert out.stdout.strip() == "(0, False) (1, True)", out.stderr
