"""A test that writes a file in the workspace and then reads it back reads its own output, not
an input: its results are stored, so runs with no change are served from the cache, even when
what it writes differs each run (a timestamp). A file it reads before writing it, as left by
another test or process, stays an input."""

from __future__ import annotations

from testing_helpers import Workspace, ran

WRITES_THEN_READS = """
import pathlib, time

def test_stamp():
    out = pathlib.Path("tests/out.txt")
    out.write_text(f"stamp {time.time_ns()}{MARK}")
    assert out.read_text().startswith("stamp")

def test_other():
    assert True
"""


def test_a_file_the_test_wrote_then_read_is_its_own_output(ws: Workspace) -> None:
    ws.write("tests/test_stamp.py", WRITES_THEN_READS.replace("{MARK}", ""))
    assert ws.run().failed == 0
    # edits of the test: the second re-runs only that test, with the earlier runs' record at hand
    for mark in (" ", "  "):
        ws.write("tests/test_stamp.py", WRITES_THEN_READS.replace("{MARK}", mark))
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
