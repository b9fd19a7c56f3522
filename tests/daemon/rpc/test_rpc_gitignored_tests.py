"""Through a warm daemon, a test file .gitignore hides (pytest collects it all the same) is run,
and an edit to it, or a new one, reaches the next run: the watcher must not drop a new one's
event as it drops the rest of what .gitignore hides (once the watcher is trusted, only its
events tell the graph of a new file)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import DaemonEnv, maestro_test, plain_pytest_outcomes
from project_python import project_python

FILES = {
    "pyproject.toml": '[project]\nname = "w"\nversion = "0"\n\n'
    f'[tool.maestro]\ninterpreter = "{project_python()}"\n\n'
    '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n',
    ".gitignore": "tests/test_local*.py\n*.log\n",
    "tests/test_kept.py": "def test_kept():\n    assert True\n",
    "tests/test_local.py": "def test_local():\n    assert True\n",
}


@pytest.fixture
def ws(daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch) -> DaemonEnv:
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(daemon_env.base / "cache"))
    daemon_env.write_old(FILES)
    return daemon_env


def test_an_edit_to_a_hidden_test_file_reaches_the_warm_daemons_next_run(
    ws: DaemonEnv, tmp_path: Path
) -> None:
    first = maestro_test(ws, tmp_path)
    assert ws.holder(), "the CLI should have started the daemon"
    assert first == plain_pytest_outcomes(ws, tmp_path)
    assert first["tests.test_local test_local"] == "passed"
    time.sleep(1.5)  # the watcher is up and trusted: no stat pass before the next answer
    (ws.root / "tests/test_local.py").write_text("def test_local():\n    assert False\n")
    (ws.root / "tests/run.log").write_text("noise\n")
    time.sleep(0.5)
    truth = plain_pytest_outcomes(ws, tmp_path)
    assert truth["tests.test_local test_local"] == "failure"
    assert maestro_test(ws, tmp_path) == truth
    # a new hidden file pytest collects
    time.sleep(1.0)
    (ws.root / "tests/test_local_two.py").write_text("def test_two():\n    assert True\n")
    time.sleep(0.5)
    truth = plain_pytest_outcomes(ws, tmp_path)
    assert truth["tests.test_local_two test_two"] == "passed"
    assert maestro_test(ws, tmp_path) == truth
