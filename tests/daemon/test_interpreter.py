"""Finding the workspace interpreter: setting, .venv, $VIRTUAL_ENV, PATH; pytest checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from maestro.engine.interpreter import (
    find_interpreter_path,
    query_interpreter,
    resolve_interpreter,
)
from maestro.engine.runner import run_pytest_sync
from maestro.errors import RunnerError


def _fake_python(directory: Path, name: str = "python") -> Path:
    """A symlink to the running interpreter, the way a venv's bin/python is one."""
    directory.mkdir(parents=True, exist_ok=True)
    link = directory / name
    link.symlink_to(sys.executable)
    return link


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "ws"
    root.mkdir()
    return {
        "root": root,
        "local": _fake_python(root / ".venv" / "bin"),
        "active": _fake_python(tmp_path / "active-venv" / "bin"),
        "path": _fake_python(tmp_path / "on-path", "python3"),
    }


def test_dot_venv_beats_virtual_env_and_path(layout: dict[str, Path]) -> None:
    env = {"VIRTUAL_ENV": str(layout["active"].parent.parent), "PATH": str(layout["path"].parent)}
    assert find_interpreter_path(layout["root"], environ=env) == (layout["local"], ".venv")


def test_virtual_env_beats_path(layout: dict[str, Path]) -> None:
    layout["local"].unlink()
    env = {"VIRTUAL_ENV": str(layout["active"].parent.parent), "PATH": str(layout["path"].parent)}
    assert find_interpreter_path(layout["root"], environ=env) == (layout["active"], "VIRTUAL_ENV")


def test_path_is_the_last_resort(layout: dict[str, Path], tmp_path: Path) -> None:
    layout["local"].unlink()
    env = {"VIRTUAL_ENV": str(tmp_path / "gone"), "PATH": str(layout["path"].parent)}
    assert find_interpreter_path(layout["root"], environ=env) == (layout["path"], "PATH")


def test_setting_beats_everything(layout: dict[str, Path]) -> None:
    env = {"PATH": str(layout["path"].parent)}
    configured = layout["active"]
    found = find_interpreter_path(layout["root"], configured=configured, environ=env)
    assert found == (configured, "setting")
    # A relative setting is relative to the workspace; a bare name is looked up on PATH.
    relative = find_interpreter_path(layout["root"], configured=".venv/bin/python", environ=env)
    assert relative == (layout["root"] / ".venv/bin/python", "setting")
    assert find_interpreter_path(layout["root"], configured="python3", environ=env) == (
        layout["path"],
        "setting",
    )


def test_missing_interpreter_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RunnerError) as err:
        find_interpreter_path(tmp_path, configured=tmp_path / "nope" / "python", environ={})
    assert err.value.hint is not None
    with pytest.raises(RunnerError) as none_found:
        find_interpreter_path(tmp_path, environ={"PATH": str(tmp_path / "empty")})
    assert "no Python interpreter found" in none_found.value.message
    assert none_found.value.hint is not None and "venv" in none_found.value.hint


def test_query_reports_version_and_pytest() -> None:
    found = query_interpreter(Path(sys.executable), source="PATH")
    assert found.version == tuple(sys.version_info[:3])
    assert found.implementation == sys.implementation.name
    assert found.has_pytest and found.pytest_version == pytest.__version__
    assert found.is_venv == (sys.prefix != sys.base_prefix)
    assert found.source == "PATH"
    assert query_interpreter(Path(sys.executable), source="PATH") is found  # queried once


def test_interpreter_without_pytest_gives_install_hint(tmp_path: Path) -> None:
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    found = query_interpreter(python)
    assert found.is_venv and not found.has_pytest
    with pytest.raises(RunnerError) as err:
        resolve_interpreter(tmp_path, configured=python)
    assert err.value.hint == f"install pytest into {python}: {python} -m pip install pytest"
    with pytest.raises(RunnerError):
        run_pytest_sync(tmp_path, found, [])


def test_broken_interpreter_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho broken >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(RunnerError) as err:
        query_interpreter(fake)
    assert "failed to start: broken" in err.value.message
