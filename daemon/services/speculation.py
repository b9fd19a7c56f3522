"""Telemetry of every run, fail-first ordering, and speculation after a save.

Why it is shaped this way:

- One model thread. The telemetry store (SQLite, one connection), the running `History` and the
  predictor live in a single-thread executor: sqlite3 connections belong to their thread, and
  `History` is mutated after each run while rankings read it. The event loop never blocks on them.
- Every run is recorded: explicit runs (through `TestService`) and speculative ones, with the
  files changed since the previous recorded run, per-test outcome and duration. The change set
  comes from the watcher's batches, the graph distances from the run's own graph.
- Fail-first: every run hands pytest its files most-likely-to-fail first (`rank` over the nodes
  the history knows of each file; the heuristic when no trusted model is stored).
- Speculation (``ml.speculation.enabled``, default off: with it off nothing below starts a
  process) runs after a save, once the edit has been quiet for ``delay-ms``: the impacted test
  files without a usable cached result, ranked, capped by ``max-files`` and by what is left of
  the CPU-seconds-per-minute budget, in at most ``max-concurrent`` pytest processes at ``nice``.
  It takes the same run lock as explicit runs, so a `maestro test` issued meanwhile waits for it
  and is then served from the cache: results are stored by `Engine.execute` exactly as for an
  explicit run. A run of named test files that does not ask for every file the speculation runs
  cancels it instead (a user never waits for work they did not ask for), and so does a
  ``--no-cache`` run; a run that waits for it raises its pytest's priority to the daemon's (or
  cancels it on a busy machine where that is not permitted). It never starts while an explicit
  run is active or queued, nor once it has the lock if one queued meanwhile.
- A newer save cancels a running speculation: asyncio cancellation terminates the pytest process
  group before anything is stored (`execute` stores only after pytest exits), so a superseded
  run leaves no partial result; `execute` also refuses to store files whose inputs changed while
  they ran.
- Accounting (per test file result): *hit* = an explicit run served a speculative result;
  *miss* = an explicit run had to run a file; *wasted* = a speculative result replaced before any
  explicit run used it (its key no longer matched, or a newer speculation re-ran the file), plus
  every cancelled speculation (its CPU, nothing to show). The `Tripwire` weighs them by CPU and
  throttles speculation when the unused share exceeds ``max-waste`` over ``waste-window-s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from maestro.config import SpeculationSettings
from maestro.daemon.foreign_runs import foreign_pytest
from maestro.model.metrics import Tripwire
from maestro.nodeids import file_of
from maestro.tasks import cancel_and_wait, first_of
from maestro.wire import SpeculationCounts, SpeculationStatus

if TYPE_CHECKING:
    from maestro.cache.action import ActionResult
    from maestro.daemon.app import DaemonApp
    from maestro.daemon.services.tests import TestService
    from maestro.daemon.services.workspace import WorkspaceService
    from maestro.engine.testing import Plan, PlannedFile, RunOrder, Summary
    from maestro.graph.build import BuildGraph
    from maestro.model.features import History
    from maestro.model.rank import FileDecision, Skipped
    from maestro.model.telemetry import ChangeSet, Telemetry
    from maestro.model.train import Predictor
    from maestro.wire import PredictiveInfo

log = logging.getLogger(__name__)

T = TypeVar("T")

_PYTEST_TEMP = "pytest-cache-files-"
"""pytest's temporary directory for .pytest_cache, created by every run: not an edit."""

DEFAULT_FILE_COST_S = 1.0
"""Estimated CPU-seconds of a test file the history has never seen (for the budget)."""


@dataclass(slots=True)
class _Outstanding:
    """A stored speculative result no explicit run has used yet."""

    key: str
    run_id: int
    tests: tuple[str, ...]
    cpu_s: float


@dataclass(frozen=True, slots=True)
class Ranking:
    files: list[tuple[str, float]]  # (test file, its highest P(fail)), most likely first
    tests: dict[str, float]  # P(fail) of the node ids the history knows in those files


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _outcome(raw: str) -> str:
    if raw in ("failed", "error"):
        return "failed"
    if raw in ("skipped", "xfailed"):
        return "skipped"
    return "passed"


LOAD_DELAY_S = 1.0  # after the daemon's first answer: the answers that follow it go first


class SpeculationService:
    """The workspace's run telemetry, its fail-first ranking and the speculator."""

    def __init__(self, app: DaemonApp, workspace: WorkspaceService, tests: TestService) -> None:
        self.app = app
        self.root: Path = app.root
        self.workspace = workspace
        self.tests = tests
        self.counters = SpeculationCounts()
        self.wasted_cpu_s = 0.0  # of the runs cancelled and the results replaced unused
        self.tripwire = Tripwire()
        self.settings = SpeculationSettings()
        self.generation = 0
        self.running_files = 0  # test files its pytest processes run now (a run waits on them)
        self._running: tuple[str, ...] = ()  # their targets
        self.model_kind = "heuristic"
        self.model_error = ""
        self._exec = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maestro-model")
        self._telemetry: Telemetry | None = None
        self._history: History | None = None
        self._predictor: Predictor | None = None
        self._loaded: asyncio.Task[None] | None = None
        self._wanted = asyncio.Event()  # set when a run or a save needs telemetry now
        self._changed: set[str] = set()  # since the previous recorded run (telemetry change set)
        self._unsettled: set[str] = set()  # since the last speculation that completed
        self._task: asyncio.Task[None] | None = None
        self._outstanding: dict[str, _Outstanding] = {}
        self._cpu_log: deque[tuple[float, float]] = deque()
        self._environ: Mapping[str, str] | None = None
        self._saved_at = 0.0
        self._throttle_logged = False

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self, app: DaemonApp) -> None:
        self._loaded = asyncio.create_task(self._load_after_graph(), name="model-load")

    async def _load_after_graph(self) -> None:
        """Telemetry and model load after the graph and its first answers, unless needed
        sooner: both need the GIL (replaying a long telemetry window, loading a trained model
        and numpy), and a restarted daemon's first answer must not wait for them."""
        with contextlib.suppress(Exception):  # a failed build is the graph's to report
            await self.workspace.ready()

        async def settled() -> None:
            await self.app.first_answer()
            await asyncio.sleep(LOAD_DELAY_S)

        await first_of(self._wanted.wait(), settled())
        await self._model(self._load)

    async def stop(self, app: DaemonApp) -> None:
        await self.cancel("daemon stopping")
        if self._loaded is not None and not self._loaded.done():
            self._loaded.cancel()
        with contextlib.suppress(Exception):
            await self._model(self._close)
        self._exec.shutdown(wait=False)

    async def _model(self, func: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._exec, func, *args)

    def _load(self) -> None:
        """Open telemetry, replay its window into a History, load the model (model thread)."""
        from maestro.model.features import History
        from maestro.model.team import ranking_model
        from maestro.model.telemetry import Telemetry
        from maestro.model.train import ModelStore, UntrustedModelError

        started = time.perf_counter()
        self._telemetry = Telemetry.for_workspace(self.root)
        history = History()
        runs = 0
        for run in self._telemetry.runs():
            history.observe(run.change, run.results, run.ts)
            runs += 1
        self._history = history
        source = ""
        try:
            # the team's model when one was fetched and passes its checks, else our own
            ranking = ranking_model(ModelStore.for_workspace(self.root).dir)
            self._predictor = ranking.predictor
            if ranking.note:
                self.model_error = ranking.note
            source = "team " if ranking.source == "team" else ""
        except UntrustedModelError as exc:
            self.model_error = exc.message
            log.warning("model refused, ranking with the heuristic: %s", exc.message)
        except Exception as exc:  # a broken model file must not stop the daemon
            self.model_error = f"{type(exc).__name__}: {exc}"
            log.exception("model could not be loaded; ranking with the heuristic")
        if self._predictor is not None:
            info = self._predictor.info
            self.model_kind = f"{source}{info.kind} v{info.version}"
        log.info(
            "telemetry: %d runs replayed in %.2fs; ranking with %s",
            runs, time.perf_counter() - started, self.model_kind,
        )  # fmt: skip

    def _close(self) -> None:
        if self._telemetry is not None:
            self._telemetry.close()

    async def _ready(self) -> bool:
        self._wanted.set()
        if self._loaded is None:
            self._loaded = asyncio.create_task(self._model(self._load), name="model-load")
        try:
            await asyncio.shield(self._loaded)
        except Exception:
            log.exception("telemetry could not be opened")
            return False
        return self._telemetry is not None and self._history is not None

    # --- saves -----------------------------------------------------------------------------------

    def on_paths(self, paths: set[str]) -> None:
        """Watcher batch (on the loop): supersede a running speculation, maybe start another."""
        paths = {p for p in paths if not p.startswith(_PYTEST_TEMP)}
        if not paths:
            return
        self._changed |= paths
        self._unsettled |= paths
        self.generation += 1
        self._saved_at = time.monotonic()
        self._refresh_settings()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            log.info("speculation cancelled: superseded by a newer edit")
        if not self.settings.enabled:
            return
        self._task = asyncio.create_task(self._speculate(self.generation), name="speculation")

    def _refresh_settings(self) -> None:
        graph = self.workspace.graph
        if graph is not None:
            self.settings = self.tests.settings(graph).ml.speculation

    async def cancel(self, why: str) -> None:
        task = self._task
        if task is not None and not task.done():
            log.info("speculation cancelled: %s", why)
            await cancel_and_wait(task)
            self.counters.last = f"cancelled: {why}"

    async def yield_to(self, paths: Sequence[str], *, chosen: bool, no_cache: bool) -> None:
        """An explicit run is about to wait for the run lock. A running speculation the user
        would wait for needlessly is cancelled: one with a file a run of chosen `paths` (test
        files, folders or node ids) did not ask for, or one whose results the run would not
        use (``no_cache``). Else the run waits and is served what the speculation stores: its
        pytest processes now run at the daemon's priority, not at the speculation's ``nice``
        (on a busy machine a niced run of 20 files took minutes where the user's own would
        take seconds); where the system refuses that (an unprivileged user may not lower a
        nice value) and the CPUs are busy, the speculation is cancelled instead and the run
        runs its files at once."""
        running = self._running
        if not running:
            return
        if chosen and not all(_asked(target, paths) for target in running):
            await self.cancel("an explicit run of other test files came")
        elif no_cache:
            await self.cancel("an explicit run with --no-cache came")
        elif not _promote() and _busy():
            await self.cancel("an explicit run came on a busy machine")

    def _cpu_last_minute(self, now: float) -> float:
        while self._cpu_log and self._cpu_log[0][0] < now - 60.0:
            self._cpu_log.popleft()
        return sum(c for _, c in self._cpu_log)

    def _skip(self, message: str) -> None:
        self.counters.skipped += 1
        self.counters.last = message
        log.info("speculation skipped: %s", message)

    async def _speculate(self, generation: int) -> None:
        settings = self.settings
        await asyncio.sleep(settings.delay_ms / 1000.0)
        if generation != self.generation:
            return
        self._configure_tripwire(settings)
        if not self.tripwire.allows():
            if not self._throttle_logged:
                log.warning("%s", self.tripwire.reason)
                self._throttle_logged = True
            self._skip(self.tripwire.reason)
            return
        self._throttle_logged = False
        remaining = settings.cpu_seconds_per_minute - self._cpu_last_minute(time.monotonic())
        if remaining <= 0:
            self._skip(f"CPU budget spent ({settings.cpu_seconds_per_minute:g} CPU-s per minute)")
            return
        if self.tests.active or self.tests.waiting:
            self._skip("an explicit run is active")
            return
        if (foreign := await asyncio.to_thread(foreign_pytest, self.root)) is not None:
            self._skip(foreign.describe())  # tests writing into the tree would trip each other
            return
        if not await self._ready():
            return
        policy, execution_id = self.tests.policy, uuid.uuid4().hex
        if policy is not None:  # run windows, caps and the budget apply to speculation too
            refused = await policy.refuse_speculation(execution_id, remaining)
            if refused:
                self._skip(f"policy: {refused}")
                return
        try:
            async with self.tests.run_lock:
                if generation != self.generation:
                    return
                if self.tests.waiting:  # it came while this waited for the lock: it goes first
                    self._skip("an explicit run is waiting")
                    return
                if not self.tripwire.allows():  # the run we waited for may have tripped it
                    self._skip(self.tripwire.reason)
                    return
                await self._speculate_locked(generation, settings, remaining)
        finally:
            if policy is not None:
                await policy.finished(execution_id)

    def _configure_tripwire(self, s: SpeculationSettings) -> None:
        tw = self.tripwire
        tw.max_waste, tw.window_s = s.max_waste, s.waste_window_s
        tw.min_events, tw.cooldown_s = s.min_events, s.cooldown_s

    async def _speculate_locked(
        self, generation: int, settings: SpeculationSettings, budget_s: float
    ) -> None:
        from maestro.engine.testing import Selection
        from maestro.errors import PytestUsageError, RunnerError
        from maestro.graph.build import Change

        tests = self.tests
        engine = await tests.open_run(wait_remote=False)
        graph = engine.graph
        paths = sorted(self._unsettled)
        changes = tuple(
            Change(p, "modified" if (self.root / p).exists() else "deleted") for p in paths
        )
        environ = self._environ
        selection = Selection(impacted=True, changes=changes)
        # a look ahead, not a run: the user's next run counts what it serves
        planned = await tests.plan(engine, selection, environ, count=False)
        engine.promote(planned)
        to_run = planned.to_run
        if not to_run:
            self._unsettled.difference_update(paths)
            self.counters.last = "nothing to speculate: every impacted file is cached"
            return
        ranking = await self._rank_files(
            graph, [f.target for f in to_run], executed_of(to_run), symbols_of(to_run)
        )
        chosen = self._within_budget(ranking.files, settings, budget_s)
        by_target = {f.target: f for f in to_run}
        files = [by_target[t] for t, _ in chosen]
        order = self._order(graph, ranking, (t for t, _ in chosen))
        if tests.waiting:  # an explicit run came while this planned: it runs these files itself
            self._skip("an explicit run is waiting")
            return
        n = max(1, min(settings.max_concurrent, len(files)))
        chunks = [files[i::n] for i in range(n)]
        sub = [replace(planned, files=chunk, background=True) for chunk in chunks]
        log.info(
            "speculating on %d of %d stale impacted file(s) after %d changed path(s): %s",
            len(files), len(to_run), len(paths), ", ".join(t for t, _ in chosen[:5]),
        )  # fmt: skip
        saved_at = self._saved_at
        first_failure: list[float] = []

        def on_event(event: Any) -> None:
            from maestro.engine.events import TestResult as Result

            failing = isinstance(event, Result) and event.outcome in ("failed", "error")
            if failing and not first_failure:
                first_failure.append(time.monotonic() - saved_at)

        cpu_before = _children_cpu()
        self.running_files = len(files)
        self._running = tuple(f.target for f in files)
        try:
            summaries = await asyncio.gather(
                *(
                    engine.execute(
                        p, on_event=on_event, environ=environ, run_order=order,
                        nice=settings.nice,
                    )
                    for p in sub
                )
            )  # fmt: skip
        except asyncio.CancelledError:
            cpu = max(0.0, _children_cpu() - cpu_before)
            self._spent(cpu)
            self.counters.cancelled += 1
            self.wasted_cpu_s += cpu
            self.tripwire.record(False, cpu)
            self.counters.last = "cancelled: superseded by a newer edit"
            raise
        except (RunnerError, PytestUsageError) as exc:
            # pytest did not start on the workspace as it is (a module it imports at start-up
            # raises, a conftest fails to import): the user's code, which an explicit run
            # reports; not a fault of the daemon
            reason = " ".join(str(exc).split())
            log.warning("speculative run did not start pytest: %s", reason)
            self.counters.last = f"pytest did not start: {reason}"[:500]
            return
        except Exception:
            log.exception("speculative run failed")
            self.counters.last = "speculative run failed (see the log)"
            return
        finally:
            self.running_files = 0
            self._running = ()
        cpu = sum(s.report.cpu_s for s in summaries if s.report is not None)
        self._spent(cpu)
        if first_failure:
            self.counters.first_failure_s = [*self.counters.first_failure_s[-49:], first_failure[0]]
        if generation == self.generation:
            self._unsettled.difference_update(paths)
        # Bookkeeping first, without awaiting: a save arriving during the awaits below must not
        # leave stored results unaccounted.
        fresh: list[_Outstanding] = []
        total_wall = sum(o.result.timing.wall_s for s in summaries for o in s.files if o.result)
        for summary in summaries:
            for o in summary.files:
                if not o.stored or o.result is None or o.cached:
                    continue
                share = (o.result.timing.wall_s / total_wall) if total_wall else 1 / len(files)
                old = self._outstanding.get(o.target)
                if old is not None:
                    self._waste(o.target, old)
                stored = planned.last.get(o.target)  # the post-run key execute stored under
                entry = _Outstanding(
                    stored[0] if stored is not None else o.planned.key.hex,
                    0,
                    tuple(t.node_id for t in o.result.tests),
                    cpu * share,
                )
                self._outstanding[o.target] = entry
                fresh.append(entry)
        self.counters.runs += 1  # a status poll sees the run with its results
        for summary in summaries:
            await tests.learn(summary)
        run_id = await self._record(graph, summaries, kind="speculative")
        for entry in fresh:
            entry.run_id = run_id
        failed = sum(s.failed + s.errors for s in summaries)
        self.counters.last = (
            f"speculated {len(files)} file(s): {failed} failing test(s), {cpu:.1f} CPU-s"
        )
        log.info("speculation done: %s", self.counters.last)

    def _spent(self, cpu: float) -> None:
        self._cpu_log.append((time.monotonic(), cpu))
        self.counters.cpu_s += cpu

    def _waste(self, target: str, entry: _Outstanding) -> None:
        self.counters.wasted += 1
        self.wasted_cpu_s += entry.cpu_s
        self.tripwire.record(False, entry.cpu_s)
        log.debug("speculative result for %s replaced unused", target)

    def _within_budget(
        self, ranked: Sequence[tuple[str, float]], s: SpeculationSettings, budget_s: float
    ) -> list[tuple[str, float]]:
        """The top of the ranking that fits the file cap and the CPU left this minute."""
        history = self._history
        out: list[tuple[str, float]] = []
        spent = 0.0
        for target, p in ranked:
            if s.max_files and len(out) >= s.max_files:
                break
            cost = DEFAULT_FILE_COST_S
            if history is not None:
                known = [
                    st.mean_ms for t, st in history.tests.items() if t.startswith(target + "::")
                ]
                if known:
                    cost = sum(known) / 1000.0 + 0.3  # + collection and start-up
            if out and spent + cost > budget_s:
                break
            out.append((target, p))
            spent += cost
        return out

    # --- ranking ---------------------------------------------------------------------------------

    async def _rank_files(
        self,
        graph: BuildGraph,
        targets: Sequence[str],
        executed: Mapping[str, int] | None = None,
        symbols: Sequence[str] = (),
    ) -> Ranking:
        """Test files most-likely-to-fail first (the max P(fail) over their known nodes), and
        the known nodes themselves in the same order."""
        if not targets:
            return Ranking([], {})
        changed = sorted(self._changed)

        def work() -> Ranking:
            from maestro.model.rank import known_nodes, rank

            history = self._history
            if history is None:
                return Ranking([(t, 0.0) for t in targets], {})
            change = _change_set(graph, changed, symbols, executed)
            if not history.tests and not _tells_apart(change):
                # every test's features would be the same, and so its place: the plan's order,
                # without loading the features' numpy on a run's way (a daemon's first run)
                return Ranking([(t, 0.0) for t in targets], {})
            known = known_nodes(history, targets)
            nodes = [n for ns in known.values() for n in ns]
            nodes += [t for t in targets if t not in known]
            best: dict[str, float] = {}
            scores: dict[str, float] = {}
            for r in rank(nodes, change, history, self._predictor):
                target = file_of(r.test)
                best[target] = max(best.get(target, 0.0), r.probability)
                if r.test != target:
                    scores[r.test] = r.probability
            files = sorted(((t, best.get(t, 0.0)) for t in targets), key=lambda x: -x[1])
            return Ranking(files, scores)

        try:
            result: Ranking = await self._model(work)
        except Exception:
            log.exception("ranking failed; keeping the plan's order")
            return Ranking([(t, 0.0) for t in targets], {})
        return result

    def _order(self, graph: BuildGraph, ranking: Ranking, files: Iterable[str]) -> RunOrder | None:
        """The fail-first order handed to `execute` under the workspace's ``ml.fail-first``:
        files and the tests inside them ("tests"), the files only ("files"), or none ("off")."""
        from maestro.engine.testing import RunOrder

        mode = self.tests.settings(graph).ml.fail_first
        if mode == "off":
            return None
        wanted = set(files)
        order = tuple(t for t, _ in ranking.files if t in wanted)
        if mode != "tests":
            return RunOrder(order)
        tests = {n: p for n, p in ranking.tests.items() if file_of(n) in wanted}
        return RunOrder(order, tests)

    # --- explicit runs ---------------------------------------------------------------------------

    async def before_run(
        self, graph: BuildGraph, planned: Plan, environ: Mapping[str, str] | None
    ) -> RunOrder | None:
        """An explicit run was planned: account hits and misses, return the fail-first order."""
        if environ is not None:
            self._environ = dict(environ)
        self._refresh_settings()
        on = self.settings.enabled
        used: list[tuple[_Outstanding, str]] = []
        for f in planned.files:
            entry = self._outstanding.get(f.target)
            if entry is not None:
                fresh = f.cached is not None and entry.key == f.key.hex
                if fresh and f.reason == "failed last time" and _failed_in_tests(f.cached):
                    # Re-running failures guards against stale ones; this one was produced
                    # for exactly these inputs after the last save: serve it. Not an error
                    # (a fixture's or a plugin's, a collection's): what raised it may be the
                    # machine of that moment (a file another process held or deleted), which
                    # the key does not cover; the erring tests run again as any cached one's.
                    f.reason, f.run_nodes, f.carried, f.node_reasons = None, None, None, {}
                if fresh and not f.runs:
                    used.append((entry, f.target))
                    del self._outstanding[f.target]
                    self.counters.hits += 1
                    self.tripwire.record(True, entry.cpu_s)
                elif f.key.hex != entry.key:
                    del self._outstanding[f.target]
                    self._waste(f.target, entry)
            if on and f.runs and self._changed:  # a save since the last explicit run
                self.counters.misses += 1
        if used and await self._ready():

            def mark() -> None:
                assert self._telemetry is not None
                for entry, _ in used:
                    self._telemetry.mark_used(entry.run_id, entry.tests)

            try:
                await self._model(mark)
            except Exception:
                log.exception("could not mark speculative results used")
            log.info(
                "%d speculative result(s) served: %s",
                len(used), ", ".join(t for _, t in used[:5]),
            )  # fmt: skip
        to_run = [f.target for f in planned.to_run]
        if not to_run or not await self._ready():
            return None
        executed, symbols = executed_of(planned.to_run), symbols_of(planned.to_run)
        ranking = await self._rank_files(graph, to_run, executed, symbols)
        return self._order(graph, ranking, to_run)

    async def predictive(
        self, graph: BuildGraph, planned: Plan, threshold: float
    ) -> PredictiveInfo:
        """Predictive mode: drop from `planned` the files to run whose P(fail) < threshold, and
        inside the others deselect the tests below it (`select_tests`: those files' results are
        then not cached, since the deselected tests have none).

        Conservative (`select_files`): a file that failed last time, has no history or itself
        changed always runs; without telemetry nothing is skipped. The change is what the
        watcher saw since the last recorded run plus the inputs the plan found changed."""
        from maestro.wire import PredictiveFile, PredictiveInfo, PredictiveTest

        to_run = [f.target for f in planned.to_run]
        if not to_run:
            return PredictiveInfo(threshold=threshold, model=self.model_kind)

        def nothing_skipped(note: str) -> PredictiveInfo:
            kept = [PredictiveFile(target=t, probability=1.0, reason=note) for t in to_run]
            return PredictiveInfo(threshold=threshold, model=self.model_kind, kept=kept, note=note)

        if not await self._ready():
            return nothing_skipped("no telemetry to predict from: nothing skipped")
        changed = sorted(self._changed | {c for f in planned.to_run for c in f.changed})
        failed_last = [f.target for f in planned.to_run if f.reason == "failed last time"]
        executed, symbols = executed_of(planned.to_run), symbols_of(planned.to_run)

        # what each file would run: the node-level plan's nodes, the user's node ids, or all
        run_nodes = {f.target: f.run_nodes or f.nodes for f in planned.to_run}

        def work() -> tuple[list[FileDecision], dict[str, list[Skipped]]]:
            from maestro.model.rank import known_nodes, select_files, select_tests

            history = self._history
            assert history is not None
            change = _change_set(graph, changed, symbols, executed)
            files = select_files(
                to_run, change, history, threshold, self._predictor, failed_last=failed_last
            )
            # inside the files that run: the tests this run would execute that the history knows
            kept = [d.target for d in files if d.runs]
            candidates = known_nodes(history, kept)
            candidates.update((t, list(n)) for t in kept if (n := run_nodes[t]) is not None)
            tests = select_tests(
                candidates, change, history, threshold, self._predictor, changed_files=changed
            )
            return files, tests

        try:
            decisions, inside = await self._model(work)
        except Exception:
            log.exception("predictive ranking failed; running every selected file")
            return nothing_skipped("ranking failed (see the daemon log): nothing skipped")
        rows = {
            d.target: PredictiveFile(target=d.target, probability=d.probability, reason=d.reason)
            for d in decisions
        }
        skip = {d.target for d in decisions if not d.runs}
        planned.files = [f for f in planned.files if f.target not in skip]
        for f in planned.files:
            if f.target in inside:
                f.deselect = tuple(s.test for s in inside[f.target])
        skipped_tests = sorted(
            (
                PredictiveTest(node_id=s.test, probability=s.probability, reason=s.reason)
                for ss in inside.values()
                for s in ss
            ),
            key=lambda r: (-r.probability, r.node_id),
        )
        info = PredictiveInfo(
            threshold=threshold,
            model=self.model_kind,
            kept=[rows[d.target] for d in decisions if d.runs],
            skipped=sorted((rows[t] for t in skip), key=lambda r: -r.probability),
            skipped_tests=skipped_tests,
        )
        log.info("predictive mode: %s", info.summary())
        return info

    async def after_run(self, graph: BuildGraph, summary: Summary) -> None:
        """Record an explicit run's executed tests in telemetry."""
        if await self._ready():
            await self._record(graph, [summary], kind="explicit")

    async def _record(self, graph: BuildGraph, summaries: Sequence[Summary], *, kind: str) -> int:
        from maestro.model.telemetry import TestResult as Row

        rows: list[Row] = []
        for summary in summaries:
            for o in summary.files:
                if o.cached or o.result is None:
                    continue
                rows.extend(
                    Row(t.node_id, _outcome(t.outcome), t.duration_s)  # type: ignore[arg-type]
                    for t in o.result.tests
                )
        changed = sorted(self._changed)
        executed = executed_of(o.planned for summary in summaries for o in summary.files)
        symbols = symbols_of(o.planned for summary in summaries for o in summary.files)
        if kind == "explicit":
            self._changed.clear()
        if not rows:
            return 0

        def work() -> int:
            assert self._telemetry is not None and self._history is not None
            change = _change_set(graph, changed, symbols, executed)
            now = time.time()
            run_id = self._telemetry.record_run(change, rows, kind=kind, ts=now)  # type: ignore[arg-type]
            self._history.observe(change, rows, now)
            return run_id

        try:
            run_id: int = await self._model(work)
        except Exception:
            log.exception("could not record the run's telemetry")
            return 0
        return run_id

    # --- status ----------------------------------------------------------------------------------

    def status(self) -> SpeculationStatus:
        self._refresh_settings()
        c = self.counters
        tw = self.tripwire.status()
        resolved = c.hits + c.wasted
        running = self._task is not None and not self._task.done()
        state = "off"
        if self.settings.enabled:
            state = "throttled" if tw["throttled"] else ("running" if running else "idle")
        return SpeculationStatus(
            enabled=self.settings.enabled,
            state=state,
            throttled_reason=str(tw["reason"]),
            model=self.model_kind,
            model_error=self.model_error,
            pending=len(self._outstanding),
            used_share=(c.hits / resolved) if resolved else None,
            waste_share=(self.wasted_cpu_s / c.cpu_s) if c.cpu_s > 0 else None,
            cpu_last_minute_s=self._cpu_last_minute(time.monotonic()),
            **dict(c),
        )


def executed_of(files: Iterable[PlannedFile]) -> dict[str, int]:
    """Test node -> 1 if its last execution record ran a changed function, 0 if its record did
    not; nodes without a usable record are absent (the `executed_change` feature). Taken from
    the node-level plan (`node_level.node_reasons`), which already diffed the records."""
    out: dict[str, int] = {}
    for f in files:
        for node, why in f.node_reasons.items():
            if why.startswith("executed "):
                out[node] = 1
            elif why not in ("failed last time", "has no execution record"):
                out[node] = 0
        if f.carried is not None:
            for t in f.carried.tests:
                if t.executed is not None and t.outcome not in ("failed", "error"):
                    out.setdefault(t.node_id, 0)
    return out


def symbols_of(files: Iterable[PlannedFile]) -> list[str]:
    """The functions and classes changed in the run's inputs (the plan diffed fingerprints)."""
    return sorted({s for f in files for s in f.symbols})


def _change_set(
    graph: BuildGraph,
    changed: Sequence[str],
    symbols: Sequence[str],
    executed: Mapping[str, int] | None,
) -> ChangeSet:
    """The change a ranking and a telemetry row see (an empty one when nothing is known)."""
    if not changed and not symbols:
        return _empty_change()
    from maestro.model.features import change_from_graph

    return change_from_graph(graph, changed, symbols, executed)


def _tells_apart(change: ChangeSet) -> bool:
    """Whether ``change`` gives some tests other features than others (without history)."""
    return bool(
        change.files or change.symbols or change.distances or change.closure_hits
        or change.executed
    )  # fmt: skip


def _empty_change() -> ChangeSet:
    from maestro.model.telemetry import ChangeSet

    return ChangeSet(())


def install(app: DaemonApp, workspace: WorkspaceService, tests: TestService) -> SpeculationService:
    service = SpeculationService(app, workspace, tests)
    app.provide(SpeculationService, service, start=service.start, stop=service.stop)
    workspace.listeners.append(service.on_paths)
    tests.speculation = service
    return service


def _failed_in_tests(result: ActionResult | None) -> bool:
    """Whether every failure of ``result`` is a test's own (pytest's "failed"), none an error."""
    return result is not None and not any(t.outcome == "error" for t in result.tests)


def _promote() -> bool:
    """Run this process's niced pytest groups (a speculation's, a re-recording's: children that
    lead their own group) at this process's priority; whether every one of them now does."""
    own = os.getpriority(os.PRIO_PROCESS, 0)
    promoted = True
    for group in _niced_groups(own):
        try:
            os.setpriority(os.PRIO_PGRP, group, own)
        except OSError:  # not permitted, or the group is gone
            promoted = promoted and not _exists(group)
    return promoted


def _niced_groups(own: int) -> list[int]:
    """This process's children that lead a process group and run at a lower priority than it
    (Linux's /proc; none elsewhere)."""
    parent, found = os.getpid(), []
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            # after the name: state ppid pgrp session tty tpgid flags ... nice (the 19th field)
            ppid, pgrp, nice = int(fields[1]), int(fields[2]), int(fields[16])
            if ppid == parent and pgrp == int(name) and nice > own:
                found.append(pgrp)
    return found


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _busy() -> bool:
    """Whether the CPUs are contended, so that a niced process runs slower than the user's."""
    try:
        return os.getloadavg()[0] >= (os.cpu_count() or 1)
    except OSError:
        return True


def _asked(target: str, paths: Sequence[str]) -> bool:
    """Whether a run of `paths` (relative to the root) runs test file `target` or tests of it."""
    for path in paths:
        path = path.split("::", 1)[0].removeprefix("./").rstrip("/")
        if path in ("", ".") or target == path or target.startswith(path + "/"):
            return True
    return False
