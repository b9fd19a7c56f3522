"""pytest's temporary directories are the tests' scratch, never their inputs, whoever the user
is. Real pytest children."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_fidelity_trials import outcomes, pytest_says
from testing_helpers import Workspace, ran


def test_a_run_without_user_in_the_environment_still_caches_tmp_path_reads(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # anyio 4.16.0 in a container (no USER, no LOGNAME): pytest's tmp_path is under
    # /tmp/pytest-of-root (getpass asks the password database), Maestro took it for
    # /tmp/pytest-of-unknown; a file a test made there by a rename and then read was an input
    # 'changed while the tests ran', and no result of the run was cached, run after run.
    for name in ("USER", "LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    ws.write(
        "tests/test_atomic.py",
        """
        import os


        def test_atomic_write(tmp_path):
            part = tmp_path / "out.part"  # a module a test writes, as a venv it makes
            part.write_text("done")
            os.replace(part, tmp_path / "out.py")  # no open(): not known as written by the run
            assert (tmp_path / "out.py").read_text() == "done"
        """,
    )
    truth = pytest_says(ws)
    assert truth["tests/test_atomic.py::test_atomic_write"] == "passed"
    assert outcomes(ws.run()) == truth
    assert ran(ws.run()) == []  # all served from the cache


def test_a_script_a_test_renders_into_a_temporary_file_and_runs_is_no_input(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # cookiecutter 2.7.1's hooks render a script into tempfile.NamedTemporaryFile(delete=False)
    # and run it: the script was keyed as a program the test ran, its new name each run was
    # "changed while the tests ran", and test_hooks.py was never cached
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the scripts stay there after the run
    ws.write(
        "tests/test_hook.py",
        """
        import os
        import subprocess
        import tempfile


        def test_runs_a_rendered_script():
            with tempfile.NamedTemporaryFile(delete=False, mode="wb", suffix=".sh") as temp:
                temp.write(b"#!/bin/sh\\nexit 0\\n")
            os.chmod(temp.name, 0o755)
            assert subprocess.run([temp.name]).returncode == 0
        """,
    )
    truth = pytest_says(ws)
    assert truth["tests/test_hook.py::test_runs_a_rendered_script"] == "passed"
    assert outcomes(ws.run()) == truth
    assert ran(ws.run()) == []  # served from the cache
    assert len(list(tmp_path.glob("tmp*.sh"))) == 2  # each run's own script, kept
