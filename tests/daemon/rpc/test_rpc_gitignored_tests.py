"""Through a warm daemon, a test file .gitignore hides (pytest collects it all the same) is run,
and an edit to it, or a new one, reaches the next run: the watcher must not drop a new one's
event as it drops the rest of what .gitignore hides (once the watcher is trusted, only its
events tell the graph of a new file)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import DaemonEnv

MAESTRO = str(Path(sys.executable).with_name("maestro"))

FILES = {
    "pyproject.toml": '[project]\nname = "w"\nversion = "0"\n\n'
    f'[tool.maestro]\ninterpreter = "{sys.executable}"\n\n'
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


def _outcomes(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        out[f"{case.get('classname')}.{case.get('name')}"] = next(
            (k for k in ("failure", "error", "skipped") if k in kinds), "passed"
        )
    return out


def _maestro(ws: DaemonEnv, tmp: Path) -> dict[str, str]:
    junit = tmp / "maestro.xml"
    proc = subprocess.run(
        [MAESTRO, "test", "--root", str(ws.root), "--junit-xml", str(junit)],
        cwd=ws.root, capture_output=True, text=True, timeout=180,
        env={**os.environ, "MAESTRO_DAEMON": "start"},
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return _outcomes(junit)


def _pytest(ws: DaemonEnv, tmp: Path) -> dict[str, str]:
    junit = tmp / "pytest.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"],
        cwd=ws.root, capture_output=True, timeout=180,
    )  # fmt: skip
    return _outcomes(junit)


def test_an_edit_to_a_hidden_test_file_reaches_the_warm_daemons_next_run(
    ws: DaemonEnv, tmp_path: Path
) -> None:
    first = _maestro(ws, tmp_path)
    assert ws.holder(), "the CLI should have started the daemon"
    assert first == _pytest(ws, tmp_path)
    assert first["tests.test_local.test_local"] == "passed"
    time.sleep(1.5)  # the watcher is up and trusted: no stat pass before the next answer
    (ws.root / "tests/test_local.py").write_text("def test_local():\n    assert False\n")
    (ws.root / "tests/run.log").write_text("noise\n")
    time.sleep(0.5)
    truth = _pytest(ws, tmp_path)
    assert truth["tests.test_local.test_local"] == "failure"
    assert _maestro(ws, tmp_path) == truth
    # a new hidden file pytest collects
    time.sleep(1.0)
    (ws.root / "tests/test_local_two.py").write_text("def test_two():\n    assert True\n")
    time.sleep(0.5)
    truth = _pytest(ws, tmp_path)
    assert truth["tests.test_local_two.test_two"] == "passed"
    assert _maestro(ws, tmp_path) == truth
