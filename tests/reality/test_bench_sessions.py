"""The fidelity bench tells the nodes a `maestro test` planned from those it ran: the report
plugin writes one line per pytest session; the first that ran a test is the planned run, later
ones re-run what Maestro doubted (a failure in part of a file, confirmed up to it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    # appended, not prepended: `maestro` must keep resolving to the installed link tree
    sys.path.append(str(REPO))

from bench.bench_fidelity import read_report, read_sessions  # noqa: E402


def test_the_planned_run_is_the_first_session_that_ran_a_test(tmp_path: Path) -> None:
    report = tmp_path / "report.jsonl"
    lines = [
        {"exit": 0, "nodes": {}},  # a collection probe
        {"exit": 1, "nodes": {"t/a.py::x": "passed", "t/b.py::y": "failed"}},
        "not json",
        {"exit": 1, "nodes": {"t/b.py::w": "passed", "t/b.py::y": "failed"}},  # confirmation
    ]
    report.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines))
    sessions = read_sessions(report)
    assert sessions is not None
    assert [sorted(s) for s in sessions] == [
        ["t/a.py::x", "t/b.py::y"],
        ["t/b.py::w", "t/b.py::y"],
    ]
    merged = read_report(report)
    assert merged is not None and sorted(merged) == ["t/a.py::x", "t/b.py::w", "t/b.py::y"]
    assert read_sessions(tmp_path / "missing") is None
