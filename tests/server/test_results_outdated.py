"""The daemon's report of a changed file can arrive after the run that already saw the change
(a fresh-clone CI under load: a result served after a save was then marked "(outdated: edited
since)" for good). A change marks outdated only the results that arrived before it was made."""

from __future__ import annotations

import time

from maestro.server.results import Results

RESULT = {"tests": [{"node_id": "tests/test_a.py::test_x", "outcome": "passed", "duration_s": 0.1}]}


def test_a_change_outdates_only_results_older_than_it() -> None:
    results = Results()
    changed = time.time()  # the file was saved ...
    results.record_file_result("tests/test_a.py", RESULT, cached=True, run_id="run-1")
    # ... the run saw it, then the watcher's report of the save arrives
    assert results.mark_outdated(["tests/test_a.py"], changed_at=changed) == []
    assert "tests/test_a.py" not in results.outdated
    # a change made after the result: outdated; a deletion (no time to compare) too
    assert results.mark_outdated(["tests/test_a.py"], changed_at=time.time() + 1) == [
        "tests/test_a.py"
    ]
    results.record_file_result("tests/test_a.py", RESULT, cached=True, run_id="run-2")
    assert results.mark_outdated(["tests/test_a.py"], changed_at=None) == ["tests/test_a.py"]
