"""A daemon whose Maestro installation was removed since it started (the project's venv
recreated, Maestro reinstalled elsewhere) cannot run tests: the plugin it hands pytest is gone.
It turns the next client away and stops, and that command runs in process, as pytest would."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import (
    MAESTRO,
    DaemonEnv,
    junit_outcomes,
    plain_pytest_outcomes,
    started,
)
from project_python import project_python

import maestro


def test_a_daemon_whose_installation_was_removed_stops_and_the_run_is_made_here(
    daemon_env: DaemonEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tinydb 4.9.0: `rm -rf .venv` + a new venv with Maestro while the daemon ran; every
    # `maestro test` then said "error: the pytest plugin maestro_pytest_plugin.py is missing
    # from the maestro installation / hint: reinstall maestro-conductor" (exit 3), and
    # reinstalling did not help: the daemon kept the removed one's paths.
    ws = daemon_env.root
    (ws / "maestro.toml").write_text(f"interpreter = {str(project_python())!r}\n")
    (ws / "tests").mkdir()
    (ws / "tests/test_a.py").write_text(
        "def test_ok():\n    assert 1\n\n\ndef test_bad():\n    assert 0\n"
    )
    site = daemon_env.base / "site"
    shutil.copytree(Path(maestro.__file__).parent, site / "maestro")  # links followed
    monkeypatch.setenv("PYTHONPATH", str(site))
    pid = started(daemon_env)  # runs the copy
    monkeypatch.delenv("PYTHONPATH")
    junit = tmp_path / "junit.xml"

    def maestro_test() -> str:
        done = subprocess.run(
            [MAESTRO, "test", "--junit-xml", str(junit)],
            cwd=ws, capture_output=True, text=True, timeout=180,
            env={**os.environ, "MAESTRO_DAEMON": "auto"},
        )  # fmt: skip
        said = done.stdout + done.stderr
        assert done.returncode == 1, said
        return said

    maestro_test()  # through the daemon: what a run needs is loaded there now
    shutil.rmtree(site)
    (ws / "tests/test_a.py").write_text(
        "def test_ok():\n    assert 0\n\n\ndef test_bad():\n    assert 1\n"
    )
    said = maestro_test()
    assert "missing from the maestro installation" not in said
    assert "No module named" not in said
    assert junit_outcomes(junit) == plain_pytest_outcomes(daemon_env, tmp_path)
    assert daemon_env.wait_stopped(), f"daemon {pid} still running"
    log = daemon_env.paths.log.read_text()
    assert f"installation this daemon (pid {pid}) runs from was removed" in log, log[-2000:]
