"""A run whose answer is larger than a client's request may be still reaches `maestro test` through
the daemon: the answer holds every test's result (here, the many data files each test read)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DaemonEnv
from project_python import project_python

from maestro.daemon.lifecycle import start_daemon
from maestro.daemon.transport.framing import MAX_FRAME

MAESTRO = str(Path(sys.executable).with_name("maestro"))
DATA_FILES = 200
TESTS = 600


@pytest.fixture
def ws(daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch) -> DaemonEnv:
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(daemon_env.base / "cache"))
    monkeypatch.delenv("MAESTRO_DAEMON", raising=False)
    monkeypatch.delenv("CI", raising=False)
    files = {
        "pyproject.toml": (
            f'[project]\nname = "ws"\n\n[tool.maestro]\ninterpreter = "{project_python()}"\n\n'
            '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
        ),
        "tests/test_reads.py": (
            "import pathlib\n\nimport pytest\n\n"
            "DATA = sorted((pathlib.Path(__file__).parent.parent / 'data').iterdir())\n\n\n"
            f"@pytest.mark.parametrize('i', range({TESTS}))\n"
            "def test_reads(i):\n    for path in DATA:\n        assert path.read_text()\n"
        ),
    }
    for i in range(DATA_FILES):
        files[f"data/{'d' * 150}_{i}.txt"] = f"{i}\n"
    daemon_env.write_old(files)
    return daemon_env


def maestro_test(ws: DaemonEnv) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MAESTRO, "test"],
        cwd=ws.root,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_a_run_whose_answer_passes_a_request_frame_is_answered_by_the_daemon(
    ws: DaemonEnv,
) -> None:
    reply = start_daemon(ws.root)
    assert reply is not None
    ws.track(reply.pid)
    first = maestro_test(ws)
    assert first.returncode == 0, first.stdout + first.stderr
    # A data file every test reads changes: the file re-runs, recorded test by test, and each
    # test's result names the files it read: the run's answer is well over MAX_FRAME.
    assert TESTS * DATA_FILES * 150 > MAX_FRAME
    (ws.root / f"data/{'d' * 150}_0.txt").write_text("changed\n")
    done = maestro_test(ws)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    # Before: the daemon ran the tests, could not send the answer, and the CLI planned again in
    # its own process, then said the file it had just run was served from the cache.
    assert "did not answer" not in out, out
    assert f"{TESTS} passed" in done.stdout
    assert "ran 1 file, 0 cached" in done.stdout, out
