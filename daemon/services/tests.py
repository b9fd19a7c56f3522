"""Test runs, stale tests and cache statistics, served by the daemon (the engine composed).

Why it is shaped this way:

- One run per workspace at a time: two pytest processes writing the same results and caches
  would race; later requests wait on a FIFO lock and are told how many runs are ahead.
- A run gets its *own* BuildGraph, built (under the graph lock, from the freshly saved index)
  right before planning. `Engine.execute` records dynamic deps into the graph it was given and
  hashes inputs after pytest exits, on the event loop thread; doing that on the shared graph
  would race with watcher updates running in executor threads. The recorded deps are copied into
  the shared graph afterwards, under its lock, so `impacted` learns them too.
- Cancellation is asyncio cancellation of the handler: `run_pytest` then terminates the pytest
  process group; nothing from an unfinished run is stored.
- Progress events are forwarded from a queue, so the runner's synchronous callback never waits
  on a slow client; they are all sent before the final response.
- With a coordinator configured (services/sync.py), runs use the mirrored cache: a local miss reads
  through (bounded wait), stored results are queued for upload. `stale` uses a view that never
  waits on the network (it only starts prefetches), since the IDE asks it.
- ``RunTestsParams.env`` is the client's allowlisted environment: keys and the pytest child use it
  instead of the daemon's (which may be days old, or the LSP's), so results match `--no-daemon`.
- A pytest process waits for the next explicit run (``WarmPytest``: interpreter started, pytest
  imported), so a run does not pay for either; it is started when the daemon starts and after each
  run that took it, with that run's environment. The runner hands it a run only if it was started
  exactly as that run's own would be and nothing it imported changed since; otherwise it is killed
  and the run starts its own. Speculative runs (lower priority) never take it.
- Before Python 3.12 a test file's first run is untraced (engine/retrace.py): once the daemon is
  idle after a run that stored such results, it re-runs those files traced at low priority (and
  stores the traced results that agree with the cached ones), so that the first change re-runs
  the nodes that executed it, not the whole file. An explicit run cancels it before it queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from maestro.cache.stats import CacheStats
from maestro.daemon.foreign_runs import ForeignRun, foreign_pytest
from maestro.daemon.services import policy
from maestro.daemon.services.cached import cached_results
from maestro.daemon.services.workspace import WorkspaceService
from maestro.graph.env_refs import referenced as referenced_env
from maestro.wire import (
    CACHE_STATS,
    CACHED_RESULTS,
    PROVIDE_ENV,
    RUN_ENV_WANTED,
    RUN_PLAN,
    RUN_PROGRESS,
    RUN_QUEUED,
    RUN_TESTS,
    STALE,
    Empty,
    EnvWanted,
    PredictiveInfo,
    ProvideEnvParams,
    RetraceStatus,
    RunPlanned,
    RunProgress,
    RunQueued,
    RunTestsParams,
    RunTestsResult,
    StaleFile,
    StaleParams,
    StaleResult,
)

if TYPE_CHECKING:
    from maestro.cache import Cache
    from maestro.config import Settings
    from maestro.daemon.app import DaemonApp
    from maestro.daemon.services.policy import PolicyService
    from maestro.daemon.services.speculation import SpeculationService
    from maestro.daemon.services.sync import SyncService
    from maestro.daemon.transport.server import RequestContext
    from maestro.engine.core import Engine
    from maestro.engine.events import Event
    from maestro.engine.interpreter import Interpreter
    from maestro.engine.runner import WarmPytest
    from maestro.engine.testing import Plan, Selection, Summary
    from maestro.graph.build import BuildGraph
    from maestro.graph.fingerprints import FingerprintStore
    from maestro.redaction import Redactor

log = logging.getLogger(__name__)

RETRACE_DELAY_S = 2.0  # idle time after a run before its untraced files are re-recorded
RETRACE_RETRY_S = 300.0  # most time between two asks while the policy holds the re-recording
FOREIGN_POLL_S = 0.5  # how often a re-recording looks for a pytest run of the user's
ENV_ANSWER_S = 10.0  # how long a run waits for its client's `provide_env`

_DROPPED_FIELDS = {"stdout", "stderr", "longrepr", "each"}


@dataclass
class _Counts:
    done: int = 0
    total: int | None = None


class TestService:
    """The workspace's cache handle, its interpreter and the run queue."""

    __test__ = False

    def __init__(
        self, app: DaemonApp, workspace: WorkspaceService, sync: SyncService | None = None
    ) -> None:
        self.app = app
        self.workspace = workspace
        self.sync = sync
        self.root = app.root
        self.run_lock = asyncio.Lock()
        self.waiting = 0
        self.active = 0
        self.runs = 0
        self._cache: Cache | None = None
        self._cache_lock = asyncio.Lock()
        self.speculation: SpeculationService | None = None  # telemetry, fail-first, speculation
        self._stopping: asyncio.Task[None] | None = None  # the stop after a deleted cache
        self._fingerprints: FingerprintStore | None = None
        self.policy: PolicyService | None = None  # run admission, select and cache gates
        self._standby: WarmPytest | None = None  # the next explicit run's pytest process
        self._standby_task: asyncio.Task[None] | None = None
        self._warming: asyncio.Task[None] | None = None
        self._retrace: asyncio.Task[None] | None = None  # re-recording untraced results
        self._untraced: set[str] = set()  # test files stored without a per-node record
        self._tried: set[str] = set()  # the keys of the results re-recorded (or tried)
        self._rerecord: set[str] = set()  # of those, traced already (no line records)
        self._retrace_held = ""  # why the re-recording waits (the policy, a run of the user's)
        self._retrace_needless = ""  # why the last run needs none (3.12+, MAESTRO_TRACE)
        self._retracing = False
        self._retrace_runs = 0
        self._retrace_stored = 0
        # (connection, run_tests request) -> the `provide_env` answer that run waits for
        self._env_asks: dict[tuple[int, int], asyncio.Future[dict[str, str]]] = {}

    @property
    def fingerprints(self) -> FingerprintStore:
        """The workspace's fingerprint store, kept for the daemon's lifetime: its memory memo
        spares re-reading (or re-parsing) a file's fingerprints at every plan."""
        if self._fingerprints is None:
            from maestro.engine.testing import fingerprint_store

            self._fingerprints = fingerprint_store(self.root)
        return self._fingerprints

    async def cache(self) -> Cache:
        async with self._cache_lock:
            if self._cache is None:
                from maestro.cache import Cache

                self._cache = await asyncio.to_thread(Cache.open)
            return self._cache

    async def run_cache(self, graph: BuildGraph, *, wait_remote: bool) -> Cache:
        """The mirrored cache when a coordinator is configured, else the local one."""
        if self.sync is not None:
            settings = self.settings(graph)
            await self.sync.configure(settings.remote, enforce=settings.secrets.redaction.enforce)
            view = self.sync.view(wait_remote=wait_remote) if self._mirror_enabled() else None
            if view is not None:
                return view
        return await self.cache()

    def settings(self, graph: BuildGraph) -> Settings:
        """The workspace's settings with the connected editor's over them, and the switches
        that are feature flags (speculation, fail-first, predictive threshold) as resolved."""
        from maestro.daemon.services.client_settings import ClientSettingsService
        from maestro.daemon.services.flags import FlagsService

        config = graph.loaded.config
        with contextlib.suppress(LookupError):
            config = self.app.service(ClientSettingsService).effective(config)
        with contextlib.suppress(LookupError):
            config = self.app.service(FlagsService).apply(config)
        return config

    def _mirror_enabled(self) -> bool:
        """The ``cas.mirror.enabled`` flag (a daemon composed without flags: on)."""
        from maestro.daemon.services.flags import FlagsService

        try:
            return bool(self.app.service(FlagsService).value("cas.mirror.enabled"))
        except LookupError:
            return True

    async def start(self, app: DaemonApp) -> None:
        self._warming = asyncio.create_task(self._warm_up(), name="warm-up")

    async def _warm_up(self) -> None:
        """What the first run would otherwise pay for, done once the graph is built (not to
        slow the daemon's own start, which a client may be waiting on): the run's imports, the
        secret detectors, the cache's environment, the interpreter's description, then the
        pytest process of the first run. It starts after the daemon's first answer (or a run
        request), which it would otherwise slow."""
        try:
            graph = await self.workspace.ready()
            await self.app.first_answer()
            await asyncio.to_thread(_preload)
            await self.cache()
            await self.interpreter(graph)
        except Exception:  # the first run does it itself and reports what fails
            log.debug("warming up for the first run failed", exc_info=True)
        self._keep_standby(None)

    def _keep_standby(self, environ: Mapping[str, str] | None) -> None:
        """Start the next run's pytest process in the background, if none waits or starts."""
        if self._standby is not None or (self._standby_task and not self._standby_task.done()):
            return

        async def start() -> None:
            from maestro.engine.core import Engine

            try:
                warm = await asyncio.to_thread(
                    Engine.warm, self.root, environ=environ, likely_only=False
                )
            except Exception:  # the next run starts its own, as without one
                log.exception("cannot start a waiting pytest process")
                return
            if warm is not None:
                if self._standby is not None:
                    await asyncio.to_thread(warm.discard)
                else:
                    self._standby = warm

        self._standby_task = asyncio.create_task(start(), name="pytest-standby")

    async def _take_standby(self, interpreter: Interpreter) -> WarmPytest | None:
        """The waiting pytest process for a run of ``interpreter``, once it has imported pytest
        (the runner's checks read what it loaded); None if there is none for it."""
        warm, self._standby = self._standby, None
        if warm is None:
            return None
        if warm.python != interpreter.path:
            await asyncio.to_thread(warm.discard)
            return None
        await asyncio.to_thread(warm.describe, interpreter.path)
        return warm

    async def stop(self, app: DaemonApp) -> None:
        from maestro.tasks import cancel_and_wait

        for task in (self._standby_task, self._warming, self._retrace):
            await cancel_and_wait(task)
        if self._standby is not None:
            await asyncio.to_thread(self._standby.discard)
            self._standby = None
        if self._cache is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._cache.close)

    async def interpreter(
        self, graph: BuildGraph, environ: Mapping[str, str] | None = None
    ) -> Interpreter:
        """Resolved per request: a venv created or upgraded since the last run is picked up.
        ``environ``: the client's (its active venv, its PATH), else the daemon's own, which may
        be an editor's started from the desktop."""
        from maestro.engine.interpreter_cache import workspace_interpreter

        configured = self.settings(graph).interpreter
        return await asyncio.to_thread(
            workspace_interpreter, self.root, configured=configured, environ=environ
        )

    # --- stale / cache stats ---------------------------------------------------------------------

    async def stale(self, params: StaleParams, ctx: RequestContext) -> StaleResult:
        from maestro.engine.core import Engine

        graph = await self.workspace.ready()
        interpreter = await self.interpreter(graph)
        cache = await self.run_cache(graph, wait_remote=False)

        def answer(g: BuildGraph) -> StaleResult:
            found = Engine(g, cache, interpreter, self.fingerprints).stale(params.pytest_args)
            rows = [
                StaleFile(
                    target=f.target, reason=f.reason or "", changed=list(f.changed),
                    describe=f.describe(),
                )
                for f in found
            ]  # fmt: skip
            return StaleResult(stale=rows, tests=len(g.tests))

        return await self.workspace.query(answer, mutates=True)

    async def cache_stats(self, params: Empty, ctx: RequestContext) -> CacheStats:
        cache = await self.cache()
        return await asyncio.to_thread(cache.stats)

    # --- runs ------------------------------------------------------------------------------------

    async def run_tests(self, params: RunTestsParams, ctx: RequestContext) -> RunTestsResult:
        execution_id = uuid.uuid4().hex
        self.app.answered()  # the warm-up (its pytest process) serves this run: start it now
        policy = self.policy
        if policy is not None:  # may wait (queue) or raise PolicyDeniedError
            await policy.admit(
                execution_id, list(params.paths),
                on_queued=lambda n: asyncio.ensure_future(ctx.emit(RUN_QUEUED, RunQueued(ahead=n))),
            )  # fmt: skip
        try:
            return await self._queued(params, ctx, execution_id)
        finally:
            if policy is not None:
                await policy.finished(execution_id)

    async def _queued(
        self, params: RunTestsParams, ctx: RequestContext, execution_id: str
    ) -> RunTestsResult:
        from maestro.tasks import cancel_and_wait

        self.waiting += 1
        await cancel_and_wait(self._retrace)  # background work never delays a user's run
        ahead = self.active + self.waiting - 1
        spec = self.speculation
        chosen = bool(params.paths) and not (params.impacted or params.since or params.buffers)
        if spec is not None:  # no speculation the user does not need delays the run
            await spec.yield_to(params.paths, chosen=chosen, no_cache=params.no_cache)
        speculative = spec.running_files if spec is not None and self.run_lock.locked() else 0
        try:
            if ahead or speculative:
                await ctx.emit(RUN_QUEUED, RunQueued(ahead=ahead, speculative=speculative))
            await self.run_lock.acquire()
        finally:
            self.waiting -= 1
        self.active += 1
        try:
            return await self._run(params, ctx, execution_id)
        finally:
            self.active -= 1
            self.run_lock.release()

    async def _stop_when_idle(self, reason: str) -> None:
        """Stop the daemon once no request is in flight (this run's answer sent)."""
        while (server := self.app.server) is not None and server.in_flight:
            await asyncio.sleep(0.2)
        self.app.request_shutdown(reason)

    def _asker(self, ctx: RequestContext) -> Callable[[Sequence[str]], Awaitable[dict[str, str]]]:
        """How a run asks its client for the values of variables its `env` left out: an
        event, then the client's `provide_env` (only the names asked are taken; nothing after
        `ENV_ANSWER_S`: the run goes on without them, as it would for a client that does not
        answer)."""
        key = (ctx.connection.id, ctx.request_id)

        async def ask(names: Sequence[str]) -> dict[str, str]:
            answer: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
            self._env_asks[key] = answer
            try:
                if not await ctx.emit(RUN_ENV_WANTED, EnvWanted(names=sorted(names))):
                    return {}
                given = await asyncio.wait_for(answer, ENV_ANSWER_S)
            except TimeoutError:
                log.info("run %d: the client did not give the variables %s", self.runs, names)
                return {}
            finally:
                self._env_asks.pop(key, None)
            return {n: given[n] for n in names if n in given}

        return ask

    async def provide_env(self, params: ProvideEnvParams, ctx: RequestContext) -> Empty:
        from maestro.errors import InvalidParamsError

        answer = self._env_asks.get((ctx.connection.id, params.run))
        if answer is None or answer.done():
            raise InvalidParamsError(
                f"run {params.run} of this connection is not waiting for variables",
                hint="send provide_env once, after the run's run.env_wanted event",
            )
        answer.set_result(dict(params.env))
        return Empty()

    async def open_run(
        self, *, wait_remote: bool, environ: Mapping[str, str] | None = None
    ) -> Engine:
        """The engine of one run, explicit or speculative (the caller holds `run_lock`): a
        private graph, the workspace's interpreter (found in ``environ``), the run cache
        (waiting on the coordinator for a local miss or not) and the daemon's fingerprint
        store."""
        from maestro.engine.core import Engine

        self.workspace.check_disk_next()  # a save just before the run: the watcher may lag
        graph = await self._private_graph()
        interpreter = await self.interpreter(graph, environ)
        cache = await self.run_cache(graph, wait_remote=wait_remote)
        return Engine(graph, cache, interpreter, self.fingerprints)

    async def plan(
        self,
        engine: Engine,
        selection: Selection,
        environ: Mapping[str, str] | None,
        *,
        count: bool = True,
    ) -> Plan:
        """Plan off the event loop: keying every selected file hashes its inputs. ``count``:
        a run's plan (its cached files are the cache's hits).

        A file served from an earlier result (an edit undone) reads again what that run
        recorded: the plan puts those deps into the run's private graph, and they go to the
        shared graph too, as a plan without a daemon saves them. Left in the private copy only,
        the next plan would key the files collected with it (its import changes what they
        read) by the deps of its last run: they would miss at every run."""
        planned = await asyncio.to_thread(engine.plan, selection, environ=environ, count=count)
        dynamic = engine.graph.index.dynamic
        restored = {
            f.target: list(dynamic.get(f.target, ()))
            for f in planned.files
            if f.earlier and not f.runs and not f.promote and f.cached is not None
        }
        if restored:

            def record(g: BuildGraph) -> None:
                for target, deps in restored.items():
                    g.record_dynamic(target, deps)

            await self.workspace.query(record, mutates=True)
        return planned

    async def _private_graph(self) -> BuildGraph:
        """A private graph for a run: an in-memory copy of the shared graph once pending changes
        are applied (the query's stat pass or the watcher keep it fresh), which never writes the
        index, so the run's recordings and syntax checks cannot race the shared graph's saves."""

        def learned_copy(shared: BuildGraph) -> tuple[BuildGraph, bool]:
            # the files conftests collect, asked by an earlier run: the shared graph keeps them
            learned = shared.learn_known_collected()
            # and the variables its code reads: each copy's plan then finds every file known
            # (a copy's memo dies with it, so every run would read every Python file again)
            env = referenced_env(shared.root, shared.py, shared.index)
            return shared.copy(), learned or env.changed

        graph, learned = await self.workspace.query(learned_copy)
        if learned:
            await self.workspace.query(lambda _: None, mutates=True)
        return graph

    async def _run(
        self, params: RunTestsParams, ctx: RequestContext, execution_id: str = ""
    ) -> RunTestsResult:
        from maestro.engine.testing import Selection, planned_info, summary_result
        from maestro.redaction import Redactor

        self.runs += 1
        began = time.time()
        environ = params.env
        engine = await self.open_run(wait_remote=True, environ=environ)
        graph = engine.graph
        detached = await asyncio.to_thread(engine.cache.detached)
        if detached:  # the user deleted the cache to start afresh: serve nothing from it
            params = params.model_copy(update={"no_cache": True})
        changes = None
        if params.buffers is not None:
            from maestro.wire import ImpactedParams

            changes = tuple(await self.workspace.changes(ImpactedParams(buffers=params.buffers)))
        selection = Selection(
            paths=tuple(params.paths),
            impacted=params.impacted or params.since is not None or changes is not None,
            since=params.since,
            changes=changes,
            no_cache=params.no_cache,
            pytest_args=tuple(params.pytest_args),
        )
        planned = await self.plan(engine, selection, environ)
        selected = None
        if self.policy is not None:
            selected = await self.policy.select(engine, planned, selection, environ, execution_id)
            self._gate_cache(engine, execution_id, environ)
        order = None
        if self.speculation is not None:  # may serve fresh speculative failures as they are
            order = await self.speculation.before_run(graph, planned, environ)
        predictive = None
        if params.predictive:
            before = list(planned.files)
            predictive = await self._predictive(graph, planned, params.threshold)
            if self.policy is not None:
                predictive = await self.policy.never_skip(before, planned, predictive, execution_id)
        await ctx.emit(RUN_PLAN, RunPlanned(files=[planned_info(f) for f in planned.files]))
        log.info("run %d: %d files, %d to run", self.runs, len(planned.files), len(planned.to_run))
        queue: asyncio.Queue[RunProgress | None] = asyncio.Queue()
        forwarder = asyncio.create_task(self._forward(queue, ctx), name="run-progress")
        counts = _Counts()
        live = LiveEvents(Redactor.from_environ({**os.environ, **(environ or {})}))

        def on_event(event: Event) -> None:
            from maestro.engine.events import Collected, TestResult

            if isinstance(event, Collected):
                counts.total = len(event.nodeids)
            elif isinstance(event, TestResult):
                counts.done += 1
            data = live.dump(event)
            if data is not None:
                queue.put_nowait(RunProgress(done=counts.done, total=counts.total, event=data))

        warm = await self._take_standby(engine.interpreter) if planned.to_run else None
        try:
            summary = await engine.execute(
                planned, on_event=on_event, environ=environ, run_order=order, warm=warm,
                ask_env=self._asker(ctx) if params.answers_env else None,
            )  # fmt: skip
        finally:
            if warm is not None and warm.pid is not None:  # the run did not need it
                self._standby = warm
            self._keep_standby(environ)
            queue.put_nowait(None)
            try:
                await forwarder
            except asyncio.CancelledError:
                forwarder.cancel()
                raise
        await self.learn(summary)
        self._after_run(engine, summary, selection, environ)
        if self.speculation is not None:
            await self.speculation.after_run(graph, summary)
        # served results: dumped once; what pytest printed redacted with the run's secrets
        result = summary_result(summary, self._cache, live.redactor)
        if predictive is not None:
            # exit 5 ("no tests") is wrong when every file was predicted to pass and skipped
            code = 0 if result.exit_code == 5 and predictive.skipped else result.exit_code
            result = result.model_copy(update={"predictive": predictive, "exit_code": code})
        if self.policy is not None:
            from maestro.policy import quarantine

            result = quarantine.apply(result, selected)
            notes = self.policy.notes(execution_id)
            result = result.model_copy(update={"policy": notes})
        run_notes = list(result.notes)
        if self.sync is not None and (unused := self.sync.unusable_note(began)) is not None:
            run_notes.append(unused)
        if detached:
            run_notes.append(
                f"the cache at {engine.cache.path} was deleted while the daemon ran: this run "
                "served nothing from it, and the daemon stops once idle, so that the next "
                "command opens a new cache"
            )
            self._stopping = asyncio.create_task(self._stop_when_idle("its cache was deleted"))
        return result.model_copy(update={"execution_id": execution_id, "notes": run_notes})

    def _after_run(
        self,
        engine: Engine,
        summary: Summary,
        selection: Selection,
        environ: Mapping[str, str] | None,
    ) -> None:
        """Schedule the re-recording of the whole files this run stored (before 3.12 without
        line records, or untraced) or served untraced (a run without the daemon; once per key,
        so that a result the re-recording could not confirm is not tried again at every run).
        Not with ``retrace = false``."""
        from maestro.engine.retrace import not_wanted

        self._retrace_needless = not_wanted(engine, environ) or ""
        if self._retrace_needless or not self.settings(engine.graph).retrace:
            return
        for o in summary.files:
            if o.result is None or o.planned.nodes is not None:
                continue
            if o.stored and not o.cached:
                self._untraced.add(o.target)
                self._rerecord.add(o.target)
            elif o.cached and o.result.trace is None and o.planned.key.hex not in self._tried:
                self._untraced.add(o.target)
        if self._untraced and (self._retrace is None or self._retrace.done()):
            self._retrace = asyncio.create_task(
                self._retrace_idle(selection.pytest_args, environ), name="retrace"
            )

    async def _retrace_idle(
        self, pytest_args: tuple[str, ...], environ: Mapping[str, str] | None
    ) -> None:
        """Once idle, re-run the untraced files traced, at low priority, in the local cache only
        (a remote cache keeps what it was given); cancelled by the next explicit run. A
        background run for the policy: while it refuses (a closed run window), ask again when
        it says the answer may change. Held while a pytest run of the user's own goes on in the
        workspace, and stopped when one starts (daemon/foreign_runs.py): tests writing into
        the working tree would trip over each other."""
        delay = RETRACE_DELAY_S
        while True:
            await asyncio.sleep(delay)
            if self.active or self.waiting or not self._retrace_on():
                return
            held = await self._retrace_hold()
            if held is not None:
                why, delay = held
                if why != self._retrace_held:
                    log.info("re-recording untraced results held: %s", why)
                self._retrace_held = why
                continue
            self._retrace_held = ""
            if await self._retrace_once(pytest_args, environ):
                return
            delay = RETRACE_DELAY_S

    async def _retrace_hold(self) -> tuple[str, float] | None:
        """Why the re-recording must wait now, and how long before asking again."""
        refused = await self._retrace_refused()
        if refused is not None:
            why, retry_ms = refused
            wait = retry_ms / 1000 if retry_ms is not None else RETRACE_RETRY_S
            return f"policy: {why}", min(max(wait, RETRACE_DELAY_S), RETRACE_RETRY_S)
        foreign = await asyncio.to_thread(foreign_pytest, self.root)
        return None if foreign is None else (foreign.describe(), RETRACE_DELAY_S)

    async def _retrace_once(
        self, pytest_args: tuple[str, ...], environ: Mapping[str, str] | None
    ) -> bool:
        """Re-record the untraced files; False when a pytest run of the user's started in the
        workspace meanwhile: stopped before storing anything, to be tried again."""
        from maestro.engine.core import Engine
        from maestro.engine.retrace import retrace
        from maestro.tasks import cancel_and_wait

        try:
            self._retracing = True
            async with self.run_lock:
                targets, rerecord = sorted(self._untraced), set(self._rerecord)
                graph = await self._private_graph()
                interpreter = await self.interpreter(graph, environ)
                engine = Engine(graph, await self.cache(), interpreter, self.fingerprints)
                work = asyncio.ensure_future(
                    retrace(
                        engine, targets, pytest_args=pytest_args, environ=environ,
                        rerecord=rerecord,
                    )
                )  # fmt: skip
                try:
                    foreign = await self._foreign_during(work)
                finally:
                    if not work.done():
                        await cancel_and_wait(work)
                if foreign is not None:
                    log.info("re-recording stopped: %s", foreign.describe())
                    self._retrace_held = foreign.describe()
                    return False
                summary = work.result()
                self._untraced.difference_update(targets)
                self._rerecord.difference_update(rerecord)
                if summary is not None:
                    self._retrace_runs += 1
                    self._retrace_stored += sum(1 for o in summary.files if o.stored)
                    self._tried.update(o.planned.key.hex for o in summary.files)
                    await self.learn(summary)
        except asyncio.CancelledError:
            raise
        except Exception:  # the results stay as stored: file-level records
            log.exception("re-recording untraced results failed")
            self._untraced.clear()
            self._rerecord.clear()
        finally:
            self._retracing = False
        return True

    async def _foreign_during(self, work: asyncio.Future[Any]) -> ForeignRun | None:
        """Wait for `work`; a pytest run of the user's found in the workspace first."""
        while not work.done():
            found = await asyncio.to_thread(foreign_pytest, self.root)
            if found is not None:
                return found
            await asyncio.wait({work}, timeout=FOREIGN_POLL_S)
        return None

    def _retrace_on(self) -> bool:
        """The ``retrace`` setting as the workspace says now (on before the graph is read)."""
        graph = self.workspace.graph
        return graph is None or self.settings(graph).retrace

    async def _retrace_refused(self) -> tuple[str, int | None] | None:
        """The policy's refusal of a background run now, as speculation asks for its own."""
        if self.policy is None:
            return None
        return await self.policy.refuse_unattended(uuid.uuid4().hex, "background")

    def retrace_status(self) -> RetraceStatus:
        """`maestro status`: whether the re-recording is off, held by the policy, or at work."""
        enabled = self._retrace_on()
        pending = len(self._untraced)
        if not enabled:
            state, reason = "off", "retrace = false"
        elif self._retracing:
            state, reason = "running", ""
        elif self._retrace_held and pending:
            state, reason = "held", self._retrace_held
        elif self._retrace_needless:
            state, reason = "not needed", self._retrace_needless
        elif pending:
            state, reason = "waiting", ""
        else:
            state, reason = "idle", ""
        return RetraceStatus(
            enabled=enabled, state=state, reason=reason, pending=pending,
            runs=self._retrace_runs, stored=self._retrace_stored,
        )  # fmt: skip

    async def _predictive(
        self, graph: BuildGraph, planned: Plan, threshold: float | None
    ) -> PredictiveInfo:
        """Predictive mode (opt-in): skip files predicted to pass; say which and why."""
        if threshold is None:
            threshold = self.settings(graph).ml.predictive.threshold
        if self.speculation is None:
            note = "no ranking in this daemon: nothing skipped"
            return PredictiveInfo(threshold=threshold, model="none", note=note)
        return await self.speculation.predictive(graph, planned, threshold)

    def _gate_cache(
        self, engine: Engine, execution_id: str, environ: Mapping[str, str] | None
    ) -> None:
        """The policy's cache decisions for this run's results: stored here, uploaded."""
        from maestro.cache.remote import MirroredCache

        assert self.policy is not None
        gates = self.policy.cache_gate(execution_id, ci=bool((environ or {}).get("CI")))
        if gates is None:
            return
        engine.store_gate = gates[0]
        if isinstance(engine.cache, MirroredCache):
            engine.cache.upload_gate = gates[1]

    async def _forward(self, queue: asyncio.Queue[RunProgress | None], ctx: RequestContext) -> None:
        connected = True
        while (item := await queue.get()) is not None:
            if connected:
                connected = await ctx.emit(RUN_PROGRESS, item)

    async def learn(self, summary: Summary) -> None:
        """Copy the dynamic deps this run recorded into the shared graph."""
        report = summary.report
        if report is None or not report.file_deps:
            return
        from maestro.engine.testing import learn

        def record(g: BuildGraph) -> None:
            learn(g, report)

        await self.workspace.query(record, mutates=True)


class LiveEvents:
    """A run's plugin events as ``run.progress`` carries them: without captured output, and with
    what could hold a secret redacted, as the run's stored results are: a test result's message
    and, for a failed or errored test, pytest's report of it (``longrepr``: the traceback and the
    assertion diff, cut to its head and tail by the plugin); a collection error's message and
    report; the node ids of collected, started and finished tests (a parameter id can hold a
    secret), each to the id its stored result gets."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self._ids: dict[str, str] = {}

    def node_id(self, nodeid: str) -> str:
        found = self._ids.get(nodeid)
        if found is None:  # not collected (a result reported while collecting)
            found = self.redactor.redact(nodeid) if "[" in nodeid else nodeid
            self._ids[nodeid] = found
        return found

    def dump(self, event: Event) -> dict[str, Any] | None:
        """The event as a client gets it; None for the daemon's own bookkeeping (what tests
        executed and read, the session's end): no client shows it, it names tests by their raw
        ids and its function names are most of a run's events."""
        from maestro.engine.events import Collected, TestResult, TestStart
        from maestro.redact_many import redact_each

        if not isinstance(event, TestResult | TestStart | Collected):
            return None

        data: dict[str, Any] = event.model_dump(mode="json", exclude=_DROPPED_FIELDS)
        redactor = self.redactor
        if isinstance(event, TestResult):
            data["nodeid"] = self.node_id(event.nodeid)
            failed = event.outcome in ("failed", "error") and event.longrepr
            message, longrepr = redactor.redact_failure(
                event.message, event.longrepr if failed else None
            )
            data["message"] = message
            if longrepr is not None:
                data["longrepr"] = longrepr
        elif isinstance(event, TestStart):
            data["nodeid"] = self.node_id(event.nodeid)
        elif isinstance(event, Collected):
            ids = event.nodeids
            self._ids.update(zip(ids, redact_each(redactor, ids), strict=True))
            data["files"] = {
                path: [self._ids[i] for i in nodeids] for path, nodeids in event.files.items()
            }
            data["errors"] = [
                {"path": e.path, "message": message, "longrepr": longrepr}
                for e in event.errors
                for message, longrepr in (redactor.redact_failure(e.message, e.longrepr),)
            ]
        return data


def _preload() -> None:
    # what a run imports: the engine (runner, keys, cache, fingerprints), the cache gate, the
    # policy's run input and force-include rules
    import maestro.cache.remote
    import maestro.engine.changes
    import maestro.engine.testing
    import maestro.policy.windows  # noqa: F401
    from maestro.cache.action import ActionResult, TestOutcome
    from maestro.engine.events import prepare
    from maestro.redaction import preload
    from maestro.wire import (
        PlannedFileInfo,
        RunPlanned,
        RunProgress,
        RunTestsParams,
        RunTestsResult,
    )

    preload()
    # built on first use (a one-shot CLI builds them once pytest has its run): here, while idle;
    # the models a run validates or builds, from its request to its result
    prepare()
    for model in (
        ActionResult, TestOutcome, RunTestsParams, PlannedFileInfo, RunPlanned, RunProgress,
        RunTestsResult,
    ):  # fmt: skip
        model.model_rebuild(force=True)


def install(
    app: DaemonApp, workspace: WorkspaceService, sync: SyncService | None = None
) -> TestService:
    service = TestService(app, workspace, sync)
    service.policy = policy.install(app)
    app.provide(TestService, service, start=service.start, stop=service.stop)
    app.register(STALE, service.stale)
    app.register(RUN_TESTS, service.run_tests)
    app.register(PROVIDE_ENV, service.provide_env)
    app.register(CACHE_STATS, service.cache_stats)
    app.register(CACHED_RESULTS, functools.partial(cached_results, service))
    return service
