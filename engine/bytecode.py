"""Bytecode a run must not trust: `__pycache__` entries written in their source's last second.

CPython (and pytest's assertion rewriter) reuse a module's cached bytecode while the source's
mtime, in whole seconds, and size match what the `.pyc` recorded. A same-size edit within the
second the bytecode was written is therefore invisible: the tests run the old code. Plain pytest
shares the defect, but a cache must not: the old code's outcome would be stored under the new
content's key and served whenever that content comes back, on every machine sharing the cache.

Before a run, every entry written no later than its source's mtime second is removed (the run
compiles it again; the next run sees an unambiguous entry). Entries written in a later second
are exact: any change since moved the mtime to another second or changed the size.
Not covered: sources whose mtime is set back by hand (`touch -d`, `rsync -a`), which fool the
interpreter the same way whatever their age, and `PYTHONPYCACHEPREFIX` trees.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

log = logging.getLogger(__name__)

_CACHE_DIR = "__pycache__"


def drop_ambiguous_bytecode(root: str, sources: Mapping[str, int]) -> int:
    """Remove the `__pycache__` entries of ``sources`` (path relative to ``root`` -> the mtime in
    ns the run's keys were computed from) written in or before that mtime's second; returns how
    many were removed."""
    stems: dict[str, dict[str, int]] = {}
    for rel, mtime_ns in sources.items():
        directory, name = os.path.split(rel)
        stem, ext = os.path.splitext(name)
        if ext == ".py":
            stems.setdefault(directory, {})[stem] = mtime_ns // 1_000_000_000
    removed = 0
    for directory, wanted in stems.items():
        folder = os.path.join(root, directory)
        try:
            entries = list(os.scandir(os.path.join(folder, _CACHE_DIR)))
        except OSError:
            continue  # no bytecode here yet
        for entry in entries:
            # "m.cpython-311.pyc", "m.cpython-311.opt-1.pyc", "test_m.cpython-311-pytest-8.4.2.pyc"
            edited = wanted.get(entry.name.partition(".")[0])
            if edited is None or not entry.name.endswith(".pyc"):
                continue
            try:
                written = entry.stat().st_mtime_ns // 1_000_000_000
            except OSError:
                continue
            if written <= edited:
                try:
                    os.unlink(entry.path)
                    removed += 1
                except OSError as exc:
                    log.warning("cannot remove ambiguous bytecode %s: %s", entry.path, exc)
    return removed
