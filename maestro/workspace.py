"""Find the workspace root a command applies to."""

from __future__ import annotations

import os
from pathlib import Path

from maestro.errors import WorkspaceError

CONFIG_FILE = "maestro.toml"
PYPROJECT = "pyproject.toml"
MARKERS = (CONFIG_FILE, PYPROJECT, "setup.py", "setup.cfg", ".git")


def find_root(start: Path | None = None) -> Path:
    """The nearest ancestor of `start` (default: cwd) holding a project marker, else `start`."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if any((candidate / marker).exists() for marker in MARKERS):
            return candidate
    return here


def unconfigured(root: Path) -> bool:
    """Whether nothing configures Maestro in ``root``: no maestro.toml, and a pyproject.toml
    (if readable) that does not even mention it. Its settings are then the defaults, with
    nothing to parse (maestro/config.py; an in-process `maestro test` starts its pytest process
    without importing the settings' model)."""
    if (root / CONFIG_FILE).is_file():
        return False
    try:
        raw = (root / PYPROJECT).read_bytes()
    except OSError:
        return True
    return b"maestro" not in raw


def normalize(root: Path, path: str) -> str:
    """A user-given path (absolute, or relative to the cwd) as a posix path relative to root."""
    candidate = Path(path)
    absolute = candidate if candidate.is_absolute() else Path.cwd() / candidate
    absolute = Path(os.path.normpath(absolute))
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        # also accept paths already relative to the root
        if not candidate.is_absolute() and (root / candidate).exists():
            return candidate.as_posix()
        raise WorkspaceError(
            f"{path} is outside the workspace {root}",
            hint="run from inside the workspace or pass --root",
        ) from None
