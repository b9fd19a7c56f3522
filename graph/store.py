"""What the graph keeps in its index besides each file's scan: a snapshot of the resolved edges,
so that a warm process restores them instead of re-linking every import.

The snapshot is valid while nothing resolution reads has changed; `links_key` covers all of it
(source roots, settings, pytest configuration, the file list, global-input sections, recorded
dynamic inputs, and every Python file's stat)."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Mapping

from maestro.config import LoadedSettings
from maestro.graph.index import FileEntry, Index
from maestro.graph.linker import Links
from maestro.graph.pytest_config import PytestConfig
from maestro.graph.records import Edge

LINKS = "links"  # the snapshot's key in Index.extra


def links_key(
    roots: list[str],
    loaded: LoadedSettings,
    pytest: PytestConfig,
    files: Iterable[str],
    sections: Mapping[str, str],
    dynamic: Mapping[str, list[str]],
    py: Mapping[str, FileEntry],
    texts: Iterable[str] = (),
) -> str:
    """`texts`: a stamp of each text test file (its edges come from its content)."""
    digest = hashlib.sha256(_key_bytes(f"links-3 {roots!r} {loaded!r}"))
    digest.update(_key_bytes(repr(pytest)))
    digest.update(_key_bytes("\0".join(files)))
    digest.update(_key_bytes(repr(sorted(sections.items()))))
    digest.update(_key_bytes(repr(sorted(dynamic.items()))))
    for rel, e in py.items():
        digest.update(_key_bytes(f"{rel}\0{e.size}\0{e.mtime_ns}\0{e.inode}"))
    for stamp in texts:
        digest.update(_key_bytes(stamp))
    return digest.hexdigest()


def store_links(index: Index, key: str, links: Links) -> None:
    # column-wise (targets, then edges) and with the reverse map: restoring is then a few
    # C-level constructor calls per node instead of Python work per edge
    index.extra[LINKS] = {
        "key": key,
        "deps": {
            src: [list(out), [list(e) for e in out.values()]] for src, out in links.deps.items()
        },
        "rdeps": {dst: sorted(srcs) for dst, srcs in links.rdeps.items()},
        "tests": sorted(links.tests),
        "unresolved": sorted(links.unresolved),
    }
    index.dirty = True


def restore_links(index: Index, key: str) -> Links | None:
    """The stored edges if they were stored under `key`; None if absent, stale or damaged."""
    stored = index.extra.get(LINKS)
    if not isinstance(stored, dict) or stored.get("key") != key:
        return None
    try:
        edge, new = itertools.repeat(Edge), tuple.__new__
        deps: dict[str, dict[str, Edge]] = {}
        for src, (dsts, edges) in stored["deps"].items():
            if len(dsts) != len(edges) or not set(map(len, edges)) <= {3}:
                raise ValueError(f"malformed edges of {src}")
            deps[src] = dict(zip(dsts, map(new, edge, edges), strict=True))
        return Links(
            deps,
            {dst: set(srcs) for dst, srcs in stored["rdeps"].items()},
            set(stored["tests"]),
            # only which files have unresolved imports is kept: the imports are in their scans
            {rel: [] for rel in stored["unresolved"]},
        )
    except (KeyError, TypeError, ValueError):
        return None


def _key_bytes(text: str) -> bytes:
    """Text for a digest: exact bytes even for a name that is not UTF-8."""
    return text.encode("utf-8", "surrogateescape")
