"""The build graph of a workspace: files, tests, declared targets and why each depends on what.

`BuildGraph` is the facade every caller uses. It walks the workspace and reads each Python file
into an index entry (here: stat, reuse from the index, scan, parallel cold scan), and keeps the
state the other modules work on:

- records: edges, hops, diagnostics, stats (the vocabulary);
- resolver: module name -> workspace file;
- linker: the edges (`Links`) from imports, conftests, globals, declared targets, recordings;
- store: the resolved-edges snapshot kept in the index, for a warm start;
- query: impacted/why/closure, node kinds, critical path.

Edges point from a dependent to what it depends on (`tests/test_api.py -> src/pkg/api.py`). The
hot paths (build, one-file update, impacted, why) run on plain dict adjacency; networkx, whose
import alone costs ~0.2 s, is loaded only for whole-graph algorithms (critical path, export).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maestro.config import LoadedSettings, Target, load_settings
from maestro.errors import UnknownTargetError, WorkspaceError
from maestro.graph import collectors, environment, query, store
from maestro.graph.files import is_excluded, listing_digest, listing_names, names_digest, walk
from maestro.graph.global_inputs import is_root_global_input, section_digests
from maestro.graph.index import FileEntry, Index
from maestro.graph.linker import (
    Links,
    check_target_cycles,
    link_declared,
    link_file,
    link_globals,
    link_imports,
    link_recorded,
    link_test,
    link_tests,
    replace_recorded,
)
from maestro.graph.pytest_config import PytestConfig, doctest_source, load_pytest_config
from maestro.graph.query import Change, Impact
from maestro.graph.records import (
    DIST,
    LISTING,
    TARGET,
    BuildStats,
    Diagnostic,
    Edge,
    EdgeKind,
    Hop,
    TargetKind,
    describe,
)
from maestro.graph.resolver import Resolver, source_roots
from maestro.graph.scanner import (
    RawImport,
    check_syntax,
    encoding_problem,
    scan_imports,
    scan_packed,
)
from maestro.names import first_undecodable, is_utf8, printable, undecodable_message

if TYPE_CHECKING:
    import networkx as nx

__all__ = [
    "DIST",
    "LISTING",
    "TARGET",
    "BuildGraph",
    "BuildStats",
    "Change",
    "Diagnostic",
    "Edge",
    "EdgeKind",
    "Hop",
    "Impact",
    "TargetKind",
    "describe",
    "file_problems",
    "scan_files",
]

log = logging.getLogger(__name__)


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
        self.hidden: frozenset[str] = frozenset()  # files .gitignore hides that pytest uses
        self.dirs: set[str] = set()
        self.py: dict[str, FileEntry] = {}
        self.links = Links()
        self.targets: dict[str, Target] = {}
        self.sections: dict[str, str] = {}  # "pyproject.toml#tool.pytest" -> digest
        self.walk_diagnostics: list[Diagnostic] = []
        self.stats = BuildStats()
        self.resolver = Resolver(self.all_files, self.dirs, [])
        self._dists: dict[str, list[str]] = {}
        self._installed = environment.InstalledCode()
        # what to ask the conftests that collect files themselves; None: no such conftest
        self.collect_request: collectors.CollectRequest | None = None
        # the values the variables those conftests read had when they answered
        self.collected_variables: tuple[tuple[str, str | None], ...] = ()

    # The linked state lives in `links`; these keep the names callers have always read.
    @property
    def deps(self) -> dict[str, dict[str, Edge]]:
        return self.links.deps

    @property
    def rdeps(self) -> dict[str, set[str]]:
        return self.links.rdeps

    @property
    def tests(self) -> set[str]:
        return self.links.tests

    @property
    def unresolved(self) -> dict[str, list[RawImport]]:
        return self.links.unresolved

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
        walked = walk(self.root, config.exclude, self.pytest)
        self.walk_diagnostics = [Diagnostic(p, 0, m) for p, m in walked.diagnostics]
        self.walk_diagnostics += [Diagnostic(p, 0, m) for p, m in self.pytest.diagnostics]
        self.all_files = set(walked.files)
        self.hidden = frozenset(walked.hidden)
        self.dirs = {rel.rsplit("/", 1)[0] for rel in walked.files if "/" in rel}
        for d in list(self.dirs):
            while "/" in d:
                d = d.rsplit("/", 1)[0]
                self.dirs.add(d)
        roots = source_roots(self.root, config, self.pytest)
        self.resolver = Resolver(self.all_files, self.dirs, roots)
        py_files = [rel for rel in walked.files if rel.endswith(".py")]
        unseen: list[tuple[str, os.stat_result]] = []
        entries: dict[str, FileEntry] = {}
        for rel in py_files:
            entry = self._entry(rel, defer=unseen)
            if entry is not None:
                entries[rel] = entry
        entries.update(self._scan_unseen(unseen))
        self._learn_collected(entries)
        aside = self._distributions_aside() if may_fork(len(unseen)) else None
        try:
            self._read_sections_and_link(py_files, entries, walked.files, roots)
        finally:
            if aside is not None:
                aside()
        self.index.files = dict(self.py)
        self.index.save()
        self.stats.build_seconds = time.perf_counter() - started
        log.info("graph built in %.3fs: %s", self.stats.build_seconds, self.stats)

    def _read_sections_and_link(
        self,
        py_files: list[str],
        entries: dict[str, FileEntry],
        files: list[str],
        roots: list[str],
    ) -> None:
        config = self.loaded.config
        self.py = {rel: entries[rel] for rel in py_files if rel in entries}
        self._read_sections()
        self.targets = dict(config.targets)
        check_target_cycles(self.targets, self.loaded.source)
        # the resolved-edges snapshot only pays off when there is an index to keep it in
        key = None
        if self.index.path is not None:
            key = store.links_key(
                roots, self.loaded, self.pytest, files, self.sections,
                self.index.dynamic, self.py, self._text_stamps(files),
            )  # fmt: skip
        restored = store.restore_links(self.index, key) if key is not None else None
        if restored is not None:
            self.links = restored
        else:
            self._link_all()
            if key is not None:
                store.store_links(self.index, key, self.links)

    def _collect_request(self, py: Iterable[str]) -> collectors.CollectRequest | None:
        return collectors.collect_request(
            self.root, self.pytest, self.all_files, py, self.collecting_plugins()
        )

    def _learn_collected(self, py: Iterable[str]) -> None:
        """The files conftests collect themselves, and those their walk skips, as last asked
        (kept beside the index)."""
        request = self._collect_request(py)
        self.collect_request = request
        if request is None or self.index.path is None:
            return
        answer = collectors.load_memo(self.index.path.parent, request.key)
        if answer is not None:
            self.pytest = dataclasses.replace(
                self.pytest, collected_files=answer.files, collected_files_key=request.key,
                ignored_files=answer.ignored,
            )  # fmt: skip
            self.collected_variables = answer.variables

    def ask_collected(
        self, environ: Mapping[str, str] | None = None
    ) -> collectors.CollectRequest | None:
        """The question to ask the conftests that collect files themselves or leave files out
        of the walk, as the files are now (an edit of such a conftest relinks nothing, yet may
        change its answer) and in ``environ`` (default: this process's; the variables those
        conftests read); None when the answer is known, or there is no such conftest."""
        request = self._collect_request(self.py)
        self.collect_request = request
        if request is None:
            if self.pytest.collected_files or self.pytest.ignored_files:  # the hook is gone
                self.learn_collected("", collectors.CollectAnswer(()))
            return None
        environ = os.environ if environ is None else environ
        if self.pytest.collected_files_key == request.key and collectors.same_variables(
            self.collected_variables, environ
        ):
            return None
        return request

    def learn_known_collected(self, environ: Mapping[str, str] | None = None) -> bool:
        """Learn the conftests' answer if one is kept beside the index (no process is started);
        True when it changed the tests."""
        request = self.ask_collected(environ)
        if request is None or self.index.path is None:
            return False
        answer = collectors.load_memo(self.index.path.parent, request.key, environ)
        if answer is None:
            return False
        self.learn_collected(request.key, answer)
        return True

    def learn_collected(self, key: str, answer: collectors.CollectAnswer) -> None:
        """The conftests' answer (under ``key``): the files they collect are tests, those
        their walk skips are not; relink."""
        self.pytest = dataclasses.replace(
            self.pytest, collected_files=tuple(sorted(answer.files)), collected_files_key=key,
            ignored_files=tuple(sorted(answer.ignored)),
        )  # fmt: skip
        self.collected_variables = answer.variables
        self._link_all()

    def _link_all(self) -> None:
        links = self.links = Links()
        resolver, py = self.resolver, self.py
        for rel, entry in py.items():
            link_file(links, resolver, rel, entry)
        link_tests(
            links, resolver, py, self.pytest.matcher(), self.all_files, self._text_imports,
            self.pytest.walked(),
        )  # fmt: skip
        link_globals(links, links.tests, self.sections)
        link_declared(links, self.targets, self.all_files, self.loaded.source or "maestro.toml")
        link_recorded(links, self.index.dynamic, py)

    def _text_stamps(self, files: list[str]) -> list[str]:
        """Each text test file's path and stat: its edges come from its content."""
        is_test = self.pytest.matcher()
        collected = frozenset(self.pytest.collected_files)  # no edge from their content
        stamps = []
        for rel in files:
            if not rel.endswith(".py") and is_test(rel) and rel not in collected:
                try:
                    st = os.stat(os.path.join(self.root, rel))
                except OSError:
                    continue
                stamps.append(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}")
        return stamps

    def _text_imports(self, rel: str) -> list[RawImport] | None:
        """What the doctest examples of a text file pytest would collect import; None when it
        has no example (pytest collects no test from it) or is gone. A file a conftest collects
        imports nothing itself (its conftests are its code) but its doctests' imports."""
        try:
            data = (self.root / rel).read_bytes()
        except OSError:
            return None
        source = doctest_source(data, self.pytest.doctest_encoding)
        if source is None:
            return [] if rel in self.pytest.collected_files else None
        return scan_imports(source)

    def _relink_text(self, rel: str) -> bool:
        """A text file pytest collects doctests from changed: its edges again (what its examples
        import may have changed). False when it became or stopped being a test file."""
        imports = self._text_imports(rel)
        if (imports is not None) != (rel in self.tests):
            return False
        if imports is not None:
            links = self.links
            links.drop(rel)
            link_imports(links, self.resolver, rel, imports)
            link_test(links, self.resolver, rel, self.py)
            link_globals(links, [rel], self.sections)
            replace_recorded(links, rel, self.index.dynamic.get(rel, []))
        return True

    def _read_sections(self) -> None:
        self.sections = {}
        for rel in sorted(rel for rel in self.all_files if is_root_global_input(rel)):
            try:
                content = (self.root / rel).read_bytes()
            except OSError:
                continue
            self.sections.update(section_digests(rel, content))

    def collecting_plugins(self) -> list[str]:
        """The installed pytest plugins' source files defining ``pytest_collect_file``
        (memoised in the index per state of the environment)."""
        dirs = environment.site_packages(self.root, self.loaded.config.interpreter)
        key = environment.environment_key(dirs)
        cached = self.index.extra.get("collecting-plugins")
        if isinstance(cached, dict) and cached.get("key") == key:
            return list(cached["files"])
        found = collectors.collecting_plugins(environment.pytest_plugin_files(dirs))
        self.index.extra["collecting-plugins"] = {"key": key, "files": found}
        self.index.dirty = True
        return found

    def distributions(self) -> dict[str, list[str]]:
        """Top-level module -> [distribution, version] of the workspace's environment (cached)."""
        if self._dists:
            return self._dists
        dirs = environment.site_packages(self.root, self.loaded.config.interpreter)
        key = environment.environment_key(dirs)
        cached = self.index.extra.get("dists")
        if isinstance(cached, dict) and cached.get("key") == key:
            self._dists = cached["map"]
        else:
            self._dists = environment.distribution_map(dirs)
            self.index.extra["dists"] = {"key": key, "map": self._dists}
            self.index.dirty = True
        return self._dists

    def _distributions_aside(self) -> Callable[[], None] | None:
        """The environment's distribution map (cache keys and stats need it, and it reads a
        whole site-packages) read in a forked child while this process links; the returned
        function collects it. None when the index already holds it for this environment."""
        dirs = environment.site_packages(self.root, self.loaded.config.interpreter)
        key = environment.environment_key(dirs)
        cached = self.index.extra.get("dists")
        if isinstance(cached, dict) and cached.get("key") == key:
            return None
        collect = call_forked(environment.distribution_map, dirs)

        def done() -> None:
            found = collect()
            if isinstance(found, dict) and not self._dists:
                self._dists = found
                self.index.extra["dists"] = {"key": key, "map": found}
                self.index.dirty = True

        return done

    def distribution_of(self, node: str) -> tuple[str, str] | None:
        """(distribution, version) behind a `dist:<module>` node, None if not installed."""
        found = self.distributions().get(node.removeprefix(DIST))
        return (found[0], found[1]) if found else None

    def installed_value(self, node: str) -> str | None:
        """What the installed code behind a `dist:<module>` node is now: ``name==version``, with
        a digest of its files edited since the install when there are any; a loose module's
        code digest; None when nothing installed provides it."""
        return self._installed.value(node.removeprefix(DIST), self._read_installed)

    def _read_installed(self, top: str) -> str | None:
        kept = self.index.extra.get("installed-hashes")
        kept = kept if isinstance(kept, dict) and len(kept) < 50_000 else {}
        memo = dict(kept)  # the index's values are replaced whole, never edited (copies share)
        value = environment.installed_value(
            self.distributions(),
            lambda: environment.site_packages(self.root, self.loaded.config.interpreter),
            top,
            memo,
        )
        if memo != kept:  # the digests of edited installed files, kept across runs
            self.index.extra["installed-hashes"] = memo
            self.index.dirty = True
        return value

    def installed_edited(self) -> str:
        """A digest of the edits, since their install, of the installed modules the workspace's
        runs loaded ("" when none is edited): a dependency's dependency, never imported by
        name, is run all the same."""
        loaded = self.index.extra.get("installed-loaded")
        edits = {
            top: value
            for top in (loaded if isinstance(loaded, list) else ())
            if (value := self.installed_value(DIST + top)) and " edited:" in value
        }
        if not edits:
            return ""
        body = "\n".join(f"{top}={value}" for top, value in sorted(edits.items()))
        # the edited files named after the digest, as in the modules' own values (for a reason)
        named = min(v.rpartition(" (")[2].rstrip(")") for v in edits.values())
        more = f" and {len(edits) - 1} more modules" if len(edits) > 1 else ""
        return f"{hashlib.sha256(body.encode()).hexdigest()} ({named}{more})"

    def note_installed_loaded(self, tops: Iterable[str]) -> None:
        """Keep the installed modules a run loaded (a union: a run of some tests loads some)."""
        known = self.index.extra.get("installed-loaded")
        known = known if isinstance(known, list) else []
        if not set(tops) <= set(known):
            self.index.extra["installed-loaded"] = sorted({*known, *tops})
            self.index.dirty = True

    def forget_installed(self) -> None:
        """Re-read the installed code's edits at the next `installed_value` (a new plan)."""
        self._installed.forget()

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
        results: list[ScanResult]
        if may_fork(len(unseen)):
            results = scan_forked(str(self.root), [rels[i::workers] for i in range(workers)])
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

    # ------------------------------------------------------------------ updates

    def record_dynamic(self, test: str, inputs: Iterable[str]) -> None:
        """Join files and modules a test file touched while running (from the runner); for a
        module, the files its import read (every importer depends on them)."""
        # a name that is not UTF-8 is never a node (it would reach cache keys and the wire)
        recorded = sorted({rel for rel in inputs if is_utf8(rel)} - {test})
        self.index.dynamic[test] = recorded
        self.record_listings(test, recorded)
        self.index.dirty = True
        replace_recorded(self.links, test, recorded)

    def record_listings(self, who: str, recorded: Iterable[str]) -> None:
        """Keep the names of each directory `who` listed, as they are now (the run just ended),
        so that `impacted` can tell a name added or removed since from an edit."""
        seen: dict[str, str] = {}
        listings = self.index.listings
        for rel in recorded:
            if not rel.startswith(LISTING):
                continue
            directory = rel.removeprefix(LISTING)
            names = listing_names(self.root, directory) or []
            digest = names_digest(names)
            if digest not in listings:
                listings[digest] = frozenset(names)
            seen[directory] = digest
        if seen:
            self.index.listed[who] = seen
        else:
            self.index.listed.pop(who, None)

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
                    self.links.drop(rel)
                    link_file(self.links, self.resolver, rel, entry)
                    if rel in self.tests:
                        link_test(self.links, self.resolver, rel, self.py)
                        link_globals(self.links, [rel], self.sections)
                    touched.add(rel)
                elif exists != (rel in self.py):
                    structural = True
            elif is_root_global_input(rel) or exists != (rel in self.all_files):
                structural = True
            elif exists and (rel in self.tests or self.pytest.is_test_file(rel)):
                # a text file of doctests
                if not self._relink_text(rel):
                    structural = True
                elif rel in self.tests:
                    touched.add(rel)
            elif not exists and path.is_dir() != (rel in self.dirs):
                # a directory came or went: the watcher may report no file in it (one written
                # before the new directory's watch was set up), so walk the tree again
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
            "loaded", "pytest", "all_files", "hidden", "dirs", "py", "links", "targets", "sections",
            "walk_diagnostics", "resolver", "_dists", "collect_request", "collected_variables",
        ):  # fmt: skip
            setattr(self, name, getattr(fresh, name))

    def save(self) -> None:
        self.index.files = dict(self.py)
        self.index.save()

    def copy(self) -> BuildGraph:
        """An independent in-memory copy, for one test run: it can record dynamic deps, check
        syntax, hash files and update without touching this graph, and it never writes the index
        (its `save` is a no-op), so it cannot race this graph's saves. Only the read-only
        configuration (settings, pytest config) and immutable values (edges, imports) are
        shared."""
        with _collector_paused():  # tens of thousands of containers, all long-lived
            other = object.__new__(BuildGraph)
            other.root = self.root
            entries = {id(e): e.copy() for e in self.py.values()}
            other.py = {rel: entries[id(e)] for rel, e in self.py.items()}
            index = self.index
            other.index = Index(
                None,
                files={rel: entries.get(id(e)) or e.copy() for rel, e in index.files.items()},
                dynamic={test: list(inputs) for test, inputs in index.dynamic.items()},
                listed={who: dict(dirs) for who, dirs in index.listed.items()},
                listings=dict(index.listings),  # its values are frozen
                extra=dict(index.extra),  # its values are replaced whole, never edited
                saved_at_ns=index.saved_at_ns,
                dirty=index.dirty,
            )
            other.loaded = self.loaded
            other.pytest = self.pytest
            other.all_files = set(self.all_files)
            other.hidden = self.hidden  # replaced whole, never edited
            other.dirs = set(self.dirs)
            other.links = self.links.copy()
            other.targets = dict(self.targets)
            other.sections = dict(self.sections)
            other.walk_diagnostics = list(self.walk_diagnostics)
            other.stats = dataclasses.replace(self.stats, edges=dict(self.stats.edges))
            other.resolver = self.resolver.copy(other.all_files, other.dirs)
            other._dists = self._dists  # replaced whole when refreshed, never edited
            other._installed = environment.InstalledCode()
            other.collect_request = self.collect_request  # frozen
            other.collected_variables = self.collected_variables
        return other

    # ------------------------------------------------------------------ queries

    def is_target(self, node: str) -> bool:
        return node in self.tests or (node.startswith(TARGET) and node[2:] in self.targets)

    def impacted(self, changes: Iterable[Change]) -> list[Impact]:
        """Targets a change can break, each with its shortest reason chain, nearest first. An
        extension module rebuilt since its changed source was written counts as changed."""
        from maestro.graph.extensions import rebuilt_since

        changes = list(changes)
        changes += rebuilt_since(str(self.root), changes)
        changed = query.changed_nodes(
            changes, root=self.root, links=self.links, sections=self.sections,
            targets=self.targets, all_files=self.all_files, py=self.py, resolver=self.resolver,
            listed=self.index.listed, listings=self.index.listings,
        )  # fmt: skip
        return query.impacted(self.links, [TARGET + name for name in self.targets], changed)

    def why(self, target: str, path: str) -> tuple[Hop, ...] | None:
        """Shortest chain by which `target` depends on `path` (a file or a global section).

        A pytest node id (``tests/test_x.py::test_y[param]``, what a failure line shows) is
        answered for its file: the graph knows files, and a node depends on what its file does."""
        if "::" in target and not target.startswith(TARGET):
            target = self._node_file(target)
        if not self.is_target(target) and target not in self.deps:
            raise UnknownTargetError(
                f"{target!r} is not a test file or declared target of this workspace",
                hint="see `maestro graph stats --targets`; declared targets start with //",
            )
        goals = {path} | {k for k in self.sections if k.startswith(path + "#")}
        return query.why(self.deps, target, goals)

    def _node_file(self, node: str) -> str:
        """The test file of a pytest node id whose first name that file defines; else an error
        that says which test files or tests are known."""
        file, _, rest = node.partition("::")
        if file not in self.tests:
            raise UnknownTargetError(
                f"{node!r}: {file!r} is not a test file of this workspace",
                hint="see `maestro graph stats --targets` for the test files",
            )
        name = rest.split("::", 1)[0].split("[", 1)[0]
        defined = _top_level_names(self.root / file)
        # a star import can bind any name; a doctest's is the module's dotted name
        if defined is not None and name not in defined and "*" not in defined and "." not in name:
            tests = sorted(n for n in defined if n.startswith(("test", "Test")))
            known = ", ".join(tests[:12]) + (
                f" and {len(tests) - 12} more" if len(tests) > 12 else ""
            )
            raise UnknownTargetError(
                f"{node!r}: {file} defines no {name!r}"
                + (f"; its tests are {known}" if tests else "; it defines no test by name"),
                hint=f"copy a node id from a failure line, or name the file: {file}",
            )
        return file

    def closure(self, target: str, skip: Collection[str] = ()) -> set[str]:
        """Everything `target` depends on, transitively (files, sections, distributions),
        through edges of any kind but those in `skip`."""
        return query.closure(self.deps, target, skip)

    def file_digest(self, rel: str) -> str | None:
        """sha256 of a file's content (None if absent), remembered while its stat is unchanged;
        for a directory's listing (``dir:...``), of the names in it."""
        if rel.startswith(LISTING):
            return listing_digest(self.root, rel.removeprefix(LISTING))
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
        stats.edges = query.edge_counts(self.deps)
        stats.distributions = len(
            {d for n in self.rdeps if n.startswith(DIST) and (d := self.distribution_of(n))}
        )
        stats.unresolved_imports = sum(
            1 for n in self.rdeps if n.startswith(DIST) and self.distribution_of(n) is None
        )
        return stats

    def to_networkx(self) -> nx.DiGraph[str]:
        return query.to_networkx(self.links, self.nodes())

    def nodes(self) -> set[str]:
        return set(self.deps) | set(self.rdeps) | set(self.py)

    def node_kind(self, node: str) -> str:
        return query.node_kind(self.tests, node)

    def critical_path(self, durations: dict[str, float] | None = None) -> list[str]:
        """Longest chain of declared targets by duration (1 per target when unknown)."""
        return query.critical_path(self.targets, durations)


PARALLEL_SCAN_MIN = 400  # below this, starting a worker costs more than it saves


ScanResult = tuple[str, list[Any] | None, list[tuple[int, str]]]


def may_fork(scanned: int) -> bool:
    """Whether a build that scans ``scanned`` files uses forked helpers: a batch worth it, a
    second core, and no other thread in this process (forking one is unsafe; the daemon builds
    in a thread and then lives on its index)."""
    cores = min(os.cpu_count() or 1, 4)
    return scanned >= PARALLEL_SCAN_MIN and cores > 1 and threading.active_count() == 1


def call_forked(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    """Start ``fn(*args)`` in a forked child; the returned function waits for its result
    (plain data, sent through a pipe with marshal), or None when the child failed."""
    import marshal

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compute, send, exit without running the parent's exit handlers
        status = 1
        try:
            os.close(read_end)
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(marshal.dumps(fn(*args)))
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)

    def result() -> Any:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        try:
            return marshal.loads(data) if status == 0 else None
        except (EOFError, ValueError, TypeError):
            return None

    return result


def scan_files(root: str, rels: list[str]) -> list[ScanResult]:
    """Read and scan files: (rel, packed imports, problems), or (rel, None, [(0, error)]).

    Results are plain lists: cheap to send from a forked child (scan_forked).
    """
    out: list[ScanResult] = []
    for rel in rels:
        try:
            with open(os.path.join(root, rel), "rb") as f:
                data = f.read()
        except OSError as exc:
            out.append((rel, None, [(0, f"cannot read: {exc.strerror}")]))
            continue
        out.append((rel, scan_packed(data), file_problems(data)))
    return out


def scan_forked(root: str, chunks: list[list[str]]) -> list[ScanResult]:
    """``scan_files`` over ``chunks``: the first here, each other one in a forked child that
    sends its results back through a pipe (call_forked). A bare fork, not a process pool: a
    cold build does not pay for the pool's imports and start-up. A child that fails has its
    chunk scanned here."""
    children = [(call_forked(scan_files, root, chunk), chunk) for chunk in chunks[1:]]
    results = scan_files(root, chunks[0])
    for collect, chunk in children:
        share = collect()
        if not isinstance(share, list):
            log.warning("a parallel scan's child failed; scanning its %d files here", len(chunk))
            share = scan_files(root, chunk)
        results += share
    return results


def file_problems(data: bytes) -> list[tuple[int, str]]:
    """What stops Python from importing a file at all, found without parsing it."""
    problems: list[tuple[int, str]] = []
    encoding = encoding_problem(data)
    if encoding is not None:
        problems.append(encoding)
    if b"\0" in data:
        problems.append((1, "file contains NUL bytes; Python cannot import it"))
    return problems


def _top_level_names(path: Path) -> set[str] | None:
    """The names a Python file binds at module level (functions, classes, assignments,
    imports), or None when it cannot be read or parsed."""
    import ast

    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return None
    names: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in stmt.names)
        else:
            for n in ast.walk(stmt):  # under an if or a try: defined there too
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                    names.add(n.id)
                elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(n.name)
    return names
