"""`maestro test --impacted PATH` through the warm daemon when PATH was deleted.

`git diff --name-only` lists deleted files, and a user who deletes a conftest asks what it
impacted: the daemon runs with its state directory as cwd, so a deleted path must still be
read against the workspace, as the in-process CLI and the editor read it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DaemonEnv
from project_python import project_python

MAESTRO = str(Path(sys.executable).with_name("maestro"))

FILES = {
    "pyproject.toml": (
        f'[project]\nname = "ws"\n\n[tool.maestro]\ninterpreter = "{project_python()}"\n\n'
        '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
    ),
    "tests/test_top.py": "def test_top():\n    assert True\n",
    "tests/sub/test_a.py": "def test_a():\n    assert True\n",
    "tests/sub/conftest.py": (
        "import pytest\n\n\n@pytest.fixture(autouse=True)\ndef _off():\n"
        "    raise RuntimeError('off in this checkout')\n"
    ),
}


def maestro(env: DaemonEnv, *args: str, daemon: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MAESTRO, *args],
        cwd=env.root,
        env={**os.environ, "MAESTRO_DAEMON": daemon, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_impacted_of_a_deleted_conftest_runs_what_it_reached_through_the_daemon(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon_env.write_old(FILES)
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(daemon_env.base / "cache"))
    first = maestro(daemon_env, "test", daemon="start")
    daemon_env.holder()
    assert first.returncode == 1, first.stdout + first.stderr
    assert "1 passed, 1 error" in first.stdout, first.stdout + first.stderr

    (daemon_env.root / "tests/sub/conftest.py").unlink()
    again = maestro(daemon_env, "test", "--impacted", "tests/sub/conftest.py", daemon="start")
    daemon_env.holder()
    out = again.stdout + again.stderr
    # plain pytest now passes tests/sub/test_a.py: the daemon re-runs it, as pytest would
    assert "is outside the workspace" not in out, out
    assert again.returncode == 0, out
    assert "tests/sub/test_a.py ." in again.stdout, out
    assert " error" not in again.stdout, out
