"""Fixtures for function-level precision tests: a workspace, a real cache, a real pytest child."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_workspace import outside  # noqa: F401  (a fixture)
from precision_helpers import FILES, Workspace
from project_python import project_python

from maestro.engine.interpreter import Interpreter, query_interpreter


@pytest.fixture(scope="session")
def interpreter() -> Interpreter:
    found = query_interpreter(project_python())
    assert found.has_pytest
    return found


@pytest.fixture(scope="session")
def interpreter312(tmp_path_factory: pytest.TempPathFactory) -> Interpreter:
    """A Python 3.12 venv with pytest (sys.monitoring path); skipped when it cannot be made."""
    candidates = [Path.home() / ".pyenv/versions/3.12.1/bin/python3.12"]
    candidates += sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))
    base = next((c for c in candidates if c.exists()), None)
    if base is None:
        pytest.skip("no python3.12 on this machine")
    venv = tmp_path_factory.mktemp("py312") / "venv"
    try:
        subprocess.run([str(base), "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run(
            [str(venv / "bin/python"), "-m", "pip", "install", "-q", "pytest"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"cannot make a python3.12 venv with pytest: {exc}")
    return query_interpreter(venv / "bin/python")


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MAESTRO_STATE_DIR", str(tmp_path / "state"))
    # Node-level selection needs a record of the run before the change: trace the cold run too
    # (by default a cold run before 3.12 is untraced; test_cold_run_* checks that default).
    monkeypatch.setenv("MAESTRO_TRACE", "always")
    yield tmp_path


@pytest.fixture
def ws(isolated: Path, interpreter: Interpreter) -> Workspace:
    workspace = Workspace(isolated / "ws", interpreter)
    for rel, text in FILES.items():
        workspace.write(rel, text)
    return workspace
