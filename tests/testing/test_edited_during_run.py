"""An input edited while a run is under way keeps that run's result out of the cache, and the
next plan says why: in words that fit who started the run (the user's own, or the daemon's
background run nobody waited for). Real pytest children, real LMDB."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from testing_helpers import Workspace

from maestro.cache import Cache
from maestro.engine import testing

TARGET = "tests/test_wait.py"

# the test says when it has started and waits for the edit, so the edit lands mid-run
WAITING = """
import pathlib
import time

from pkg.a import add

SIGNALS = pathlib.Path({signals!r})


def test_waits():
    (SIGNALS / "started").write_text("")
    for _ in range(1200):
        if (SIGNALS / "go").exists():
            break
        time.sleep(0.05)
    assert add(1, 2) == 3
"""


def _run_editing(ws: Workspace, signals: Path, old: str, new: str, *, background: bool) -> None:
    """A run of TARGET during which pkg/a.py is edited (as the daemon's own run or not)."""
    for name in ("started", "go"):
        (signals / name).unlink(missing_ok=True)

    def edit_once_started() -> None:
        for _ in range(1200):
            if (signals / "started").exists():
                break
            time.sleep(0.05)
        ws.edit("pkg/a.py", old, new)
        (signals / "go").write_text("")

    editor = threading.Thread(target=edit_once_started)
    editor.start()

    def as_daemon(plan: testing.Plan) -> None:
        plan.background = background

    try:
        with Cache.open() as cache:
            summary = testing.run(
                ws.graph(), cache, ws.interpreter,
                testing.Selection(paths=(TARGET,)), on_plan=as_daemon,
            )  # fmt: skip
    finally:
        editor.join(timeout=120)
    assert summary.passed == 1 and not [o for o in summary.files if o.stored]


def test_an_edit_during_the_daemons_background_run_is_called_an_edit(
    ws: Workspace, tmp_path: Path
) -> None:
    # schema: the daemon was re-recording a file in the background when the user edited it;
    # the next run said "its last run's result was not stored: tests/test_schema.py changed
    # while the tests ran, written by the tests or another program" (a run they never started,
    # a change that was their own edit)
    signals = tmp_path / "signals"
    signals.mkdir()
    ws.write(TARGET, WAITING.format(signals=str(signals)))
    _run_editing(ws, signals, "return a + b", "return b + a", background=True)
    planned = ws.plan(testing.Selection(paths=(TARGET,))).files[0]
    assert planned.describe() == (
        "no cached result (the daemon's background run of it was not stored: pkg/a.py was"
        " edited while that run was under way)"
    )
    # the user's own run: they know what they started, not what wrote the file
    _run_editing(ws, signals, "return b + a", "return a + b", background=False)
    planned = ws.plan(testing.Selection(paths=(TARGET,))).files[0]
    assert planned.describe() == (
        "no cached result (its last run's result was not stored: pkg/a.py changed while the"
        " tests ran, written by the tests or another program)"
    )
