"""The build graph of a workspace: files, tests, declared targets and why each depends on what.

Edges point from a dependent to what it depends on (`tests/test_api.py -> src/pkg/api.py`). The
hot paths (build, one-file update, impacted, why) run on plain dict adjacency; networkx, whose
import alone costs ~0.2 s, is loaded only for whole-graph algorithms (critical path, export).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from maestro.errors import ConfigError, UnknownTargetError, WorkspaceError
from maestro.graph import environment
from maestro.graph.files import is_excluded, walk
from maestro.graph.global_inputs import is_root_global_input, section_digests
from maestro.graph.index import FileEntry, Index
from maestro.graph.pytest_config import PytestConfig, load_pytest_config
from maestro.graph.scanner import RawImport, check_syntax, encoding_problem, scan_imports
from maestro.names import first_undecodable, is_utf8, printable, undecodable_message
from maestro.settings import LoadedSettings, Target, load_settings

if TYPE_CHECKING:
    import networkx as nx
    import pathspec

log = logging.getLogger(__name__)

EdgeKind = Literal[
    "import", "init", "conftest", "plugin", "dynamic", "global", "src", "dep", "recorded", "dist"
]  # fmt: skip
TargetKind = Literal["test", "declared"]
DIST = "dist:"
TARGET = "//"


class Edge(NamedTuple):
    """Why a node depends on another. A tuple, not a dataclass: a warm start restores ~20k of
    them from the index, and a frozen dataclass costs 3x as much to construct."""

    kind: EdgeKind
    line: int = 0
    detail: str = ""  # the module as written, the glob that matched, the section...


_VERBS = {"import": "imports", "dynamic": "imports dynamically", "plugin": "loads pytest plugin"}


class Hop(NamedTuple):
    """One step of a reason chain: `source` depends on `target` because of `edge`. (A tuple: a
    hub answer builds thousands.)"""

    source: str
    target: str
    edge: Edge

    def describe(self) -> str:
        return describe(self.edge)


def describe(e: Edge) -> str:
    """An edge in words ("imports x (line 3)"), as a reason chain says it."""
    at = f" (line {e.line})" if e.line else ""
    match e.kind:
        case "import" | "dynamic" | "plugin":
            return f"{_VERBS[e.kind]} {e.detail}{at}"
        case "init":
            return f"runs package init of {e.detail}{at}"
        case "conftest":
            return "uses conftest"
        case "global":
            return "reads global input"
        case "src":
            return f"has source matching {e.detail!r}"
        case "dep":
            return "depends on target"
        case "recorded":
            return "read it while running (recorded)"
        case "dist":
            return f"imports installed distribution {e.detail}{at}"
    return e.kind


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
            path.append((node, describe(deps[node][nxt])))
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


@dataclass(slots=True)
class Diagnostic:
    path: str
    line: int
    message: str
    severity: Literal["error", "warning"] = "warning"

    def __post_init__(self) -> None:
        # A diagnostic may name a file whose name is not UTF-8: shown printably, it can go
        # anywhere (JSON, the wire, a log file).
        self.path = printable(self.path)
        self.message = printable(self.message)


@dataclass(slots=True)
class BuildStats:
    files: int = 0
    python_files: int = 0
    tests: int = 0
    declared_targets: int = 0
    edges: dict[str, int] = field(default_factory=dict)
    distributions: int = 0
    unresolved_imports: int = 0
    reused_from_index: int = 0
    scanned: int = 0
    build_seconds: float = 0.0


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """A build allocates ~100k containers and frees almost none: the cycle collector would
    rescan them (and everything imported) many times over for nothing, 30-100 ms of a warm
    start. Process-wide, for the length of the build only."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            if gc.get_freeze_count() == 0:
                # What the build made lives on: move it to the oldest generation unscanned
                # (freeze + unfreeze splices lists), or the first collections after the build
                # would walk all of it (~15 ms on the first query). Skipped when someone froze
                # objects for good (unfreeze would thaw theirs).
                gc.freeze()
                gc.unfreeze()
            gc.enable()


class BuildGraph:
    """Dependency graph of one workspace; see module docstring."""

    def __init__(self, root: Path, *, index_path: Path | None = None) -> None:
        if not root.is_dir():
            raise WorkspaceError(
                f"workspace root {root} is not a directory", hint="pass an existing directory"
            )
        self.root = root.resolve()
        self.index = Index.load(index_path)
        self.loaded: LoadedSettings = load_settings(self.root)
        self.pytest: PytestConfig = load_pytest_config(self.root)
        self.all_files: set[str] = set()
        self.dirs: set[str] = set()
        self.py: dict[str, FileEntry] = {}
        self.deps: dict[str, dict[str, Edge]] = {}
        self.rdeps: dict[str, set[str]] = {}
        self.tests: set[str] = set()
        self.targets: dict[str, Target] = {}
        self.sections: dict[str, str] = {}  # "pyproject.toml#tool.pytest" -> digest
        self.unresolved: dict[str, list[RawImport]] = {}
        self.walk_diagnostics: list[Diagnostic] = []
        self.stats = BuildStats()
        self._roots: list[str] = []
        self._basedir_cache: dict[str, str] = {}
        self._top_cache: dict[tuple[str, str], str | None] = {}
        self._dists: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ building

    @classmethod
    def build(cls, root: Path, *, index_path: Path | None = None) -> BuildGraph:
        with _collector_paused():  # the index load allocates as much as the build
            graph = cls(root, index_path=index_path)
            graph._build_all()
        return graph

    def _build(self) -> None:
        with _collector_paused():
            self._build_all()

    def _build_all(self) -> None:
        started = time.perf_counter()
        config = self.loaded.config
        walked = walk(self.root, config.exclude)
        self.walk_diagnostics = [Diagnostic(p, 0, m) for p, m in walked.diagnostics]
        self.walk_diagnostics += [Diagnostic(p, 0, m) for p, m in self.pytest.diagnostics]
        self.all_files = set(walked.files)
        self.dirs = {rel.rsplit("/", 1)[0] for rel in walked.files if "/" in rel}
        for d in list(self.dirs):
            while "/" in d:
                d = d.rsplit("/", 1)[0]
                self.dirs.add(d)
        self._roots = self._source_roots()
        py_files = [rel for rel in walked.files if rel.endswith(".py")]
        unseen: list[tuple[str, os.stat_result]] = []
        entries: dict[str, FileEntry] = {}
        for rel in py_files:
            entry = self._entry(rel, defer=unseen)
            if entry is not None:
                entries[rel] = entry
        entries.update(self._scan_unseen(unseen))
        self.py = {rel: entries[rel] for rel in py_files if rel in entries}
        self._read_sections()
        self.targets = dict(config.targets)
        self._check_target_cycles()
        # the resolved-edges snapshot only pays off when there is an index to keep it in
        key = self._links_key(walked.files) if self.index.path is not None else None
        if key is None or not self._restore_links(key):
            for rel, entry in self.py.items():
                self._link_file(rel, entry)
            self._link_tests()
            self._link_globals()
            self._link_declared()
            self._link_recorded()
            if key is not None:
                self._store_links(key)
        self.index.files = dict(self.py)
        self.index.save()
        self.stats.build_seconds = time.perf_counter() - started
        log.info("graph built in %.3fs: %s", self.stats.build_seconds, self.stats)

    def _source_roots(self) -> list[str]:
        config = self.loaded.config
        roots = list(config.roots) if config.roots is not None else ["."]
        if config.roots is None and (self.root / "src").is_dir():
            roots.insert(0, "src")
        roots += [p for p in self.pytest.pythonpath if p not in roots]
        return ["" if r in (".", "") else r.strip("/") + "/" for r in roots]

    def distributions(self) -> dict[str, list[str]]:
        """Top-level module -> [distribution, version] of the workspace's environment (cached)."""
        if self._dists:
            return self._dists
        dirs = environment.site_packages(self.root)
        key = environment.environment_key(dirs)
        cached = self.index.extra.get("dists")
        if isinstance(cached, dict) and cached.get("key") == key:
            self._dists = cached["map"]
        else:
            self._dists = environment.distribution_map(dirs)
            self.index.extra["dists"] = {"key": key, "map": self._dists}
            self.index.dirty = True
        return self._dists

    def distribution_of(self, node: str) -> tuple[str, str] | None:
        """(distribution, version) behind a `dist:<module>` node, None if not installed."""
        found = self.distributions().get(node.removeprefix(DIST))
        return (found[0], found[1]) if found else None

    def _entry(
        self, rel: str, defer: list[tuple[str, os.stat_result]] | None = None
    ) -> FileEntry | None:
        """The file's entry: from the index when its stat proves it unchanged, else scanned now,
        or (files the index never saw, when `defer` is given) queued for a batch scan."""
        path = os.path.join(self.root, rel)
        try:
            st = os.stat(path)
        except OSError as exc:
            self.walk_diagnostics.append(Diagnostic(rel, 0, f"cannot stat: {exc.strerror}"))
            return None
        fresh = self.index.fresh(rel, st)
        if fresh is not None:
            self.stats.reused_from_index += 1
            return fresh
        max_size = self.loaded.config.max_file_size
        if st.st_size > max_size:
            entry = FileEntry(st.st_size, st.st_mtime_ns, st.st_ino, "", [], [], True)
            entry.problems.append(
                (0, f"file is {st.st_size:,} bytes, over max-file-size ({max_size:,}); its imports "
                    "are not read — raise [tool.maestro] max-file-size to include it")
            )  # fmt: skip
            self.index.dirty = True
            return entry
        if defer is not None and rel not in self.index.files:
            defer.append((rel, st))
            return None
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            self.walk_diagnostics.append(Diagnostic(rel, 0, f"cannot read: {exc.strerror}"))
            return None
        return self._scan(rel, data, st)

    def _scan_unseen(self, unseen: list[tuple[str, os.stat_result]]) -> dict[str, FileEntry]:
        """Scan files the index never saw; a large batch (a cold build) uses both cores.

        Forking is only safe while this process has no other thread (the CLI, a benchmark); the
        daemon builds once in a thread and then lives on its index, so it scans sequentially.
        """
        if not unseen:
            return {}
        self.index.dirty = True
        self.stats.scanned += len(unseen)
        rels = [rel for rel, _ in unseen]
        workers = min(os.cpu_count() or 1, 4)
        results: list[tuple[str, list[Any] | None, list[tuple[int, str]]]]
        if len(unseen) >= PARALLEL_SCAN_MIN and workers > 1 and threading.active_count() == 1:
            import concurrent.futures
            import multiprocessing

            chunks = [rels[i::workers] for i in range(workers)]
            context = multiprocessing.get_context("fork")
            with concurrent.futures.ProcessPoolExecutor(workers - 1, mp_context=context) as pool:
                futures = [pool.submit(scan_files, str(self.root), c) for c in chunks[1:]]
                results = scan_files(str(self.root), chunks[0])  # this process takes a share
                for future in futures:
                    results += future.result()
        else:
            results = scan_files(str(self.root), rels)
        stats = dict(unseen)
        out: dict[str, FileEntry] = {}
        for rel, packed, problems in results:
            if packed is None:
                self.walk_diagnostics.append(Diagnostic(rel, 0, problems[0][1]))
                continue
            st = stats[rel]
            out[rel] = FileEntry(
                st.st_size, st.st_mtime_ns, st.st_ino, "", None, problems, packed=packed
            )
        return out

    def _scan(self, rel: str, data: bytes, st: os.stat_result | None) -> FileEntry:
        size, mtime, ino = (st.st_size, st.st_mtime_ns, st.st_ino) if st else (len(data), 0, 0)
        old = self.index.files.get(rel)
        self.index.dirty = True
        # Hashing costs ~15% of a cold build here, so a file never seen before is hashed lazily
        # (file_digest); a known file whose stat changed is hashed to reuse its scan if unchanged.
        digest = hashlib.sha256(data).hexdigest() if old is not None and old.digest else ""
        if digest and old is not None and old.digest == digest:
            return FileEntry(
                size, mtime, ino, digest, old.imports, old.problems, old.syntax_checked
            )
        self.stats.scanned += 1
        return FileEntry(size, mtime, ino, digest, scan_imports(data), file_problems(data), False)

    # ------------------------------------------------------------------ resolution

    def _add_edge(self, source: str, target: str, edge: Edge) -> None:
        out = self.deps.setdefault(source, {})
        if target not in out and source != target:
            out[target] = edge
            self.rdeps.setdefault(target, set()).add(source)

    def _drop_edges(self, source: str) -> None:
        for target in self.deps.pop(source, {}):
            users = self.rdeps.get(target)
            if users is not None:
                users.discard(source)

    def _basedir(self, rel: str) -> str:
        """The first ancestor directory without __init__.py: what pytest's prepend mode and a
        script run put on sys.path."""
        directory = rel.rsplit("/", 1)[0] if "/" in rel else ""
        cached = self._basedir_cache.get(directory)
        if cached is not None:
            return cached
        d = directory
        while d and f"{d}/__init__.py" in self.all_files:
            d = d.rsplit("/", 1)[0] if "/" in d else ""
        result = d + "/" if d else ""
        self._basedir_cache[directory] = result
        return result

    def _find_root(self, importer: str, top: str) -> str | None:
        base = self._basedir(importer)
        key = (base, top)
        if key in self._top_cache:
            return self._top_cache[key]
        found = None
        for root in (base, *self._roots):
            if (
                f"{root}{top}.py" in self.all_files
                or f"{root}{top}/__init__.py" in self.all_files
                or f"{root}{top}" in self.dirs
            ):
                found = root
                break
        self._top_cache[key] = found
        return found

    def _module_path(self, base: str, parts: list[str]) -> Iterator[tuple[str, bool]]:
        """Files executed by importing `parts` below `base`: (file, is_the_module_itself)."""
        for i in range(1, len(parts) + 1):
            stem = base + "/".join(parts[:i])
            last = i == len(parts)
            if f"{stem}/__init__.py" in self.all_files:
                yield f"{stem}/__init__.py", last
            elif f"{stem}.py" in self.all_files:
                yield f"{stem}.py", True
                return  # the rest are attributes of a module
            elif stem not in self.dirs:
                return  # not in the workspace (an attribute, or missing)

    def _link_file(self, rel: str, entry: FileEntry) -> None:
        unresolved: list[RawImport] = []
        for imp in entry.imports:
            if not self._resolve(rel, imp):
                unresolved.append(imp)
        if unresolved:
            self.unresolved[rel] = unresolved
        else:
            self.unresolved.pop(rel, None)

    def _resolve(self, rel: str, imp: RawImport) -> bool:
        parts = imp.module.split(".") if imp.module else []
        if imp.level:
            directory = rel.rsplit("/", 1)[0] if "/" in rel else ""
            for _ in range(imp.level - 1):
                directory = directory.rsplit("/", 1)[0] if "/" in directory else ""
            base = directory + "/" if directory else ""
            dotted = "." * imp.level + imp.module
        else:
            if not parts:
                return True
            top = parts[0]
            found = self._find_root(rel, top)
            if found is None:
                if top in environment.STDLIB or top == "__future__":
                    return True
                # Third-party or missing: the distribution is looked up lazily (distributions()).
                self._add_edge(rel, DIST + top, Edge("dist", imp.line, imp.module))
                return True
            base = found
            dotted = imp.module
        kind: EdgeKind = "import" if imp.kind == "from" else imp.kind
        linked = False
        module_file = None
        for file, is_module in self._module_path(base, parts):
            edge_kind: EdgeKind = kind if is_module else "init"
            name = dotted if is_module else file.removesuffix("/__init__.py").replace("/", ".")
            self._add_edge(rel, file, Edge(edge_kind, imp.line, name))
            linked = True
            if is_module:
                module_file = file
        if imp.kind == "from":
            # `from pkg import sub` imports the submodule pkg/sub when it exists.
            package = base + "/".join(parts)
            if module_file is None or module_file.endswith("/__init__.py") or not parts:
                package = package.rstrip("/")
                prefix = package + "/" if package else ""
                for name in imp.names:
                    if name == "*":
                        continue
                    for candidate in (f"{prefix}{name}.py", f"{prefix}{name}/__init__.py"):
                        if candidate in self.all_files:
                            detail = f"{dotted}.{name}" if dotted.strip(".") else f"{dotted}{name}"
                            self._add_edge(rel, candidate, Edge(kind, imp.line, detail))
                            linked = True
                            break
            if imp.level and not parts and not linked:
                linked = True  # `from . import x` where x is an attribute of the package
        return linked or (imp.level > 0 and module_file is not None)

    def _link_tests(self) -> None:
        is_test = self.pytest.matcher()
        self.tests = {rel for rel in self.py if is_test(rel)}
        for rel in self.tests:
            self._link_test(rel)

    def _link_test(self, rel: str) -> None:
        # every conftest.py from the test's directory up to the rootdir
        directory = rel.rsplit("/", 1)[0] if "/" in rel else ""
        while True:
            conftest = f"{directory}/conftest.py" if directory else "conftest.py"
            if conftest in self.py:
                self._add_edge(rel, conftest, Edge("conftest"))
            if not directory:
                break
            directory = directory.rsplit("/", 1)[0] if "/" in directory else ""
        # importing a test module inside packages runs their __init__ files
        base = self._basedir(rel)
        directory = rel.rsplit("/", 1)[0] if "/" in rel else ""
        while directory and directory + "/" != base and directory.startswith(base.rstrip("/")):
            init = f"{directory}/__init__.py"
            if init in self.py:
                self._add_edge(rel, init, Edge("init", 0, directory.replace("/", ".")))
            directory = directory.rsplit("/", 1)[0] if "/" in directory else ""

    def _global_files(self) -> list[str]:
        return sorted(rel for rel in self.all_files if is_root_global_input(rel))

    def _read_sections(self) -> None:
        self.sections = {}
        for rel in self._global_files():
            try:
                content = (self.root / rel).read_bytes()
            except OSError:
                continue
            self.sections.update(section_digests(rel, content))

    def _link_globals(self) -> None:
        for test in self.tests:
            for section in self.sections:
                self._add_edge(test, section, Edge("global", 0, section))

    def _link_declared(self) -> None:
        for name, spec in self.targets.items():
            node = TARGET + name
            self.deps.setdefault(node, {})
            for pattern in [*spec.srcs, *spec.inputs]:
                for rel in _glob(pattern).match_files(self.all_files):
                    self._add_edge(node, rel, Edge("src", 0, pattern))
            for dep in spec.deps:
                self._add_edge(node, TARGET + dep, Edge("dep", 0, dep))
            config_file = self.loaded.source or "maestro.toml"
            self._add_edge(node, f"{config_file}#targets.{name}", Edge("global", 0, name))

    def _check_target_cycles(self) -> None:
        state: dict[str, int] = {}

        def visit(name: str, path: list[str]) -> None:
            state[name] = 1
            for dep in self.targets[name].deps:
                if state.get(dep) == 1:
                    cycle = " -> ".join([*path[path.index(dep) :], dep])
                    raise ConfigError(
                        f"declared targets form a cycle: {cycle}",
                        where=self.loaded.source,
                        hint="remove one of the deps so the targets form a DAG",
                    )
                if dep not in state:
                    visit(dep, [*path, dep])
            state[name] = 2

        for name in self.targets:
            if name not in state:
                visit(name, [name])

    # A warm process restores the resolved edges instead of re-linking every import: they are
    # valid while nothing resolution reads has changed, which the key covers.
    def _links_key(self, files: list[str]) -> str:
        digest = hashlib.sha256(_key_bytes(f"links-2 {self._roots!r} {self.loaded!r}"))
        digest.update(_key_bytes(repr(self.pytest)))
        digest.update(_key_bytes("\0".join(files)))
        digest.update(_key_bytes(repr(sorted(self.sections.items()))))
        digest.update(_key_bytes(repr(sorted(self.index.dynamic.items()))))
        for rel, e in self.py.items():
            digest.update(_key_bytes(f"{rel}\0{e.size}\0{e.mtime_ns}\0{e.inode}"))
        return digest.hexdigest()

    def _store_links(self, key: str) -> None:
        # column-wise (targets, then edges) and with the reverse map: restoring is then a few
        # C-level constructor calls per node instead of Python work per edge
        self.index.extra["links"] = {
            "key": key,
            "deps": {
                src: [list(out), [list(e) for e in out.values()]] for src, out in self.deps.items()
            },
            "rdeps": {dst: sorted(srcs) for dst, srcs in self.rdeps.items()},
            "tests": sorted(self.tests),
            "unresolved": sorted(self.unresolved),
        }
        self.index.dirty = True

    def _restore_links(self, key: str) -> bool:
        links = self.index.extra.get("links")
        if not isinstance(links, dict) or links.get("key") != key:
            return False
        try:
            edge, new = itertools.repeat(Edge), tuple.__new__
            deps: dict[str, dict[str, Edge]] = {}
            for src, (dsts, edges) in links["deps"].items():
                if len(dsts) != len(edges) or not set(map(len, edges)) <= {3}:
                    raise ValueError(f"malformed edges of {src}")
                deps[src] = dict(zip(dsts, map(new, edge, edges), strict=True))
            self.deps = deps
            self.rdeps = {dst: set(srcs) for dst, srcs in links["rdeps"].items()}
            self.tests = set(links["tests"])
            self.unresolved = {rel: [] for rel in links["unresolved"]}
        except (KeyError, TypeError, ValueError):
            self.deps, self.rdeps, self.tests, self.unresolved = {}, {}, set(), {}
            return False
        return True

    def _link_recorded(self) -> None:
        for test, inputs in self.index.dynamic.items():
            if test in self.tests or test in self.py:  # a module: what its import read
                for rel in inputs:
                    self._add_edge(test, rel, Edge("recorded"))

    # ------------------------------------------------------------------ updates

    def record_dynamic(self, test: str, inputs: Iterable[str]) -> None:
        """Join files and modules a test file touched while running (from the runner); for a
        module, the files its import read (every importer depends on them)."""
        # a name that is not UTF-8 is never a node (it would reach cache keys and the wire)
        recorded = sorted({rel for rel in inputs if is_utf8(rel)} - {test})
        self.index.dynamic[test] = recorded
        self.index.dirty = True
        # the latest run replaces what earlier runs recorded: a file no longer read is no dep
        out = self.deps.get(test, {})
        for rel in [r for r, e in out.items() if e.kind == "recorded" and r not in recorded]:
            del out[rel]
            self.rdeps.get(rel, set()).discard(test)
        for rel in recorded:
            self._add_edge(test, rel, Edge("recorded"))

    def update(self, paths: Iterable[str]) -> set[str]:
        """Re-read changed files; returns the nodes whose edges changed."""
        touched: set[str] = set()
        structural = False
        for rel in paths:
            undecodable = first_undecodable(rel)
            if undecodable is not None:
                # never a node, so nothing to relink (a file appended to would relink the graph
                # at every write otherwise): only its diagnostic comes or goes
                self._note_undecodable(undecodable)
                continue
            path = self.root / rel
            exists = path.is_file()
            if rel.endswith(".py"):
                if exists and rel in self.py:
                    try:
                        data = path.read_bytes()
                        st = path.stat()
                    except OSError:
                        continue
                    entry = self._scan(rel, data, st)
                    same_imports = entry.imports == self.py[rel].imports
                    self.py[rel] = entry
                    if same_imports:
                        continue  # the content changed, the edges did not
                    self._drop_edges(rel)
                    self._link_file(rel, entry)
                    if rel in self.tests:
                        self._link_test(rel)
                        for section in self.sections:
                            self._add_edge(rel, section, Edge("global", 0, section))
                    touched.add(rel)
                elif exists != (rel in self.py):
                    structural = True
            elif is_root_global_input(rel) or exists != (rel in self.all_files):
                structural = True
        if structural:
            self._relink_all()
            touched.add("*")
        if touched:
            self.index.files = dict(self.py)
        return touched

    def _note_undecodable(self, rel: str) -> None:
        """Keep the walk's diagnostic of a name that is not UTF-8 in step with the disk."""
        shown = printable(rel)
        self.walk_diagnostics = [d for d in self.walk_diagnostics if d.path != shown]
        full = os.path.join(self.root, rel)
        if not os.path.lexists(full) or is_excluded(rel, self.loaded.config.exclude):
            return
        directory = os.path.isdir(full)
        self.walk_diagnostics.append(Diagnostic(rel, 0, undecodable_message(directory=directory)))

    def _relink_all(self) -> None:
        """Files appeared or vanished: rebuild edges (scans are reused from the index)."""
        self.index.files.update(self.py)
        self.index.saved_at_ns = 0  # never trust stat for files we just saw change
        fresh = BuildGraph(self.root)
        fresh.index = self.index
        fresh._build()
        for name in (
            "loaded", "pytest", "all_files", "dirs", "py", "deps", "rdeps", "tests", "targets",
            "sections", "unresolved", "walk_diagnostics", "_roots", "_dists",
        ):  # fmt: skip
            setattr(self, name, getattr(fresh, name))
        self._basedir_cache, self._top_cache = fresh._basedir_cache, fresh._top_cache

    def save(self) -> None:
        self.index.files = dict(self.py)
        self.index.save()

    # ------------------------------------------------------------------ queries

    def is_target(self, node: str) -> bool:
        return node in self.tests or (node.startswith(TARGET) and node[2:] in self.targets)

    def _changed_nodes(self, changes: Iterable[Change]) -> dict[str, str]:
        """Graph nodes that changed -> the changed input (file) they stand for."""
        nodes: dict[str, str] = {}
        for change in changes:
            rel = change.path
            if not is_utf8(rel):
                continue  # never a node (see maestro.names): nothing depends on it
            if is_root_global_input(rel):
                new = change.new
                if new is None and change.status != "deleted":
                    try:
                        new = (self.root / rel).read_bytes()
                    except OSError:
                        new = None
                after = section_digests(rel, new)
                if change.old_known:
                    before = section_digests(rel, change.old)
                    differ = {
                        k for k in after.keys() | before.keys() if after.get(k) != before.get(k)
                    }
                else:
                    differ = set(after) | {k for k in self.sections if k.startswith(rel + "#")}
                    differ = differ or {f"{rel}#*"}  # gone, and we do not know what it was
                for key in differ:
                    nodes[key] = rel
                    if key.endswith("#*") or key not in self.rdeps:
                        # an unparsable or new section: every test reads it
                        for test in self.tests:
                            self._add_edge(test, key, Edge("global", 0, key))
                if rel in self.rdeps or rel in self.deps:
                    nodes[rel] = rel
                for name in self.targets:
                    section = f"{rel}#targets.{name}"
                    if section in self.rdeps and (not change.old_known or change.old != new):
                        nodes[section] = rel
                continue
            nodes[rel] = rel
            if change.status == "deleted" or (rel not in self.all_files and rel.endswith(".py")):
                for importer in self._former_importers(rel):
                    self._add_edge(importer, rel, Edge("import", 0, _module_of(rel)))
            for name, spec in self.targets.items():  # new files matching a declared glob
                if (TARGET + name) in self.rdeps.get(rel, set()):
                    continue
                for pattern in [*spec.srcs, *spec.inputs]:
                    if _glob(pattern).match_file(rel):
                        self._add_edge(TARGET + name, rel, Edge("src", 0, pattern))
        return nodes

    def _former_importers(self, rel: str) -> list[str]:
        """Files whose imports would have resolved to `rel` (deleted or renamed away)."""
        module = rel.removesuffix(".py").removesuffix("/__init__")
        found = []
        for importer, entry in self.py.items():
            directory = importer.rsplit("/", 1)[0] if "/" in importer else ""
            bases = [self._basedir(importer), *self._roots]
            for imp in entry.imports:
                candidates: list[str] = []
                if imp.level:
                    d = directory
                    for _ in range(imp.level - 1):
                        d = d.rsplit("/", 1)[0] if "/" in d else ""
                    stem = "/".join(filter(None, [d, imp.module.replace(".", "/")]))
                    candidates = [stem, *(f"{stem}/{n}" if stem else n for n in imp.names)]
                else:
                    stem = imp.module.replace(".", "/")
                    candidates = [b + stem for b in bases]
                    candidates += [f"{b}{stem}/{n}" for b in bases for n in imp.names]
                # importing pkg.x runs pkg/__init__: a deleted package init has dependents too
                if any(c == module or c.startswith(module + "/") for c in candidates):
                    found.append(importer)
                    break
        return found

    def impacted(self, changes: Iterable[Change]) -> list[Impact]:
        """Targets a change can break, each with its shortest reason chain, nearest first."""
        changed = self._changed_nodes(list(changes))
        rdeps = self.rdeps
        tests = self.tests
        declared = {TARGET + name for name in self.targets}
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
        reasons = _Reasons(levels, self.deps)
        origins = set(changed.values())
        single = next(iter(origins)) if len(origins) == 1 else None
        impacts: list[Impact] = []
        for distance, nodes in enumerate(levels):
            for node in sorted((nodes & tests) | (nodes & declared)):
                origin = single or changed[reasons.origin(node, distance)]
                kind: TargetKind = "test" if node in tests else "declared"
                impacts.append(Impact(node, kind, origin, distance, reasons))
        return impacts

    def why(self, target: str, path: str) -> tuple[Hop, ...] | None:
        """Shortest chain by which `target` depends on `path` (a file or a global section)."""
        if not self.is_target(target) and target not in self.deps:
            raise UnknownTargetError(
                f"{target!r} is not a test file or declared target of this workspace",
                hint="see `maestro graph stats --targets`; declared targets start with //",
            )
        goals = {path} | {k for k in self.sections if k.startswith(path + "#")}
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
                    chain.append(Hop(prev, cur, self.deps[prev][cur]))
                    cur = prev
                return tuple(reversed(chain))
            for dep in self.deps.get(node, ()):
                if dep not in parent:
                    parent[dep] = node
                    queue.append(dep)
        return None

    def closure(self, target: str) -> set[str]:
        """Everything `target` depends on, transitively (files, sections, distributions)."""
        seen: set[str] = set()
        stack = [target]
        while stack:
            for dep in self.deps.get(stack.pop(), ()):
                if dep not in seen:
                    seen.add(dep)
                    stack.append(dep)
        return seen

    def file_digest(self, rel: str) -> str | None:
        """sha256 of a file's content (None if absent), remembered while its stat is unchanged."""
        entry = self.py.get(rel)
        if entry is not None and entry.digest:
            return entry.digest
        path = os.path.join(self.root, rel)
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                digest = hashlib.sha256(f.read()).hexdigest()
        except OSError:
            return None
        if entry is not None and (entry.size, entry.mtime_ns) == (st.st_size, st.st_mtime_ns):
            entry.digest = digest  # the content the scan saw: safe to remember
            self.index.dirty = True
        return digest

    def syntax_unchecked(self) -> int:
        """Python files whose syntax no check has covered yet (results are kept in the index)."""
        return sum(1 for e in self.py.values() if not e.syntax_checked and not e.problems)

    def diagnostics(self, *, check_syntax_now: bool = True) -> list[Diagnostic]:
        """Problems found while reading the workspace, with the syntax errors known so far.

        Compiling every file costs several times the whole scan, so syntax is checked only when
        asked (`check_syntax_now`) and the verdict is cached by content in the index."""
        out = list(self.walk_diagnostics)
        for rel, entry in sorted(self.py.items()):
            if check_syntax_now and not entry.syntax_checked and not entry.problems:
                try:
                    with open(self.root / rel, "rb") as f:
                        st = os.fstat(f.fileno())
                        data = f.read()
                except OSError:
                    continue
                digest = hashlib.sha256(data).hexdigest()
                same_stat = (entry.size, entry.mtime_ns) == (st.st_size, st.st_mtime_ns)
                if not entry.digest and same_stat:
                    # the content the scan saw: a rescan of the same bytes then keeps the verdict
                    entry.digest = digest
                if entry.digest in ("", digest):
                    problem = check_syntax(data, rel)
                    if problem is not None and problem not in entry.problems:
                        entry.problems.append(problem)
                    entry.syntax_checked = True
                    self.index.dirty = True
            for line, message in entry.problems:
                out.append(Diagnostic(rel, line, message, "error"))
        return out

    def compute_stats(self) -> BuildStats:
        stats = self.stats
        stats.files = len(self.all_files)
        stats.python_files = len(self.py)
        stats.tests = len(self.tests)
        stats.declared_targets = len(self.targets)
        kinds: dict[str, int] = {}
        for out in self.deps.values():
            for edge in out.values():
                kinds[edge.kind] = kinds.get(edge.kind, 0) + 1
        stats.edges = dict(sorted(kinds.items()))
        stats.distributions = len(
            {d for n in self.rdeps if n.startswith(DIST) and (d := self.distribution_of(n))}
        )
        stats.unresolved_imports = sum(
            1 for n in self.rdeps if n.startswith(DIST) and self.distribution_of(n) is None
        )
        return stats

    def to_networkx(self) -> nx.DiGraph[str]:
        import networkx as nx

        graph: nx.DiGraph[str] = nx.DiGraph()
        for node in self.nodes():
            graph.add_node(node, kind=self.node_kind(node))
        for source, out in self.deps.items():
            for target, edge in out.items():
                graph.add_edge(source, target, kind=edge.kind, line=edge.line, detail=edge.detail)
        return graph

    def nodes(self) -> set[str]:
        return set(self.deps) | set(self.rdeps) | set(self.py)

    def node_kind(self, node: str) -> str:
        if node in self.tests:
            return "test"
        if node.startswith(TARGET):
            return "declared"
        if node.startswith(DIST):
            return "distribution"
        if "#" in node:
            return "global"
        return "file"

    def critical_path(self, durations: dict[str, float] | None = None) -> list[str]:
        """Longest chain of declared targets by duration (1 per target when unknown)."""
        import networkx as nx

        if not self.targets:
            return []
        cost = durations or {}
        start = "\0start"
        dag: nx.DiGraph[str] = nx.DiGraph()
        for name, spec in self.targets.items():
            # an edge's weight is the cost of the target it leads to; a virtual start node
            # makes the first target's own cost count too
            dag.add_edge(start, name, weight=cost.get(name, 1.0))
            for dep in spec.deps:
                dag.add_edge(dep, name, weight=cost.get(name, 1.0))
        path: list[str] = nx.dag_longest_path(dag, weight="weight")
        return [node for node in path if node != start]


def _glob(pattern: str) -> pathspec.PathSpec[Any]:
    """A target glob, anchored at the workspace root (`docs/*.md` is not `x/docs/*.md`)."""
    import pathspec

    return pathspec.PathSpec.from_lines("gitignore", ["/" + pattern])


PARALLEL_SCAN_MIN = 400  # below this, starting a worker costs more than it saves


def scan_files(
    root: str, rels: list[str]
) -> list[tuple[str, list[Any] | None, list[tuple[int, str]]]]:
    """Read and scan files: (rel, packed imports, problems), or (rel, None, [(0, error)]).

    Module-level so a worker process can run it; results are plain lists (cheap to send).
    """
    out: list[tuple[str, list[Any] | None, list[tuple[int, str]]]] = []
    for rel in rels:
        try:
            with open(os.path.join(root, rel), "rb") as f:
                data = f.read()
        except OSError as exc:
            out.append((rel, None, [(0, f"cannot read: {exc.strerror}")]))
            continue
        packed = [[i.kind, i.module, i.level, list(i.names), i.line] for i in scan_imports(data)]
        out.append((rel, packed, file_problems(data)))
    return out


def file_problems(data: bytes) -> list[tuple[int, str]]:
    """What stops Python from importing a file at all, found without parsing it."""
    problems: list[tuple[int, str]] = []
    encoding = encoding_problem(data)
    if encoding is not None:
        problems.append(encoding)
    if b"\0" in data:
        problems.append((1, "file contains NUL bytes; Python cannot import it"))
    return problems


def _key_bytes(text: str) -> bytes:
    """Text for a digest: exact bytes even for a name that is not UTF-8."""
    return text.encode("utf-8", "surrogateescape")


def _module_of(rel: str) -> str:
    return rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
