"""Which earlier result a change is judged against.

Before 3.12 a cold run is untraced. An edit then re-runs whole files (and records them); undoing
it serves the cold run's results again (same key). The next edit was judged against those, the
nearest, which have no record: whole files again, at every edit after an undo (python-dateutil
in the fidelity bench: 14 files for a constant read by 4). An older result of the same file that
has a record judges it per node."""

from __future__ import annotations

import sys

import pytest
from precision_helpers import Workspace, ran_nodes


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ traces every run (cheap)")
def test_an_edit_after_an_undo_is_judged_against_a_traced_result(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAESTRO_TRACE")
    first = ws.run()
    assert first.report is not None and first.report.session_trace is None
    ws.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    ws.run()  # whole files, traced
    ws.edit("pkg/calc.py", "return 3 * x", "return x * 3")
    assert ran_nodes(ws.run()) == []  # the cold run's results, served again
    ws.edit("pkg/calc.py", "return x * RATE", "return RATE * x")
    summary = ws.run()
    # against the traced result: triple changed back (its test re-runs), double changed
    assert ran_nodes(summary) == [
        "tests/test_calc.py::test_combo",
        "tests/test_calc.py::test_double",
        "tests/test_calc.py::test_triple",
    ]
    assert summary.failed == 0
