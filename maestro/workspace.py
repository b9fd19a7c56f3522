"""Find the workspace root a command applies to."""

from __future__ import annotations

from pathlib import Path

MARKERS = ("maestro.toml", "pyproject.toml", "setup.py", "setup.cfg", ".git")


def find_root(start: Path | None = None) -> Path:
    """The nearest ancestor of `start` (default: cwd) holding a project marker, else `start`."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if any((candidate / marker).exists() for marker in MARKERS):
            return candidate
    return here
