"""A library Maestro imports that does not import, because the venv's copy of it is the project
being edited and it is broken (found on pathspec 1.1.1, which Maestro uses for .gitignore: a
syntax error there crashed `maestro test` with a traceback, and the daemon answered every
request with an internal error). Maestro says what and where, with a way out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from maestro.errors import broken_dependency

MAESTRO = str(Path(sys.executable).parent / "maestro")


def test_a_broken_library_maestro_imports_is_the_users_error(tmp_path: Path) -> None:
    lib, ws = tmp_path / "lib", tmp_path / "ws"
    (lib / "pathspec").mkdir(parents=True)
    (lib / "pathspec" / "__init__.py").write_text("def broken(:\n    pass\n")
    (ws / "tests").mkdir(parents=True)
    (ws / "tests" / "test_a.py").write_text("def test_a():\n    assert True\n")
    (ws / ".gitignore").write_text("*.log\n")  # the graph reads it through pathspec
    subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
    path = os.pathsep.join(filter(None, [str(lib), os.environ.get("PYTHONPATH", "")]))
    env = {**os.environ, "PYTHONPATH": path, "MAESTRO_DAEMON": "off"}
    done = subprocess.run(
        [MAESTRO, "test"], cwd=ws, env=env, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(
        f"error: {lib / 'pathspec' / '__init__.py'}:1: a library Maestro uses does not import:"
        " SyntaxError"
    ), done.stderr
    assert "install Maestro in its own environment" in done.stderr


def test_maestros_own_import_errors_stay_bugs() -> None:
    try:
        from maestro.graph import no_such_module  # type: ignore[attr-defined]  # noqa: F401
    except ImportError as exc:
        assert broken_dependency(exc) is None
    else:  # pragma: no cover
        raise AssertionError("imported a module that does not exist")
