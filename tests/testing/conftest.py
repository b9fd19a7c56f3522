"""Fixtures for `maestro test` tests: a real workspace, a real LMDB cache, a real pytest child."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_workspace import outside  # noqa: F401  (a fixture)
from project_python import project_python, venv_with
from testing_helpers import FILES, Workspace

from maestro.engine.interpreter import Interpreter, query_interpreter


@pytest.fixture(scope="session")
def interpreter() -> Interpreter:
    found = query_interpreter(project_python())
    assert found.has_pytest
    return found


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MAESTRO_STATE_DIR", str(tmp_path / "state"))
    yield tmp_path


@pytest.fixture
def ws(isolated: Path, interpreter: Interpreter) -> Workspace:
    workspace = Workspace(isolated / "ws", interpreter)
    for rel, text in FILES.items():
        workspace.write(rel, text)
    return workspace


@pytest.fixture(scope="session")
def interpreter_pytest8(tmp_path_factory: pytest.TempPathFactory) -> Interpreter:
    """A venv with pytest 8 (it calls a named file that yields no collector "not found");
    skipped when it cannot be made here."""
    import subprocess

    venv = tmp_path_factory.mktemp("pytest8") / "venv"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run(
            [str(venv / "bin/python"), "-m", "pip", "install", "-q", "pytest>=8,<9"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"cannot make a venv with pytest 8: {exc}")
    return query_interpreter(venv / "bin/python")


@pytest.fixture(scope="session")
def interpreter_xdist(tmp_path_factory: pytest.TempPathFactory) -> Interpreter:
    return venv_with(tmp_path_factory, "pytest-xdist>=3", "execnet>=2")


@pytest.fixture(scope="session")
def interpreter_timeout(tmp_path_factory: pytest.TempPathFactory) -> Interpreter:
    return venv_with(tmp_path_factory, "pytest-timeout>=2")


@pytest.fixture(scope="session")
def interpreter_cov(tmp_path_factory: pytest.TempPathFactory) -> Interpreter:
    return venv_with(tmp_path_factory, "pytest-cov>=4", "coverage>=7")
