"""A program a test makes and runs (a virtualenv's ``bin/python`` in ``tmp_path``) is no input:
the next run makes its own. nox 2024.10.9: its tests/test_virtualenv.py makes virtualenvs in
tmp_path and runs their python, a link to the base interpreter made long before the run, so
Maestro took the link for a program the run did not make and keyed it by content; the next
run's tmp_path is another folder, the old one was 'changed', and a no-change `maestro test`
re-ran the file (50 s of the 60 s suite) every time. nox makes and runs them in children with
its own PYTHONPATH, which leave no record: the program itself was all Maestro knew. Real
pytest children."""

from __future__ import annotations

import shutil

from test_fidelity_trials import outcomes, pytest_says
from testing_helpers import Workspace, ran


def test_a_linked_interpreter_a_test_makes_in_tmp_path_and_runs_is_no_input(
    ws: Workspace,
) -> None:
    ws.write(
        "tests/test_venv.py",
        """
        import os
        import subprocess
        import sys


        MAKE = "import os, sys; os.makedirs(sys.argv[1]); os.symlink(sys.argv[2], sys.argv[3])"


        def test_runs_its_own_python(tmp_path):
            # as nox's sessions: the virtualenv made, then run, by children with nox's own
            # PYTHONPATH (no record of them)
            env = {**os.environ, "PYTHONPATH": str(tmp_path)}
            python = tmp_path / "venv" / "bin" / "python"
            base = os.path.realpath(sys.executable)
            made = [sys.executable, "-c", MAKE, str(python.parent), base, str(python)]
            subprocess.run(made, check=True, env=env)
            command = [str(python), "-c", "print(6 * 7)"]
            done = subprocess.run(command, capture_output=True, env=env)
            assert done.stdout.strip() == b"42"
            with open("made.txt", "w") as out:
                out.write(str(python.parent.parent))
        """,
    )
    truth = pytest_says(ws)
    assert truth["tests/test_venv.py::test_runs_its_own_python"] == "passed"
    assert outcomes(ws.run()) == truth
    # pytest keeps its last 3 runs' folders: a few runs of pytest later, that one is gone
    shutil.rmtree((ws.root / "made.txt").read_text())
    assert ran(ws.run()) == []  # served from the cache
