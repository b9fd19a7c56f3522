"""`maestro cache stats` counts what the cache saved: a stored failed result, which the run
executes again, is a miss, not a hit."""

from __future__ import annotations

import re

import pytest
import typer
from project_python import project_python
from testing_helpers import Workspace
from typer.testing import CliRunner

from maestro.cache import Cache
from maestro.cli import test_cmd

app = typer.Typer()
app.command("test", cls=test_cmd.TestCommand)(test_cmd.test)
app.command("noop")(lambda: None)


def counters() -> tuple[int, int]:
    with Cache.open() as cache:
        stats = cache.stats()
    return stats.hits, stats.misses


def test_a_failed_result_that_re_runs_is_a_miss(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    monkeypatch.chdir(ws.root)
    ws.edit("pkg/b.py", "return a * b", "return a + b")  # tests/test_b.py::test_mul fails
    first = CliRunner().invoke(app, ["test", "--no-daemon"])
    assert first.exit_code == 1, first.output
    assert counters() == (0, 4)  # nothing stored yet: four files, four misses

    again = CliRunner().invoke(app, ["test", "--no-daemon"])
    assert again.exit_code == 1 and "failed last time" in again.output
    found = re.search(r"ran (\d+) files?, (\d+) cached", again.output)
    assert found is not None
    ran, cached = int(found[1]), int(found[2])
    assert ran >= 1 and ran + cached == 4
    # The files served from the cache are hits; each stored (failed) result that re-ran a miss.
    assert counters() == (cached, 4 + ran)

    ws.edit("pkg/b.py", "return a + b", "return a * b")
    CliRunner().invoke(app, ["test", "--no-daemon"])
    before = counters()
    CliRunner().invoke(app, ["test", "--no-daemon"])
    after = counters()
    assert (after[0] - before[0], after[1] - before[1]) == (4, 0)  # all passing: four hits
