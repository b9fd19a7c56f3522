"""Questions asked of a linked graph: which targets a change impacts and why, why a target
depends on a file, a target's closure, node kinds, edge counts, and the critical path of the
declared targets.

`impacted` and `why` run on the dict adjacency of `Links`; networkx, whose import alone costs
more than a warm start's whole budget, is loaded only for whole-graph algorithms."""

from __future__ import annotations

import os
import posixpath
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from maestro.config import Target
from maestro.graph.files import listed_name
from maestro.graph.global_inputs import is_root_global_input, section_digests
from maestro.graph.index import FileEntry
from maestro.graph.linker import Links, glob
from maestro.graph.records import DIST, LISTING, TARGET, Edge, Hop, TargetKind, describe
from maestro.graph.resolver import Resolver
from maestro.names import is_utf8

if TYPE_CHECKING:
    import networkx as nx


@dataclass(frozen=True, slots=True)
class Change:
    """A changed input. `old`/`new` carry contents when known (for section-aware global inputs)."""

    path: str  # posix, relative to the workspace root
    status: Literal["modified", "added", "deleted"] = "modified"
    old: bytes | None = None
    new: bytes | None = None
    old_known: bool = False  # True when `old` is the real previous content (None = absent)

    def impact_key(self) -> tuple[object, ...]:
        """What ``impacted`` reads of this change. Only a root-level global input is read for its
        content (which sections changed); any other file is a node, whose dependents do not
        depend on what it now says: an unsaved buffer typed into gives the same answer at every
        keystroke."""
        if is_root_global_input(self.path):
            return (self.path, self.status, self.old, self.new, self.old_known)
        return (self.path, self.status)


class _Reasons:
    """The breadth-first levels of one ``impacted`` answer; parents and reason texts are
    resolved on demand and memoized. A hub change reaches thousands of nodes over ten thousand
    edges: the walk itself runs on C-level set operations, and a node's parent (the first of
    its dependencies on the previous level) is looked up only when its chain is asked for."""

    __slots__ = ("_deps", "_levels", "_parent", "_why")

    def __init__(self, levels: list[set[str]], deps: dict[str, dict[str, Edge]]) -> None:
        self._levels = levels
        self._deps = deps
        self._parent: dict[str, str] = {}
        self._why: dict[str, str] = {}

    def parent(self, node: str, distance: int) -> str:
        known = self._parent.get(node)
        if known is not None:
            return known
        previous = self._levels[distance - 1]
        for found in self._deps[node]:
            if found in previous:
                break
        self._parent[node] = found
        return found

    def chain(self, node: str, distance: int) -> tuple[Hop, ...]:
        hops = []
        while distance > 0:
            nxt = self.parent(node, distance)
            hops.append(Hop(node, nxt, self._deps[node][nxt]))
            node, distance = nxt, distance - 1
        return tuple(hops)

    def origin(self, node: str, distance: int) -> str:
        while distance > 0:
            node, distance = self.parent(node, distance), distance - 1
        return node

    def why(self, node: str, distance: int) -> str:
        """The chain in words; chains share their tails, so each node's text is built once
        (iteratively: walk down to the first node already worded, then word the way back up)."""
        memo = self._why
        text = memo.get(node)
        if text is not None:
            return text
        if distance == 0:
            memo[node] = ""
            return ""
        path: list[tuple[str, str]] = []  # (node, its hop's words), from `node` downwards
        deps, parent = self._deps, self.parent
        while distance > 0:
            nxt = parent(node, distance)
            path.append((node, describe(deps[node][nxt], nxt)))
            node, distance = nxt, distance - 1
            text = memo.get(node)
            if text is not None:
                break
        else:
            memo[node] = text = ""
        for below, head in reversed(path):
            text = f"{head} -> {text}" if text else head
            memo[below] = text
        return text


@dataclass(frozen=True, slots=True)
class Impact:
    """An impacted target. Its reason chain is built on first access: a change to a hub module
    impacts hundreds of targets, and most callers look at few of their chains."""

    target: str
    kind: TargetKind
    changed: str  # the changed input the chain ends at
    distance: int  # hops from the target to `changed`
    _reasons: _Reasons = field(repr=False, compare=False)

    @property
    def chain(self) -> tuple[Hop, ...]:
        """From the target down to `changed`; empty if the target itself changed."""
        return self._reasons.chain(self.target, self.distance)

    @property
    def why(self) -> str:
        """The chain in one line ("imports x (line 3) -> ..."); empty if the target changed."""
        return self._reasons.why(self.target, self.distance)


def changed_nodes(
    changes: Iterable[Change],
    *,
    root: Path,
    links: Links,
    sections: Mapping[str, str],
    targets: Mapping[str, Target],
    all_files: set[str],
    py: Mapping[str, FileEntry],
    resolver: Resolver,
    listed: Mapping[str, Mapping[str, str]] | None = None,
    listings: Mapping[str, frozenset[str]] | None = None,
) -> dict[str, str]:
    """Graph nodes that changed -> the changed input (file) they stand for.

    A change may reach what the graph has no edge to yet: a new or unparsable global-input
    section, a deleted file's former importers, a new file matching a declared glob. Those
    edges are added to `links` first, so the walk finds their dependents.

    `listed` and `listings` (the index's) say which names each recorded directory listing saw;
    a change whose name (or the name of one of its directories) is in a listing now and was not
    then, or the other way round, changes that listing."""
    nodes: dict[str, str] = {}
    rdeps, add = links.rdeps, links.add
    for change in changes:
        rel = change.path
        if not is_utf8(rel):
            continue  # never a node (see maestro.names): nothing depends on it
        if is_root_global_input(rel):
            new = change.new
            if new is None and change.status != "deleted":
                try:
                    new = (root / rel).read_bytes()
                except OSError:
                    new = None
            after = section_digests(rel, new)
            if change.old_known:
                before = section_digests(rel, change.old)
                differ = {k for k in after.keys() | before.keys() if after.get(k) != before.get(k)}
            else:
                differ = set(after) | {k for k in sections if k.startswith(rel + "#")}
                differ = differ or {f"{rel}#*"}  # gone, and we do not know what it was
            for key in differ:
                nodes[key] = rel
                if key.endswith("#*") or key not in rdeps:
                    # an unparsable or new section: every test reads it
                    for test in links.tests:
                        add(test, key, Edge("global", 0, key))
            if rel in rdeps or rel in links.deps:
                nodes[rel] = rel
            for name in targets:
                section = f"{rel}#targets.{name}"
                if section in rdeps and (not change.old_known or change.old != new):
                    nodes[section] = rel
            continue
        nodes[rel] = rel
        for listing in _listings_changed(
            change, root, rdeps, all_files, listed or {}, listings or {}
        ):
            nodes[listing] = rel
        if change.status == "deleted" or (rel not in all_files and rel.endswith(".py")):
            for importer, name in resolver.former_importers(rel, py):
                add(importer, rel, Edge("import", 0, name))
        for name, spec in targets.items():  # new files matching a declared glob
            if (TARGET + name) in rdeps.get(rel, set()):
                continue
            for pattern in [*spec.srcs, *spec.inputs]:
                if glob(pattern).match_file(rel):
                    add(TARGET + name, rel, Edge("src", 0, pattern))
    return nodes


def _listings_changed(
    change: Change,
    root: Path,
    rdeps: Mapping[str, set[str]],
    all_files: set[str],
    listed: Mapping[str, Mapping[str, str]],
    listings: Mapping[str, frozenset[str]],
) -> Iterator[str]:
    """The recorded listings (``dir:<path>``) a change adds a name to or removes one from.

    A change that says it added or deleted its file (git's status against a base, a path gone
    from the disk) changes its directory's listing. One that says "modified" (any existing
    path given by name, an editor's buffer) is judged against the names the listers saw when
    they were recorded, not against the graph, which knows a new file as soon as the daemon's
    watcher does: a name they did not see was added since. The directories above it are
    judged the same way (a new directory is a name in its parent's listing). A listing
    recorded without its names falls back to whether the graph knows the file."""
    rel = change.path
    child = rel
    parent = posixpath.dirname(rel)
    while True:
        directory = parent or "."
        listing = LISTING + directory
        listers = rdeps.get(listing)
        name = posixpath.basename(child)
        if listers and listed_name(name):
            if child == rel and change.status != "modified":
                yield listing  # a name came or went
            elif _seen_otherwise(
                root / child, name, listers, directory, listed, listings,
                unknown=child == rel and rel not in all_files,
            ):  # fmt: skip
                yield listing
        if not parent:
            return
        child, parent = parent, posixpath.dirname(parent)


def _seen_otherwise(
    path: Path,
    name: str,
    listers: set[str],
    directory: str,
    listed: Mapping[str, Mapping[str, str]],
    listings: Mapping[str, frozenset[str]],
    *,
    unknown: bool,
) -> bool:
    """Did a lister of `directory` see `name` there when it was not, or the other way round?
    `unknown` answers for a lister recorded without the names."""
    present: bool | None = None
    fallback = False
    for lister in listers:
        digest = listed.get(lister, {}).get(directory)
        names = listings.get(digest) if digest is not None else None
        if names is None:
            fallback = unknown
            continue
        if present is None:
            present = os.path.lexists(path)
        if (name in names) != present:
            return True
    return fallback


def impacted(links: Links, declared: Iterable[str], changed: Mapping[str, str]) -> list[Impact]:
    """Targets (test files and `declared` target nodes) the `changed` nodes reach, each with its
    shortest reason chain, nearest first."""
    rdeps = links.rdeps
    tests = links.tests
    declared = set(declared)
    # breadth-first over reverse edges, one level at a time, in set operations
    level = set(changed)
    seen = set(level)
    levels: list[set[str]] = []
    while level:
        levels.append(level)
        following: set[str] = set()
        for node in level:
            users = rdeps.get(node)
            if users:
                following.update(users)
        following -= seen
        seen |= following
        level = following
    reasons = _Reasons(levels, links.deps)
    origins = set(changed.values())
    single = next(iter(origins)) if len(origins) == 1 else None
    impacts: list[Impact] = []
    for distance, nodes in enumerate(levels):
        for node in sorted((nodes & tests) | (nodes & declared)):
            origin = single or changed[reasons.origin(node, distance)]
            kind: TargetKind = "test" if node in tests else "declared"
            impacts.append(Impact(node, kind, origin, distance, reasons))
    return impacts


def why(deps: dict[str, dict[str, Edge]], target: str, goals: set[str]) -> tuple[Hop, ...] | None:
    """Shortest chain of forward edges from `target` to any of `goals`."""
    parent: dict[str, str | None] = {target: None}
    queue = deque([target])
    while queue:
        node = queue.popleft()
        if node in goals:
            chain = []
            cur = node
            while parent[cur] is not None:
                prev = parent[cur]
                assert prev is not None
                chain.append(Hop(prev, cur, deps[prev][cur]))
                cur = prev
            return tuple(reversed(chain))
        for dep in deps.get(node, ()):
            if dep not in parent:
                parent[dep] = node
                queue.append(dep)
    return None


def closure(deps: dict[str, dict[str, Edge]], target: str, skip: Collection[str] = ()) -> set[str]:
    """Everything `target` depends on, transitively (files, sections, distributions), through
    edges of any kind but those in `skip`."""
    seen: set[str] = set()
    stack = [target]
    while stack:
        for dep, edge in deps.get(stack.pop(), {}).items():
            if dep not in seen and edge.kind not in skip:
                seen.add(dep)
                stack.append(dep)
    return seen


def edge_counts(deps: dict[str, dict[str, Edge]]) -> dict[str, int]:
    """Edges per kind, sorted by kind."""
    kinds: dict[str, int] = {}
    for out in deps.values():
        for edge in out.values():
            kinds[edge.kind] = kinds.get(edge.kind, 0) + 1
    return dict(sorted(kinds.items()))


def node_kind(tests: set[str], node: str) -> str:
    if node in tests:
        return "test"
    if node.startswith(TARGET):
        return "declared"
    if node.startswith(DIST):
        return "distribution"
    if "#" in node:
        return "global"
    return "file"


def to_networkx(links: Links, nodes: Iterable[str]) -> nx.DiGraph[str]:
    import networkx as nx

    graph: nx.DiGraph[str] = nx.DiGraph()
    for node in nodes:
        graph.add_node(node, kind=node_kind(links.tests, node))
    for source, out in links.deps.items():
        for target, edge in out.items():
            graph.add_edge(source, target, kind=edge.kind, line=edge.line, detail=edge.detail)
    return graph


def critical_path(
    targets: Mapping[str, Target], durations: dict[str, float] | None = None
) -> list[str]:
    """Longest chain of declared targets by duration (1 per target when unknown)."""
    import networkx as nx

    if not targets:
        return []
    cost = durations or {}
    start = "\0start"
    dag: nx.DiGraph[str] = nx.DiGraph()
    for name, spec in targets.items():
        # an edge's weight is the cost of the target it leads to; a virtual start node
        # makes the first target's own cost count too
        dag.add_edge(start, name, weight=cost.get(name, 1.0))
        for dep in spec.deps:
            dag.add_edge(dep, name, weight=cost.get(name, 1.0))
    path: list[str] = nx.dag_longest_path(dag, weight="weight")
    return [node for node in path if node != start]
