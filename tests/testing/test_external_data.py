"""A data file outside the workspace that a test reads (a sibling folder of a monorepo, a file
under the home directory) is an input by content: it was dropped (only code outside the
workspace was kept), so editing it served the cached pass where pytest failed. Real pytest
children, real LMDB."""

from __future__ import annotations

from pathlib import Path

from test_fidelity_trials import outcomes, pytest_says
from testing_helpers import Workspace

NODE = "tests/test_shared.py::test_shared_value"


def test_a_data_file_outside_the_workspace_keys_its_readers(ws: Workspace, outside: Path) -> None:
    data = outside / "data.json"
    data.write_text('{"v": 1}\n')
    ws.write(
        "tests/test_shared.py",
        f"""
        import json
        import pathlib


        def test_shared_value():
            assert json.loads(pathlib.Path({str(data)!r}).read_text())["v"] == 1
        """,
    )
    assert outcomes(ws.run())[NODE] == "passed"
    assert outcomes(ws.run())[NODE] == "passed"  # served
    data.write_text('{"v": 2}\n')
    assert pytest_says(ws)[NODE] == "failed"
    summary = ws.run()
    assert outcomes(summary)[NODE] == "failed"
    data.write_text('{"v": 1}\n')
    again = ws.run()
    assert outcomes(again)[NODE] == "passed"
    assert again.ran_files == 0  # the first result, served again for the first content


def test_a_file_outside_the_workspace_that_the_run_made_is_no_input(
    ws: Workspace, outside: Path
) -> None:
    # anyio: a test runs pip in a new venv; pip writes ~/.cache/pip/selfcheck/<hash of the new
    # venv> and reads it back: a new file every run, which made every result "changed while the
    # tests ran" and nothing was ever cached
    ws.write(
        "tests/test_shared.py",
        f"""
        import pathlib
        import subprocess
        import sys
        import uuid


        def test_shared_value():
            made = pathlib.Path({str(outside)!r}) / f"selfcheck-{{uuid.uuid4().hex}}.json"
            # as pip writes it: a temporary file renamed into place (the name is never opened)
            write = (
                "import os, sys; open(sys.argv[1] + '.tmp', 'w').write('{{}}'); "
                "os.replace(sys.argv[1] + '.tmp', sys.argv[1])"
            )
            subprocess.run([sys.executable, "-c", write, str(made)], check=True)
            assert made.read_text() == "{{}}"
        """,
    )
    assert outcomes(ws.run())[NODE] == "passed"
    again = ws.run()
    assert outcomes(again)[NODE] == "passed"
    assert again.ran_files == 0, "the run's own output was taken for a changed input"


def test_a_test_listing_a_folder_outside_the_workspace_runs_as_under_pytest(
    ws: Workspace, outside: Path
) -> None:
    # a listing is recorded as a path holding a NUL marker: os.stat of it raised ValueError
    # inside pytest (INTERNALERROR), and every test of the run was lost
    (outside / "case.txt").write_text("1\n")
    ws.write(
        "tests/test_shared.py",
        f"""
        import os


        def test_shared_value():
            assert os.listdir({str(outside)!r}) == ["case.txt"]
        """,
    )
    summary = ws.run()
    assert outcomes(summary)[NODE] == "passed"
    assert summary.exit_code == 0
