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
from test_import_lines import EVERY, STYLED
from test_import_lines import FILES as IMPORT_FILES

from maestro.cache import Cache
from maestro.engine import testing
from maestro.engine.core import Engine
from maestro.engine.retrace import retrace

pytestmark = pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ traces every run")


def _retrace(ws: Workspace, rerecord: tuple[str, ...] = ()) -> testing.Summary | None:
    with Cache.open() as cache:
        engine = Engine(ws.graph(), cache, ws.interpreter)
        return asyncio.run(retrace(engine, rerecord=rerecord))


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


# -- line records of the code run outside the tests (MAESTRO_TRACE=lines, what retrace uses) ----


@pytest.fixture
def lines311(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("MAESTRO_TRACE", "lines")
    for rel, text in IMPORT_FILES.items():
        ws.write(rel, text)
    return ws


def test_lines_a_change_its_import_never_ran_reruns_only_its_executors(
    lines311: Workspace,
) -> None:
    ws = lines311
    assert ws.run().failed == 0
    ws.edit("pkg/render.py", 'self.mode = "windows"', 'self.mode = "win"')
    assert ran_nodes(ws.run()) == ["tests/test_render.py::test_new"]
    # the other side: a statement the import ran re-runs every file
    ws.edit("pkg/render.py", 'self.mode = "plain"', 'self.mode = "basic"')
    summary = ws.run()
    assert ran_nodes(summary) == EVERY
    assert summary.failed == 2


def test_lines_a_line_a_test_ran_first_and_an_import_later_is_an_import_time_line(
    lines311: Workspace,
) -> None:
    ws = lines311
    for rel, text in STYLED.items():
        ws.write(rel, text)
    ws.write("pkg/late.py", "from pkg.render import Renderer\n\nOBJ = Renderer(style='x')\n")
    ws.write(
        "tests/test_zlate.py",
        "def test_late():\n    from pkg import late\n\n    assert late.OBJ.style == 'x'\n",
    )
    assert ws.run().failed == 0
    ws.edit("pkg/render.py", "self.style = style", "self.style = style * 2")
    summary = ws.run()
    assert "tests/test_zlate.py::test_late" in ran_nodes(summary)
    assert "tests/test_calc.py::test_double" in ran_nodes(summary)
    assert summary.failed == 2


def test_lines_lost_to_another_tracer_mean_no_line_record_for_what_ran_then(
    lines311: Workspace,
) -> None:
    """A test replaced the tracer (a coverage tool, a debugger) and ran the import-time code:
    lines may have gone unseen, and that code has no line record."""
    ws = lines311
    ws.write(
        "tests/test_tracer.py",
        "import sys\n\nfrom pkg.render import Renderer\n\n\n"
        "def test_replaces_the_tracer():\n    sys.settrace(None)\n    Renderer()\n",
    )
    assert ws.run().failed == 0
    ws.edit("pkg/render.py", 'self.mode = "windows"', 'self.mode = "win"')
    assert ran_nodes(ws.run()) == sorted([*EVERY, "tests/test_tracer.py::test_replaces_the_tracer"])


def test_a_recursion_error_that_ends_the_tracer_costs_only_its_own_window(
    lines311: Workspace,
) -> None:
    """A test that hits the recursion limit raises it inside the tracer too, which Python then
    drops (structlog 25.4.0's test_recursive: every file lost its import-time line records, so
    on 3.11 an edit of a branch no import ran re-ran the whole suite). The tracer is put back at
    the next window; the lines of the earlier windows stand."""
    ws = lines311
    ws.write(
        "tests/test_deep.py",
        "import sys\n\n\ndef test_recursive():\n"
        "    def down(n):\n        return down(n + 1)\n\n"
        "    try:\n        down(0)\n    except RecursionError:\n        pass\n"
        "    assert sys.gettrace() is None  # the tracer is gone, as in a real suite\n",
    )
    assert ws.run().failed == 0
    ws.edit("pkg/render.py", 'self.mode = "windows"', 'self.mode = "win"')
    assert ran_nodes(ws.run()) == ["tests/test_render.py::test_new"]


def test_retrace_records_import_time_lines(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAESTRO_TRACE")
    for rel, text in IMPORT_FILES.items():
        ws.write(rel, text)
    assert ws.run().failed == 0  # untraced
    summary = _retrace(ws)
    assert summary is not None and all(o.stored for o in summary.files)
    ws.edit("pkg/render.py", 'self.mode = "windows"', 'self.mode = "win"')
    assert ran_nodes(ws.run()) == ["tests/test_render.py::test_new"]


def test_retrace_adds_line_records_to_a_traced_run(ws: Workspace) -> None:
    """A user's traced run before 3.12 (cProfile) keeps no line records: re-recorded (the
    daemon names the files a user's run stored), a change its import never ran re-runs only its
    executor (without: every file that imported it)."""
    for rel, text in IMPORT_FILES.items():
        ws.write(rel, text)
    assert ws.run().failed == 0  # MAESTRO_TRACE=always: traced, no lines
    assert _traced(ws, "tests/test_render.py")
    assert _retrace(ws) is None  # nothing untraced: only what the daemon names is re-recorded
    every = ("tests/test_calc.py", "tests/test_data.py", "tests/test_other.py")
    summary = _retrace(ws, (*every, "tests/test_render.py"))
    assert summary is not None and all(o.stored for o in summary.files)
    ws.edit("pkg/render.py", 'self.mode = "windows"', 'self.mode = "win"')
    assert ran_nodes(ws.run()) == ["tests/test_render.py::test_new"]


def test_retrace_keeps_the_time_the_first_run_took(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The re-recording runs traced and niced: what a cached file saves, and how long its tests
    take, stay the untraced run's."""
    monkeypatch.delenv("MAESTRO_TRACE")
    first = ws.run()
    took = {o.target: o.result.timing for o in first.files if o.result is not None}
    durations = {t.node_id: t.duration_s for o in first.files if o.result for t in o.result.tests}
    summary = _retrace(ws)
    assert summary is not None and all(o.stored for o in summary.files)
    assert _traced(ws, "tests/test_calc.py")
    served = ws.run()
    assert ran_nodes(served) == []
    assert {o.target: o.result.timing for o in served.files if o.result} == took
    assert served.time_saved_s == pytest.approx(sum(t.wall_s for t in took.values()))
    assert {t.node_id: t.duration_s for o in served.files if o.result for t in o.result.tests} == (
        durations
    )
