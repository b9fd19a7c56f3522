"""A test that writes a file in the workspace and then reads it back reads its own output, not
an input: its results are stored, so runs with no change are served from the cache, even when
what it writes differs each run (a timestamp). A file it reads before writing it, as left by
another test or process, stays an input; when it changes while each run runs, no result is
stored and `maestro explain` says so."""

from __future__ import annotations

import pytest
from testing_helpers import Workspace, ran
from typer.testing import CliRunner

from maestro.cli.app import app

WRITES_THEN_READS = """
import pathlib, time

def test_stamp():
    out = pathlib.Path("tests/out.txt")
    out.write_text(f"stamp {time.time_ns()}{MARK}")
    assert out.read_text().startswith("stamp")

def test_other():
    assert True
"""


SAVES_ATOMICALLY_THEN_READS = """
import os, pathlib, time

def test_stamp():
    tmp = pathlib.Path("tests/out.txt.tmp")
    tmp.write_text(f"stamp {time.time_ns()}{MARK}")
    os.replace(tmp, "tests/out.txt")  # an atomic save
    assert pathlib.Path("tests/out.txt").read_text().startswith("stamp")

def test_other():
    assert True
"""


@pytest.mark.parametrize("body", [WRITES_THEN_READS, SAVES_ATOMICALLY_THEN_READS])
def test_a_file_the_test_wrote_then_read_is_its_own_output(ws: Workspace, body: str) -> None:
    ws.write("tests/test_stamp.py", body.replace("{MARK}", ""))
    assert ws.run().failed == 0
    # edits of the test: the second re-runs only that test, with the earlier runs' record at hand
    for mark in (" ", "  "):
        ws.write("tests/test_stamp.py", body.replace("{MARK}", mark))
        assert "tests/test_stamp.py" in ran(ws.run())
    again = ws.run()  # no change: its result was stored
    assert ran(again) == [] and again.failed == 0


def test_a_file_read_before_the_test_writes_it_stays_an_input(ws: Workspace) -> None:
    ws.write("tests/state.txt", "ok\n")
    ws.write(
        "tests/test_state.py",
        """
        import pathlib

        def test_state():
            path = pathlib.Path("tests/state.txt")
            seen = path.read_text()
            path.write_text(seen)
            assert path.read_text() == "ok\\n"
        """,
    )
    assert ws.run().failed == 0
    ws.write("tests/state.txt", "broken\n")  # another writer between runs
    summary = ws.run()
    assert "tests/test_state.py" in ran(summary) and summary.failed == 1


def test_explain_tells_why_a_result_was_not_stored(ws: Workspace) -> None:
    # the test reads the file before it writes it (its own last run's stamp): an input that
    # changes while every run runs, so no run is stored and each re-runs; say so
    ws.write(
        "tests/test_state.py",
        """
        import pathlib, time

        def test_state():
            path = pathlib.Path("tests/state.txt")
            seen = path.read_text() if path.exists() else ""
            path.write_text(f"stamp {time.time_ns()}")
            assert "broken" not in seen
        """,
    )
    ws.write("tests/state.txt", "start")
    assert ws.run().failed == 0
    ws.write("tests/state.txt", "edited")  # another writer between runs
    assert "tests/test_state.py" in ran(ws.run())
    assert "tests/test_state.py" in ran(ws.run())  # its last result was not stored
    said = CliRunner().invoke(app, ["explain", "tests/test_state.py", "--root", str(ws.root)])
    assert said.exit_code == 0, said.output
    assert "last run's result was not stored: tests/state.txt changed while" in said.output
