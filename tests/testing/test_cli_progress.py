"""The progress bar of `maestro test` in a terminal: its count never passes its total."""

from __future__ import annotations

import pytest

from maestro.cli import common
from maestro.cli.test_render import Display, PlannedRow


def test_a_module_level_skip_counts_in_the_total(monkeypatch: pytest.MonkeyPatch) -> None:
    # pytest reports a module-level skip while collecting, before the items are known: structlog
    # showed "856/855" after its 855 tests and test_twisted.py's skip.
    monkeypatch.setattr(common.console, "_force_terminal", True)
    with Display() as display:
        display.plan([PlannedRow(target="tests/test_a.py", runs=True, describe="no cached result")])
        display.progress_event({"event": "test_result", "nodeid": "tests/test_skipped.py"})
        files = {"tests/test_a.py": ["tests/test_a.py::test_one", "tests/test_a.py::test_two"]}
        display.progress_event({"event": "collected", "files": files})
        for node in files["tests/test_a.py"]:
            display.progress_event({"event": "test_start", "nodeid": node})
            display.progress_event({"event": "test_result", "nodeid": node})
        assert (display.done, display.total) == (3, 3)
