"""Which project and which part of it a command applies to, from where it was started.

Shared by the full CLI and the fast path (maestro/cli/fast.py), so it imports neither typer nor
pydantic: both routes must agree on the workspace and on a subfolder's scope.
"""

from __future__ import annotations

from pathlib import Path

from maestro.errors import WorkspaceError
from maestro.workspace import MARKERS, find_root


def project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding a project marker.

    Raises WorkspaceError when there is none: treating an arbitrary folder (a home directory,
    /tmp) as a project would walk, hash and cache everything under it."""
    here = (start or Path.cwd()).resolve()
    found = find_root(here)
    if not any((found / marker).exists() for marker in MARKERS):
        names = ", ".join(MARKERS[:-1]) + f" or {MARKERS[-1]}"
        raise WorkspaceError(
            f"not inside a project: no {names} here or in any folder above",
            where=str(here),
            hint="cd into your project, pass --root DIR, or create an empty maestro.toml "
            "to make this folder a project",
        )
    return found


def resolve_root(root: Path | None) -> Path:
    """--root as given, else the project around the current folder (an error outside one)."""
    if root is not None:
        if not root.is_dir():
            raise WorkspaceError(f"--root {root} is not a directory", hint="pass a directory")
        return root.resolve()
    return project_root()


def subfolder(root: Path, cwd: Path | None = None) -> str | None:
    """The current folder relative to ``root`` when it is strictly inside it, else None.

    `maestro test` started there runs that folder's tests, as `pytest` does."""
    here = (cwd or Path.cwd()).resolve()
    if here == root:
        return None
    try:
        return here.relative_to(root).as_posix()
    except ValueError:
        return None
