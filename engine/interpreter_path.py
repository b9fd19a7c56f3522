"""Where the workspace's Python interpreter is (maestro/engine/interpreter.py describes it).

Order: an explicit setting, ``<root>/.venv/bin/python``, ``$VIRTUAL_ENV/bin/python``, then
``python3`` on PATH. Apart from the description (a query process, frozen dataclasses) so that an
in-process ``maestro test`` finds the path and starts its pytest process first
(maestro/engine/warm.py) with nothing imported but what the lookup needs.
"""

from __future__ import annotations

import os
from pathlib import Path

from maestro.errors import RunnerError

TYPE_CHECKING = False  # typing's own flag costs an import of typing before the spawn
if TYPE_CHECKING:
    from collections.abc import Mapping

    from maestro.engine.interpreter import Source


def find_interpreter_path(
    root: Path, *, configured: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> tuple[Path, Source]:
    """The interpreter path and where it came from; RunnerError when nothing is found."""
    env = os.environ if environ is None else environ
    if configured:
        candidate = Path(configured).expanduser()
        if not candidate.is_absolute() and len(candidate.parts) == 1:
            import shutil

            found = shutil.which(str(candidate), path=env.get("PATH"))
            if found:
                return Path(found), "setting"
        path = candidate if candidate.is_absolute() else root / candidate
        if not _is_executable(path):
            raise RunnerError(
                f"the configured interpreter {configured} does not exist or is not executable",
                hint="fix the interpreter setting, or remove it to use .venv, $VIRTUAL_ENV or PATH",
            )
        return path, "setting"
    local = root / ".venv" / "bin" / "python"
    if _is_executable(local):
        return local.absolute(), ".venv"
    virtual_env = env.get("VIRTUAL_ENV")
    if virtual_env:
        active = Path(virtual_env) / "bin" / "python"
        if _is_executable(active):
            return active, "VIRTUAL_ENV"
        import logging

        logging.getLogger("maestro.engine.interpreter").warning(
            "VIRTUAL_ENV=%s has no bin/python; falling back to PATH", virtual_env
        )
    import shutil

    found = shutil.which("python3", path=env.get("PATH"))
    if found:
        return Path(found), "PATH"
    raise RunnerError(
        f"no Python interpreter found for {root}",
        hint="create one with `python3 -m venv .venv` in the workspace, or configure its path",
    )


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
