"""Helpers shared by the policy tests that start real daemons."""

from __future__ import annotations

import os
from pathlib import Path


def daemon_pids(root: Path) -> list[int]:
    """The maestro daemons serving ``root`` (to stop them when a test ends)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"maestro.daemon" in argv and os.fsencode(root) in argv:
            found.append(int(entry.name))
    return found
