"""Installed distributions of the workspace's environment, read from its site-packages on disk.

Third-party imports resolve to a distribution (name, version), not to files. Reading metadata from
the site-packages directories (instead of importing anything in the workspace's interpreter) keeps
the graph free of processes; the result is cached by the directories' mtimes.
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path


def site_packages(root: Path) -> list[Path]:
    """Site-packages of the workspace: `.venv`/`venv` in the root, else $VIRTUAL_ENV, else ours."""
    for candidate in (root / ".venv", root / "venv", os.environ.get("VIRTUAL_ENV")):
        if candidate and (Path(candidate) / "pyvenv.cfg").is_file():
            found = glob.glob(str(Path(candidate) / "lib" / "python3*" / "site-packages"))
            if found:
                return [Path(p) for p in sorted(found)]
    return [Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]


def environment_key(dirs: list[Path]) -> str:
    parts = []
    for d in dirs:
        try:
            parts.append(f"{d}:{d.stat().st_mtime_ns}")
        except OSError:
            parts.append(f"{d}:missing")
    return "|".join(parts)


def distribution_map(dirs: list[Path]) -> dict[str, list[str]]:
    """Top-level import name -> [distribution name, version] for everything installed in `dirs`."""
    from importlib import metadata  # ~0.1 s to import; only needed when the cache is stale

    mapping: dict[str, list[str]] = {}
    for dist in metadata.distributions(path=[str(d) for d in dirs]):
        name = dist.metadata["Name"] or ""
        if not name:
            continue
        tops: set[str] = set()
        top_level = dist.read_text("top_level.txt")
        if top_level:
            tops.update(t.strip() for t in top_level.splitlines() if t.strip())
        else:
            for file in dist.files or ():
                first = file.parts[0] if file.parts else ""
                if first.endswith((".dist-info", ".egg-info", ".pth", ".data")) or first in (
                    "..",
                    "__pycache__",
                ):
                    continue
                tops.add(first.removesuffix(".py").split(".")[0])
        for top in tops:
            mapping.setdefault(top, [name, dist.version])
    return mapping


STDLIB = frozenset(sys.stdlib_module_names)
