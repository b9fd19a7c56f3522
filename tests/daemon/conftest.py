"""Fixtures for runner tests: small workspaces written into tmp_path, run by a real pytest."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from project_python import project_python

from maestro.engine.interpreter import Interpreter, query_interpreter

WriteWorkspace = Callable[[dict[str, str]], Path]


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner records its runs in the workspace state dir: never the user's."""
    monkeypatch.setenv("MAESTRO_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(scope="session")
def interpreter() -> Interpreter:
    """The interpreter running this suite: it has pytest, like a prepared workspace venv."""
    found = query_interpreter(project_python())
    assert found.has_pytest
    return found


@pytest.fixture
def workspace(tmp_path: Path) -> WriteWorkspace:
    """Write ``{relative path: source}`` (dedented) under a fresh root and return the root."""
    root = tmp_path / "ws"

    def write(files: dict[str, str]) -> Path:
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"))
        return root

    root.mkdir()
    return write
