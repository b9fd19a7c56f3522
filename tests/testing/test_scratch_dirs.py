"""pytest's temporary directories are the tests' scratch, never their inputs, whoever the user
is. Real pytest children."""

from __future__ import annotations

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
