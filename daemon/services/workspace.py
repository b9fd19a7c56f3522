"""The daemon's graph: built in the background, kept current by the watcher, queried by clients.

Why it is shaped this way:

- The socket must answer `status` at once, so the graph (seconds on a big tree) is built in an
  executor after startup; graph methods await it. A failed build (bad config) is reported to
  each caller and retried on the next query, so fixing pyproject.toml needs no restart.
- Every read and write of the graph happens under one asyncio lock, in an executor thread: the
  event loop keeps serving other connections while a branch switch relinks the graph.
- Never a stale answer: the watcher only *records* changed paths; the applier and every query
  take the lock and fold recorded paths in first. Until the watcher is ready (its setup runs
  after the startup build, in its own thread, so a restart answers sooner) and once right after,
  each query first runs a stat pass (`catch_up`) over what the graph knows, which finds edits,
  new and deleted files since the previous pass. With MAESTRO_DAEMON_WATCH=0 every query does.
- The index is saved every SAVE_EVERY_S and on shutdown, so a restart reuses every scan.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from maestro.daemon.watcher import IgnoreRules, Watcher
from maestro.envvars import tuning
from maestro.errors import MaestroError, WorkspaceError
from maestro.graph.global_inputs import is_global_input, is_root_global_input
from maestro.names import is_utf8, printable
from maestro.paths import graph_index_path, own_dirs, workspace_state_dir
from maestro.reports import GraphStatsReport, HopModel, ImpactedReport, WhyReport
from maestro.wire import (
    GRAPH_CHANGED,
    GRAPH_EXPORT,
    GRAPH_STATS,
    IMPACTED,
    WHY,
    Dumped,
    GraphChanged,
    GraphExportParams,
    GraphExportResult,
    GraphStatsParams,
    ImpactedParams,
    WhyParams,
)

if TYPE_CHECKING:
    from maestro.daemon.app import DaemonApp
    from maestro.daemon.transport.server import RequestContext
    from maestro.graph.build import BuildGraph, Change
    from maestro.graph.collectors import CollectRequest
    from maestro.graph.pytest_config import PytestConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

SAVE_EVERY_S = 30.0
MTIME_MARGIN_NS = 1_000_000_000
"""Coarse file-system timestamps: a pass also re-checks what changed shortly before it."""
WATCH_AFTER_ANSWER_S = 0.1
"""Setting up inotify on a large tree holds the GIL for ~0.1 s (in watchfiles' Rust code): the
watcher starts just after the first answer after a restart, not before it. Until it is ready,
every query runs a stat pass (catch_up) first, so nothing is answered from a stale graph."""
WATCH_AFTER_LOAD_S = 1.0
INLINE_PATHS = 16
"""Explicit paths stat'ed on the loop rather than in a worker thread."""
INLINE_TEXT = 1 << 20
"""Unsaved buffers (characters in all) compared with the disk on the loop, not in a worker."""


def _step_ms() -> int:
    return tuning("MAESTRO_WATCH_STEP_MS", 30)


def absolute(root: Path, path: str) -> str:
    """A wire path (absolute, or relative to the root) as an absolute path inside the root.

    The daemon's cwd is its state dir, so relative paths are never resolved against it.
    """
    candidate = Path(path)
    full = candidate if candidate.is_absolute() else root / candidate
    full = Path(os.path.normpath(full))
    if full != root and root not in full.parents:
        raise WorkspaceError(f"{path} is outside the workspace {root}")
    return str(full)


def relative(root: Path, path: str) -> str:
    return Path(absolute(root, path)).relative_to(root).as_posix()


def catch_up(graph: BuildGraph, rules: IgnoreRules, since_ns: int) -> set[str]:
    """Paths that changed on disk since ``since_ns`` (wall clock) without the graph knowing.

    Python files are compared by stat with what their scan saw; directories modified since
    then are listed for added or removed files; root-level global inputs by mtime.
    """
    root = graph.root
    changed: set[str] = set()
    for rel, entry in list(graph.py.items()):
        try:
            st = os.stat(os.path.join(root, rel))
        except OSError:
            changed.add(rel)
            continue
        if (st.st_size, st.st_mtime_ns, st.st_ino) != (entry.size, entry.mtime_ns, entry.inode):
            changed.add(rel)
    for rel in graph.all_files:
        if is_root_global_input(rel):
            try:
                if os.stat(os.path.join(root, rel)).st_mtime_ns >= since_ns:
                    changed.add(rel)
            except OSError:
                changed.add(rel)
    for directory in ["", *graph.dirs]:
        full = os.path.join(root, directory)
        try:
            if os.stat(full).st_mtime_ns < since_ns:
                continue
            names = os.listdir(full)
        except OSError:
            continue
        prefix = directory + "/" if directory else ""
        present = {prefix + n for n in names}
        for rel in present - graph.all_files - graph.dirs:
            is_dir = os.path.isdir(os.path.join(root, rel))
            if rules.relative(os.path.join(root, rel), directory=is_dir) is None:
                continue
            if is_dir:
                for base, _, files in os.walk(os.path.join(root, rel)):
                    for name in files:
                        found = os.path.join(base, name)
                        sub = rules.relative(found)
                        if sub is not None:
                            changed.add(sub)
            else:
                changed.add(rel)
        for rel in graph.all_files:
            if rel.startswith(prefix) and "/" not in rel[len(prefix) :] and rel not in present:
                changed.add(rel)
    return changed


class WorkspaceService:
    """One workspace's graph, its watcher and the graph methods of the protocol."""

    def __init__(self, app: DaemonApp, *, watch: bool = True) -> None:
        self.app = app
        self.root = app.root
        self.index_path = graph_index_path(self.root)
        self.lock = asyncio.Lock()
        self.graph: BuildGraph | None = None
        self.build_error: MaestroError | None = None
        self.pending: set[str] = set()
        self.updates = 0
        self.generation = 0
        """Bumped whenever the graph may answer differently (load, update, recorded deps): with
        the process's boot id, the version an ``impacted`` etag names."""
        self._boot = os.urandom(6).hex()
        self._watch = watch
        self._watcher: Watcher | None = None
        self._stopping = False
        self._loading: asyncio.Task[None] | None = None
        self._applier: asyncio.Task[None] | None = None
        self._trusting: asyncio.Task[None] | None = None
        self._saver: asyncio.Task[None] | None = None
        self._dirty = False
        self._rules = IgnoreRules(self.root, (workspace_state_dir(self.root),), self._pytest)
        self._since_ns = 0
        self._watch_trusted = False
        """True once a stat pass ran after the watcher became ready: from then on it suffices."""
        self._watch_gaps = 0
        """Times the watcher stopped reporting (it restarts itself): a pass ran across one is
        no reason to trust it."""
        self.listeners: list[Callable[[set[str]], None]] = []
        """Called (on the loop) with each watcher batch, before it is applied: speculation."""

    def _pytest(self) -> PytestConfig | None:
        """The graph's pytest configuration (which files .gitignore hides pytest uses)."""
        graph = self.graph
        return graph.pytest if graph is not None else None

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self, app: DaemonApp) -> None:
        """Startup hook: build in the background (the socket is bound without waiting), then
        start the watcher; queries cover the gap with stat passes."""
        self._loading = asyncio.create_task(self._load(), name="graph-load")
        self._saver = asyncio.create_task(self._save_periodically(), name="graph-save")

    def _start_watcher(self) -> None:
        if not self._watch or self._watcher is not None or self._stopping:
            return
        state = workspace_state_dir(self.root)
        self._watcher = Watcher(
            self.root, self._on_batch, excluded=(state, self.app.paths.socket.parent, *own_dirs()),
            step_ms=_step_ms(), on_lost=self._on_watch_lost, pytest=self._pytest,
        )  # fmt: skip
        self._watcher.start()
        self._trusting = asyncio.create_task(self._catch_up_when_watched(self._watcher))

    def _on_watch_lost(self) -> None:
        """The watcher stopped and is restarting: until it is ready again, each query runs a
        stat pass first, as before it first was; and one pass when it is."""
        self._watch_gaps += 1
        self._watch_trusted = False
        watcher, trusting = self._watcher, self._trusting
        if watcher is not None and not self._stopping and (trusting is None or trusting.done()):
            self._trusting = asyncio.create_task(self._catch_up_when_watched(watcher))

    async def _catch_up_when_watched(self, watcher: Watcher) -> None:
        """Once the watcher reports everything, one stat pass folds in (and announces) what
        changed before it did: an edit made between the last answer and now gets its
        ``graph_changed`` without waiting for the next query."""
        await watcher.ready.wait()
        await self._apply_soon()

    async def stop(self, app: DaemonApp) -> None:
        """Shutdown hook: stop watching, then persist the index for a warm restart."""
        self._stopping = True
        for task in (self._saver, self._applier, self._trusting):
            if task is not None:
                task.cancel()
        if self._watcher is not None:
            await self._watcher.stop()
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
            return
        if self.graph is not None:
            async with self.lock:
                await self._apply_pending()
                await asyncio.to_thread(self.graph.save)
                log.info("graph index saved to %s", self.index_path)

    async def _load(self) -> None:
        from maestro.graph.build import BuildGraph

        started = time.perf_counter()
        async with self.lock:
            self.pending.clear()  # the build reads everything from disk anyway
            self._since_ns = time.time_ns() - MTIME_MARGIN_NS
            self._watch_trusted = False
            try:
                self.graph = await asyncio.to_thread(
                    BuildGraph.build, self.root, index_path=self.index_path
                )
                self.generation += 1
                self.build_error = None
            except MaestroError as exc:
                log.error("graph build failed: %s", exc.message)
                self.build_error = exc
                return
        loop = asyncio.get_running_loop()
        loop.call_later(WATCH_AFTER_LOAD_S, self._start_watcher)
        # The graph lives until the next full build: kept out of the collector's sight, the full
        # collections a large answer triggers no longer walk its ~100k objects (RPC p95 pauses).
        # (No gc.collect() first: a full pass costs more than the restart budget.)
        gc.freeze()
        stats = self.graph.stats
        log.info(
            "graph ready in %.3fs (%d files from the index, %d scanned)",
            time.perf_counter() - started,
            stats.reused_from_index,
            stats.scanned,
        )

    async def _save_periodically(self) -> None:
        while True:
            await asyncio.sleep(SAVE_EVERY_S)
            if self.graph is None or not self._dirty:
                continue
            async with self.lock:
                self._dirty = False
                try:
                    await asyncio.to_thread(self.graph.save)
                except Exception:
                    log.exception("saving the graph index failed")

    # --- changes ---------------------------------------------------------------------------------

    def _on_batch(self, paths: set[str]) -> None:
        """Watcher callback: record, then apply in the background (queries apply first)."""
        self.pending |= paths  # all of them: the graph reports a name that is not UTF-8
        # listeners build change records, telemetry and cache keys: never from such a name
        usable = {p for p in paths if is_utf8(p)}
        for listener in self.listeners:
            if not usable:
                break
            try:
                listener(usable)
            except Exception:
                log.exception("change listener failed")
        if self._applier is None or self._applier.done():
            self._applier = asyncio.create_task(self._apply_soon(), name="graph-apply")

    async def _apply_soon(self) -> None:
        await self.ready()
        async with self.lock:
            await self._apply_pending()

    async def _apply_pending(self) -> None:
        """Fold recorded paths into the graph (lock held) and tell subscribers."""
        if self.graph is None:
            return
        if not self._watch_trusted:
            ready = self._watcher is not None and self._watcher.ready.is_set()
            gaps = self._watch_gaps
            next_since = time.time_ns() - MTIME_MARGIN_NS
            rules, since = self._rules, self._since_ns
            self.pending |= await asyncio.to_thread(catch_up, self.graph, rules, since)
            self._since_ns = next_since
            # changes after `ready` are the watcher's to report, unless it stopped meanwhile
            self._watch_trusted = ready and gaps == self._watch_gaps
        if not self.pending:
            return
        paths, self.pending = self.pending, set()
        started = time.perf_counter()
        graph = self.graph
        try:
            touched = await asyncio.to_thread(graph.update, sorted(paths))
        except Exception:
            # A half-applied update would serve wrong answers: rebuild from disk instead.
            log.exception("incremental update failed; rebuilding the graph")
            from maestro.graph.build import BuildGraph

            self.graph = await asyncio.to_thread(
                BuildGraph.build, self.root, index_path=self.index_path
            )
            touched = {"*"}
        self.updates += 1
        self.generation += 1
        self._dirty = True
        elapsed = (time.perf_counter() - started) * 1000
        names = sorted(map(printable, paths))  # UTF-8 for the log and the wire
        shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
        log.info(
            "graph updated in %.1f ms: %d paths (%s), %d nodes touched", elapsed, len(paths),
            shown, len(touched),
        )  # fmt: skip
        self.app.broadcast(
            GRAPH_CHANGED, GraphChanged(paths=names, touched=sorted(touched), elapsed_ms=elapsed)
        )

    # --- access ----------------------------------------------------------------------------------

    def check_disk_next(self) -> None:
        """The next query runs a stat pass whatever the watcher says. A run asked for right
        after a save (an editor's write, then its Run command) reaches the daemon before the
        watcher's batch for the file (its step, inotify's delivery): planned on the graph as it
        was, it keyed the saved file by its old text and served the old result."""
        self._watch_trusted = False

    async def ready(self) -> BuildGraph:
        """The loaded graph; waits for the startup build, retries a failed one."""
        if self._loading is None:
            self._loading = asyncio.create_task(self._load(), name="graph-load")
        await asyncio.shield(self._loading)
        if self.graph is None:
            # The last build failed: try again (the user may have fixed the config).
            self._loading = asyncio.create_task(self._load(), name="graph-load")
            await asyncio.shield(self._loading)
        if self.graph is None:
            assert self.build_error is not None
            raise self.build_error
        return self.graph

    async def query(self, func: Callable[[BuildGraph], T], *, mutates: bool = False) -> T:
        """Run ``func(graph)`` in an executor under the lock, after applying pending changes."""
        await self.ready()
        async with self.lock:
            await self._apply_pending()
            assert self.graph is not None
            result = await asyncio.to_thread(func, self.graph)
            if mutates:
                self._dirty = True
                self.generation += 1
        self.app.answered()
        if self._watcher is None and self._watch:
            asyncio.get_running_loop().call_later(WATCH_AFTER_ANSWER_S, self._start_watcher)
        return result

    # --- methods ---------------------------------------------------------------------------------

    async def changes(self, params: ImpactedParams) -> list[Change]:
        """The change records of a request (git and file reads in an executor)."""
        from maestro.engine import changes as sources

        root = self.root
        if params.buffers is not None:
            buffers = {absolute(root, p): text for p, text in params.buffers.items()}
            if len(buffers) <= INLINE_PATHS and sum(map(len, buffers.values())) <= INLINE_TEXT:
                # an editor's buffer or two: one read each, cheaper than the hop to a worker
                return sources.from_buffers(root, buffers)
            return await asyncio.to_thread(sources.from_buffers, root, buffers)
        if params.paths is not None:
            paths = [absolute(root, p) for p in params.paths]
            if len(paths) <= INLINE_PATHS and not any(
                is_global_input(relative(root, p)) for p in paths
            ):
                # a stat each: cheaper than a hop to a worker thread and back, which waits
                # for the GIL at each end (the p95 of an editor's query)
                return sources.from_paths(root, paths)
            return await asyncio.to_thread(sources.from_paths, root, paths)
        return await asyncio.to_thread(sources.from_git, root, params.since)

    def _etag(self, changes: list[Change], shape: tuple[int | None, bool]) -> str:
        """Names one answer: same graph version, same change records, same shape."""
        key = [c.impact_key() for c in changes]
        digest = hashlib.blake2b(repr((shape, key)).encode(), digest_size=12).hexdigest()
        return f"{self._boot}-{self.generation}-{digest}"

    async def collected(self) -> None:
        """Make the graph's tests those pytest collects where a conftest collects or ignores
        files itself (collect_ignore ...): its answer as kept once any command asked, else
        asked now (one short pytest process, outside the lock)."""
        from maestro.engine import collect_probe

        def known(
            graph: BuildGraph,
        ) -> tuple[bool, CollectRequest | None, str | None, tuple[str, ...]]:
            from maestro.engine.testing import env_allowlist_of

            learned = graph.learn_known_collected()
            request = graph.ask_collected()
            allowlist = env_allowlist_of(graph) if request is not None else ()
            return learned, request, graph.loaded.config.interpreter, allowlist

        learned, request, configured, allowlist = await self.query(known)
        if request is not None:
            answer = await asyncio.to_thread(
                collect_probe.answer_now, self.root, request, configured, None, allowlist
            )
            if answer is not None:
                learned = await self.query(lambda g: g.learn_known_collected()) or learned
        if learned:
            await self.query(lambda _: None, mutates=True)

    async def impacted(
        self, params: ImpactedParams, ctx: RequestContext
    ) -> ImpactedReport | Dumped[ImpactedReport]:
        from maestro.engine.changes import from_hidden
        from maestro.graph.extensions import extension_notes

        await self.collected()
        given = await self.changes(params)
        from_git = params.paths is None and params.buffers is None

        def answer(graph: BuildGraph) -> ImpactedReport | Dumped[ImpactedReport]:
            # under the lock, pending changes applied: the generation is the graph's; git's
            # changes with the hidden files pytest uses, which git knows no version of
            changes = given + from_hidden(graph) if from_git else given
            etag = self._etag(changes, (params.hops, params.why))
            if params.etag == etag:
                return ImpactedReport.same_as(str(self.root), etag)
            started = time.perf_counter()
            impacts = graph.impacted(changes)
            elapsed = (time.perf_counter() - started) * 1000
            data = ImpactedReport.data(
                str(self.root), changes, impacts, elapsed, hops=params.hops, etag=etag,
                why=params.why, notes=extension_notes(graph, changes, impacts),
            )  # fmt: skip
            return Dumped(ImpactedReport, data)

        return await self.query(answer)

    async def why(self, params: WhyParams, ctx: RequestContext) -> WhyReport:
        root = self.root
        target = params.target
        if not target.startswith("//"):  # a file, or a pytest node id: its file part is a path
            file, sep, node = target.partition("::")
            target = relative(root, file) + sep + node
        path = relative(root, params.path)

        def answer(graph: BuildGraph) -> WhyReport:
            chain = graph.why(target, path)
            return WhyReport(
                target=target,
                path=path,
                depends=chain is not None,
                reason=[HopModel.of(h) for h in chain or ()],
            )

        return await self.query(answer)

    async def stats(self, params: GraphStatsParams, ctx: RequestContext) -> GraphStatsReport:
        await self.collected()
        # Syntax checks are remembered in the index: save them later.
        return await self.query(
            lambda g: GraphStatsReport.build(
                g, with_targets=params.targets, check_syntax=params.check_syntax
            ),
            mutates=params.check_syntax,
        )

    async def export(self, params: GraphExportParams, ctx: RequestContext) -> GraphExportResult:
        from maestro.graph.export import export_dot, export_json

        render = export_dot if params.format == "dot" else export_json
        text = await self.query(render)
        return GraphExportResult(format=params.format, text=text)


def install(app: DaemonApp, *, watch: bool = True) -> WorkspaceService:
    """Provide the graph service and serve its methods."""
    service = WorkspaceService(app, watch=watch)
    app.provide(WorkspaceService, service, start=service.start, stop=service.stop)
    app.register(IMPACTED, service.impacted)
    app.register(WHY, service.why)
    app.register(GRAPH_STATS, service.stats)
    app.register(GRAPH_EXPORT, service.export)
    return service
