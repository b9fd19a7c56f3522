"""A test that sets the times of a file the run reads (jinja2's auto-reload tests `os.utime` a
template) changed no content: the results are still stored, so a run with no change serves
them. A file whose content changes while the tests run still keeps its results out."""

from __future__ import annotations

from testing_helpers import Workspace, ran


def test_a_file_the_run_touched_keeps_the_results_cacheable(ws: Workspace) -> None:
    ws.write("tests/page.txt", "hello\n")
    ws.write(
        "tests/test_touch.py",
        """
        import os, pathlib

        def test_read():
            assert pathlib.Path("tests/page.txt").read_text() == "hello\\n"

        def test_touch():
            os.utime("tests/page.txt", None)  # a newer mtime, the same content
        """,
    )
    first = ws.run()
    assert first.failed == 0 and "tests/test_touch.py" in ran(first)
    assert "tests/test_touch.py" not in ran(ws.run())  # stored, then served
    ws.write("tests/page.txt", "bye\n")
    summary = ws.run()
    assert "tests/test_touch.py" in ran(summary) and summary.failed == 1
