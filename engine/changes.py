"""Turn change sources (explicit paths, git working tree, `--since REF`, unsaved buffers) into the
graph's `Change` records, with old contents where the graph needs them (global inputs).

A path whose name is not valid UTF-8 is dropped here, with a warning: the graph has no node for it
(see maestro.names), and past this point reports, cache keys and the wire hold UTF-8 only."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from maestro import git
from maestro.git import Status
from maestro.graph.build import BuildGraph, Change
from maestro.graph.files import NOISE_DIRS, own_prefixes
from maestro.graph.global_inputs import is_global_input
from maestro.names import is_utf8, printable
from maestro.workspace import normalize as normalize  # the CLI's fast path needs it lean

log = logging.getLogger(__name__)


def usable(rel: str) -> bool:
    """Whether a changed path can be a Change; if not, say so (once per caller's path)."""
    if is_utf8(rel):
        return True
    log.warning(
        "ignoring the change to %s: its name is not valid UTF-8, so Maestro leaves it out of the "
        "graph (rename it to a UTF-8 name)",
        printable(rel),
    )
    return False


def from_paths(root: Path, paths: Iterable[str]) -> list[Change]:
    """Explicit paths: compared with git HEAD where git knows the file (for global inputs)."""
    in_git: bool | None = None  # asked lazily: a git process costs more than the whole query
    changes: list[Change] = []
    for raw in paths:
        rel = normalize(root, raw)
        if not usable(rel):
            continue
        exists = (root / rel).exists()
        status: Status = "modified" if exists else "deleted"
        if is_global_input(rel) and in_git is None:
            in_git = git.is_repository(root)
        if is_global_input(rel) and in_git:
            old = git.old_content(root, git.GitChange(rel, "modified", "HEAD"))
            changes.append(Change(rel, status, old=old, old_known=old is not None))
        else:
            changes.append(Change(rel, status))
    return changes


def _is_noise(rel: str) -> bool:
    """Byte-code, tool caches and virtualenvs never change a test's outcome."""
    parts = rel.split("/")
    return any(p in NOISE_DIRS or p.endswith(".egg-info") for p in parts[:-1]) or rel.endswith(
        (".pyc", ".pyo")
    )


def from_git(root: Path, since: str | None = None) -> list[Change]:
    found = git.changes_since(root, since) if since else git.working_tree_changes(root)
    changes: list[Change] = []
    own = own_prefixes(root)
    for item in found:
        if _is_noise(item.path) or item.path.startswith(own) or not usable(item.path):
            continue
        if is_global_input(item.path):
            old = git.old_content(root, item)
            changes.append(Change(item.path, item.status, old=old, old_known=True))
        else:
            changes.append(Change(item.path, item.status))
    return changes


def from_hidden(graph: BuildGraph) -> list[Change]:
    """The files .gitignore hides that pytest uses (a local test file, a generated module it
    collects), changed: git knows no version of them to compare with, so what the last runs
    keyed stands in (a hidden test file no run keyed yet is new). With `from_git`, what
    changed in the working tree."""
    if not graph.hidden:
        return []
    from maestro.engine.testing import LastKeys

    last = LastKeys.load(graph.root)
    keyed: dict[str, set[str]] = {}
    for target in last.data:
        entry = last.get(target)
        for name, value in (entry[1] if entry is not None else {}).items():
            if name in graph.hidden:
                keyed.setdefault(name, set()).add(value)
    changes = []
    for rel in sorted(graph.hidden):
        seen = keyed.get(rel)
        if seen is None:
            if rel in graph.tests:
                changes.append(Change(rel, "added"))
        elif seen != {graph.file_digest(rel) or "absent"}:
            changes.append(Change(rel, "modified"))
    return changes


def from_buffers(root: Path, buffers: Mapping[str, str]) -> list[Change]:
    """Unsaved editor buffers: the disk content is the 'old' side."""
    changes: list[Change] = []
    for raw, text in buffers.items():
        rel = normalize(root, raw)
        if not usable(rel):
            continue
        try:
            old: bytes | None = (root / rel).read_bytes()
        except OSError:
            old = None
        new = text.encode("utf-8")
        if old != new:
            changes.append(Change(rel, "modified", old=old, new=new, old_known=True))
    return changes
