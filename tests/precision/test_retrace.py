"""Re-recording an untraced run (engine/retrace.py).

Before 3.12 a cold run is untraced: the first change to a file's inputs re-runs the whole file.
Re-recorded traced (what the daemon does once idle), the first change re-runs only the nodes that
executed the changed code; a result whose outcomes differ in the re-recording keeps the cached
one (and its file-level record)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from precision_helpers import Workspace, ran_nodes

from maestro.cache import Cache
from maestro.engine import testing
from maestro.engine.core import Engine
from maestro.engine.retrace import retrace

pytestmark = pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ traces every run")


def _retrace(ws: Workspace) -> testing.Summary | None:
    with Cache.open() as cache:
        engine = Engine(ws.graph(), cache, ws.interpreter)
        return asyncio.run(retrace(engine))


def _traced(ws: Workspace, target: str) -> bool:
    planned = ws.plan()
    (f,) = [f for f in planned.files if f.target == target]
    assert not f.runs and f.cached is not None
    return f.cached.trace is not None


def test_untraced_cold_run_without_retrace_reruns_whole_files(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAESTRO_TRACE")
    first = ws.run()
    assert first.report is not None and first.report.session_trace is None
    ws.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    assert ran_nodes(ws.run()) == [
        "tests/test_calc.py::test_combo",
        "tests/test_calc.py::test_double",
        "tests/test_calc.py::test_triple",
        "tests/test_other.py::test_imports_only",
    ]


def test_retraced_cold_run_narrows_the_first_change(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAESTRO_TRACE")
    ws.run()
    assert not _traced(ws, "tests/test_calc.py")
    summary = _retrace(ws)
    assert summary is not None and summary.failed == 0
    assert {o.target for o in summary.files if o.stored} == {
        "tests/test_calc.py",
        "tests/test_data.py",
        "tests/test_other.py",
    }
    assert _traced(ws, "tests/test_calc.py")
    assert _retrace(ws) is None  # nothing left untraced
    assert ran_nodes(ws.run()) == []  # served: same keys
    ws.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    assert ran_nodes(ws.run()) == ["tests/test_calc.py::test_triple"]
    # the other side: a change the tests see re-runs (and fails) every node that executed it
    ws.edit("pkg/calc.py", "return x * RATE", "return x * RATE + 1")
    summary = ws.run()
    assert ran_nodes(summary) == [
        "tests/test_calc.py::test_combo",
        "tests/test_calc.py::test_double",
    ]
    assert summary.failed == 2


def test_retrace_keeps_the_cached_result_when_outcomes_differ(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MAESTRO_TRACE")
    counter = tmp_path / "runs.txt"  # written by the test itself: not an input
    ws.write(
        "tests/test_flip.py",
        f"""
        import pathlib

        from pkg import calc

        COUNTER = pathlib.Path({str(counter)!r})


        def test_first_time_only():
            n = int(COUNTER.read_text()) if COUNTER.exists() else 0
            COUNTER.write_text(str(n + 1))
            assert n == 0


        def test_triple():
            assert calc.triple(1) == 3
        """,
    )
    assert ws.run().failed == 0
    summary = _retrace(ws)
    assert summary is not None
    stored = {o.target: o.stored for o in summary.files}
    assert stored["tests/test_flip.py"] is False  # it failed this time: not stored
    assert stored["tests/test_calc.py"] is True
    assert not _traced(ws, "tests/test_flip.py")
    served = ws.run()
    assert ran_nodes(served) == [] and served.failed == 0  # the cached pass, as before
    ws.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    # no per-node record for test_flip.py: the whole file re-runs (its counter says 2 runs)
    assert ran_nodes(ws.run()) == [
        "tests/test_calc.py::test_triple",
        "tests/test_flip.py::test_first_time_only",
        "tests/test_flip.py::test_triple",
    ]
