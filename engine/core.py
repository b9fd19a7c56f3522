"""The engine's one entry point: a workspace's graph, cache and interpreter, and what runs on them.

Both callers drive the same pipeline (plan, then execute) through this object: the CLI without a
daemon opens one for the command (`Engine.open`), and the daemon's test service builds one per
run over a private copy of its graph, its shared (maybe mirrored) cache and its fingerprint
store, which the engine must not close.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maestro.engine.warm import ALL_CACHED as ALL_CACHED

if TYPE_CHECKING:
    import asyncio

    from maestro.cache.store import Cache
    from maestro.engine.events import Event
    from maestro.engine.interpreter import Interpreter
    from maestro.engine.runner import RunReport, WarmPytest
    from maestro.engine.testing import Plan, PlannedFile, RunOrder, Selection, Summary
    from maestro.graph.build import BuildGraph
    from maestro.graph.fingerprints import FingerprintStore


AskEnv = Callable[[Sequence[str]], Awaitable[Mapping[str, str]]]
"""Given the names of variables a run's environment left out, their values where known."""

# What a run imports between its plan and the hand-over of its pytest process (the event loop),
# imported while that process still imports pytest, when this one would only wait for it. The
# events' and results' models (pydantic, several times longer to import) stay in the thread that
# loads them during the run: a process ready in the middle of that import would wait for it.
_HAND_OVER_IMPORTS = ("asyncio", "maestro.engine.bytecode")


def _prepare_while_waiting(warm: WarmPytest, graph: BuildGraph) -> None:
    """Until ``warm``'s process is ready for its run: import the hand-over's modules, then read
    what the plan reads that its interpreter's description does not change (the environment's
    distributions, the environment names the code reads; the plan finds both remembered)."""
    import importlib

    for name in _HAND_OVER_IMPORTS:
        if warm.ready():
            return
        importlib.import_module(name)
    if warm.ready():
        return
    graph.distributions()
    if warm.ready():
        return
    from maestro.engine.testing import env_allowlist_of

    env_allowlist_of(graph)


@dataclass(slots=True)
class Engine:
    """One workspace's test engine. ``fingerprints`` None: the plan opens the workspace's store."""

    graph: BuildGraph
    cache: Cache
    interpreter: Interpreter
    fingerprints: FingerprintStore | None = None
    store_gate: Callable[[PlannedFile], bool] | None = None  # the policy's cache decision

    @classmethod
    def open(cls, root: Path, *, warm: WarmPytest | None = None) -> Engine:
        """The graph from its saved index, the user's cache and the configured interpreter.
        The engine owns that cache: close it (`contextlib.closing`). ``warm``'s process, if it
        runs the interpreter, describes it (no query process on a first run)."""
        from maestro.cache import Cache
        from maestro.engine.interpreter_cache import workspace_interpreter
        from maestro.graph.build import BuildGraph
        from maestro.paths import graph_index_path

        graph = BuildGraph.build(root, index_path=graph_index_path(root))
        # with `warm`, opened first: the interpreter may wait for that process's description
        cache = Cache.open() if warm is not None else None
        try:
            if warm is not None:
                _prepare_while_waiting(warm, graph)
            interpreter = workspace_interpreter(
                root,
                configured=graph.loaded.config.interpreter,
                describe=warm.describe if warm is not None else None,
            )
        except BaseException:
            if cache is not None:
                cache.close()
            raise
        return cls(graph, cache if cache is not None else Cache.open(), interpreter)

    def close(self) -> None:
        self.cache.close()

    @staticmethod
    def warm(
        root: Path, *, environ: Mapping[str, str] | None = None, likely_only: bool = True
    ) -> WarmPytest | None:
        """Start the pytest process of a run about to be planned (``start_warm`` in
        maestro/engine/warm.py); None when it cannot be, or (``likely_only``) when the last
        in-process run was served whole from the cache: the run then starts its own."""
        from maestro.engine.warm import start_warm

        return start_warm(root, environ=environ, likely_only=likely_only)

    def plan(
        self, selection: Selection, *, environ: Mapping[str, str] | None = None, count: bool = True
    ) -> Plan:
        """``count``: a run's plan, counted as the cache's hits and misses."""
        from maestro.engine.testing import plan

        return plan(
            self.graph, self.cache, self.interpreter, selection, environ=environ,
            fingerprints=self.fingerprints, count=count,
        )  # fmt: skip

    def promote(self, planned: Plan) -> None:
        """Store the plan's node-level hits under their new keys (`execute` does it too)."""
        from maestro.engine.testing import promote

        promote(self.cache, planned)

    async def execute(
        self,
        planned: Plan,
        *,
        on_event: Callable[[Event], None] | None = None,
        environ: Mapping[str, str] | None = None,
        run_order: RunOrder | None = None,
        nice: int = 0,
        warm: WarmPytest | None = None,
        agree: bool = False,
        ask_env: AskEnv | None = None,
        on_started: Callable[[], None] | None = None,
    ) -> Summary:
        """Run the plan's non-cached files in one pytest process, store their results, summarise.

        ``environ`` is the environment the allowlisted variables are taken from (default: this
        process's); the daemon passes its client's so results match an in-process run.
        ``run_order`` orders the files on pytest's command line and, by its tests' scores, the
        tests inside each file (fail-first; the summary keeps the plan's order); ``nice`` lowers the
        child's priority; ``warm`` is a process started for this run (``Engine.warm``);
        ``agree``: store only results whose outcomes are the cached ones (`store_results`);
        ``ask_env``: how the values of variables ``environ`` left out (the daemon's client has
        them) are asked for when a test file turns out to read one; ``on_started``: called once
        the first pytest process has its run."""
        import asyncio  # not at the top: `Engine.warm` starts pytest before asyncio is imported

        from maestro.engine.bytecode import drop_ambiguous_bytecode
        from maestro.engine.runner import run_pytest
        from maestro.engine.testing import (
            UNTRACED,
            FileOutcome,
            PlannedFile,
            changed_during_run_note,
            collect_only,
            confirm_until,
            confirmation_notes,
            failed_in_part,
            key_context,
            maxfail_of,
            passed_alone,
            prefetch_fingerprints,
            preload_models,
            promote,
            ran_polluters,
            repollute,
            store_results,
            subtests_shown,
            summarise,
            timed_out,
            trace_env,
            until_stopped,
            with_companions,
            withheld_notes,
            withheld_reads,
        )
        from maestro.graph.pytest_config import walk_args
        from maestro.redaction import Redactor
        from maestro.redaction import preload as preload_redaction

        # what a file not selected runs for (a run polluter) is not the user's run: not shown
        unshown = {f.target for f in planned.files if f.companion}
        if unshown and on_event is not None:
            on_event = _without(on_event, unshown)

        outcomes: list[FileOutcome] = [FileOutcome(f, f.cached, True) for f in planned.cached]
        promote(self.cache, planned)
        report: RunReport | None = None
        confirmed: list[str] = []  # what whole-file confirmations said
        environment: list[str] = []  # files that read a variable pytest did not get
        confirming_s = 0.0  # the time pytest took for them and any other run after the first
        to_run = planned.to_run
        if to_run:
            # Each file is its own action: one file's collection error must not abort the others.
            args: list[str] = ["--continue-on-collection-errors", *planned.pytest_args]
            # a polluter stays before the files it is collected before (engine/pollution.py)
            known, running = planned.polluters, {f.target for f in to_run}
            polluting = (
                planned.collect_only
                or bool(ran_polluters(to_run, known))
                or (
                    known is not None
                    and any(
                        f.target in known.files or known.before(f.target, running) for f in to_run
                    )
                )
            )
            if run_order is not None and run_order.files and not polluting:
                rank = {t: i for i, t in enumerate(run_order.files)}
                # the files it does not rank keep pytest's order, after those it does
                to_run = sorted(
                    to_run,
                    key=lambda f: (rank.get(f.target, len(rank)), planned.order.key(f.target)),
                )
            # state polluters are collected with the files that run, their tests deselected
            named, companions, only = with_companions(to_run, planned.collect_only, planned.order)
            args.extend(walk_args(named, self.graph.pytest, self.graph.tests, planned.pytest_args))
            started = datetime.now(UTC)
            planned.digests.freeze()
            # Fingerprinting the inputs (the next diff's baseline) costs about as much as a short
            # suite: do it while pytest runs; store_results then finds them (and adds the
            # dynamic inputs).
            # the secrets of the environment the tests run in, and of this process's
            redactor = Redactor.from_environ({**os.environ, **(environ or {})})
            # Both threads start once pytest has its run: started before, they hold the GIL
            # while this thread reaps orphans and hands the waiting process its run.
            background: list[asyncio.Future[None]] = []

            def begin_background() -> None:
                if on_started is not None:
                    on_started()
                keys = [f.key for f in to_run]
                background.append(_aside(prefetch_fingerprints, planned, keys, redactor))
                background.append(_aside(preload_redaction))
                background.append(_aside(preload_models))

            # the tests must run the code the key was computed from
            sources = {rel: entry.mtime_ns for rel, entry in self.graph.py.items()}
            await asyncio.to_thread(drop_ambiguous_bytecode, str(self.graph.root), sources)
            report = await run_pytest(
                self.graph.root,
                self.interpreter,
                args,
                on_event=on_event,
                env_allowlist=planned.env_allowlist,
                environ=environ,
                nice=nice,
                test_scores=run_order.tests if run_order is not None else {},
                extra_env=trace_env(self.interpreter, planned, to_run, environ),
                deselect=[n for f in to_run for n in f.deselect] + companions,
                only=only,
                warm=warm,
                on_started=begin_background,
                background=planned.background,
            )
            for job in background:
                await job
            traced = trace_env(self.interpreter, planned, to_run, environ) != UNTRACED

            async def run_again(
                files: list[PlannedFile],
                names: list[str],
                deselect: list[str],
                until: Sequence[str] = (),
                *,
                only: Sequence[str] = (),
                untraced: bool = False,
                plan: Plan = planned,
                env: Mapping[str, str] | None = environ,
            ) -> list[FileOutcome]:
                """Another pytest process of this run, for `files` (collected with `names`,
                `deselect`ed, each file stopped after the last of `until` in it, of the files
                `only` names tests of those tests): its results stored as the first run's are
                (or as `plan` says: more variables passed), its time counted in the run's, and
                its report the run's when it was interrupted or broke; ``env``: the environment
                its variables come from (the first run's, or more)."""
                nonlocal report, confirming_s
                again = await run_pytest(
                    self.graph.root, self.interpreter,
                    ["--continue-on-collection-errors", *plan.pytest_args,
                     *walk_args(names, self.graph.pytest, self.graph.tests, plan.pytest_args)],
                    on_event=on_event, env_allowlist=plan.env_allowlist, environ=env,
                    nice=nice, deselect=deselect, until=until, only=only,
                    extra_env=UNTRACED if untraced else trace_env(
                        self.interpreter, plan, files, env
                    ),
                    background=plan.background,
                )  # fmt: skip
                secrets = redactor if env is environ else Redactor.from_environ(
                    {**os.environ, **(env or {})}
                )  # fmt: skip
                stored = store_results(
                    self.graph, self.cache, plan, files, again, started, secrets,
                    keep=self.store_gate, agree=agree,
                )  # fmt: skip
                confirming_s += again.wall_s
                if again.exit_code < 0 or again.exit_code in (2, 3):  # 4 raises in run_pytest
                    report = again
                return stored

            fresh = store_results(
                self.graph, self.cache, planned, to_run, report, started, redactor,
                keep=self.store_gate, agree=agree,
            )  # fmt: skip
            # A file that read a variable the user's environment sets and pytest did not get
            # may have another outcome under plain pytest: its result is not stored, the name
            # is learned (`learn_env`: passed and keyed from now on) and, when this process
            # has its value (a daemon gets only the allowlisted values: it asks its client),
            # the file runs again now with it: that run's outcomes are pytest's and replace
            # the first's.
            reads = withheld_reads(report, [o.target for o in fresh], planned.withheld)
            if reads:
                read = sorted({n for names in reads.values() for n in names})
                source: Mapping[str, str] = os.environ if environ is None else environ
                missing = [n for n in read if n not in source]
                if missing and ask_env is not None:
                    given = await ask_env(missing)
                    source = {**source, **{n: given[n] for n in missing if n in given}}
                now = all(n in source for n in read)
                if now:
                    allowlist = (*planned.env_allowlist, *read)
                    passing = replace(
                        planned,
                        env_allowlist=allowlist,
                        context=key_context(
                            self.interpreter,
                            planned.pytest_args,
                            allowlist,
                            source,
                            read_keyed=planned.context.keyed_when_read,
                            edited=planned.context.edited,
                        ),
                        withheld=planned.withheld - set(read),
                    )
                    files = [o.planned for o in fresh if o.target in reads]
                    names, others, only = with_companions(files, collect_only(files), planned.order)
                    hidden = [n for f in files for n in f.deselect] + others
                    redone = await run_again(
                        files, names, hidden, only=only, plan=passing, env=source
                    )
                    fresh = [o for o in fresh if o.target not in reads] + redone
                environment += withheld_notes(reads, ran_again=now)
            # A test run without the tests before it in its file may need what they did (pytest
            # always runs those first): a failure there (or a failed test passing alone, with
            # the same inputs) is put to its file, re-run now up to the last such test; its
            # outcomes replace the partial run's. Only failures pay.
            doubted = [o for o in fresh if passed_alone(o) or failed_in_part(o)]
            if doubted:
                whole: list[PlannedFile] = []
                until: list[str] = []
                for o in doubted:
                    f, reach = o.planned, confirm_until(o)
                    carried = None if reach is None else o.result
                    again = PlannedFile(f.target, None, f.key, f.cached, f.reason, f.changed)
                    again.run_nodes, again.carried = reach, carried
                    whole.append(again)
                    until += reach or ()
                # collected as in the full run: after the polluters before them
                known = planned.polluters
                with_them = {f.target for f in whole} | {
                    p
                    for f in whole
                    for p in (known.before(f.target, self.graph.tests) if known else ())
                }
                others = sorted(set(collect_only(whole)) - with_them)
                # and after the tests that change what they read, run again too
                with_them |= set(ran_polluters(whole, known))
                names = planned.order.sorted(with_them | set(others))
                redone = await run_again(whole, names, others, until)
                targets = {f.target for f in whole}
                by_target = {o.target: o for o in redone}
                for o in doubted:
                    confirmed += confirmation_notes(o, by_target[o.target])
                    again_o = by_target[o.target]  # served: by neither of the two runs
                    again_o.served = tuple(n for n in again_o.served if n in set(o.served))
                fresh = [o for o in fresh if o.target not in targets] + redone
            # Traced, a call-heavy test runs several times slower than under pytest: a file
            # with a test that ran out of its pytest-timeout runs again untraced, as pytest
            # runs it, and that run's outcomes (file-level records) are the ones kept.
            slow = [o for o in fresh if traced and timed_out(o)]
            if slow:
                files = [o.planned for o in slow]
                names, others, only = with_companions(files, collect_only(files), planned.order)
                hidden = [n for f in files for n in f.deselect] + others
                redone = await run_again(files, names, hidden, only=only, untraced=True)
                targets = {f.target for f in files}
                fresh = [o for o in fresh if o.target not in targets] + redone
                confirmed += [
                    f"{o.target}: a test ran out of its pytest-timeout while Maestro recorded "
                    "what it ran; the file ran again as pytest runs it, and that run counts"
                    for o in slow
                ]
            outcomes += fresh
            # a test file this run found changing a module's state at import (a new file
            # registering a class) changes what the files just served from the cache see in
            # a full run: those whose key it changes are decided again, and run now
            redo = repollute(self.graph, self.cache, planned, planned.new_polluters)
            if redo:
                decided = {f.target for f in redo}
                outcomes = [o for o in outcomes if o.target not in decided]
                outcomes += [FileOutcome(f, f.cached, True) for f in redo if not f.runs]
                rerun = [f for f in redo if f.runs]
                if rerun:
                    names, others, only = with_companions(
                        rerun,
                        collect_only(rerun),
                        planned.order,
                        ran_polluters(rerun, planned.polluters),
                    )
                    outcomes += await run_again(rerun, names, others, only=only)
        order = {f.target: i for i, f in enumerate(planned.files)}
        outcomes.sort(key=lambda o: order[o.target])
        outcomes = [o for o in outcomes if not o.planned.companion]
        outcomes = until_stopped(outcomes, maxfail_of(planned.pytest_args))
        summary = summarise(
            outcomes,
            report,
            confirmed,
            environment,
            subtests_shown=subtests_shown(self.graph, planned, environ),
            notes=[*planned.notes, *changed_during_run_note(planned)],
        )
        if confirming_s:  # the summary's "pytest Ns" covers every run
            summary = summary.model_copy(update={"wall_s": summary.wall_s + confirming_s})
        return summary

    def run(
        self,
        selection: Selection,
        *,
        on_plan: Callable[[Plan], None] | None = None,
        on_event: Callable[[Event], None] | None = None,
        environ: Mapping[str, str] | None = None,
        warm: WarmPytest | None = None,
        on_started: Callable[[], None] | None = None,
    ) -> Summary:
        """Plan and execute synchronously (no event loop when everything is cached);
        ``on_started``: called once pytest has its run (not when nothing runs)."""
        from maestro.engine.testing import run

        return run(
            self.graph, self.cache, self.interpreter, selection, on_plan=on_plan,
            on_event=on_event, environ=environ, fingerprints=self.fingerprints, warm=warm,
            store_gate=self.store_gate, on_started=on_started,
        )  # fmt: skip

    def stale(
        self, pytest_args: Sequence[str] = (), *, environ: Mapping[str, str] | None = None
    ) -> list[PlannedFile]:
        """Test files with no usable (passing) cached result for their current inputs, for a
        run with `pytest_args`."""
        from maestro.engine.testing import stale

        return stale(
            self.graph, self.cache, self.interpreter, pytest_args, environ=environ,
            fingerprints=self.fingerprints,
        )  # fmt: skip


def _aside(work: Callable[..., None], *args: Any) -> asyncio.Future[None]:
    """``work(*args)`` in a daemon thread, as a future of the running loop.

    Not ``asyncio.to_thread``: the loop's default executor is joined when ``asyncio.run`` ends, so
    Ctrl-C in a run would wait for a slow preload before the command could exit. A finished run
    awaits these futures; an interrupted one abandons the threads, which import, read and keep
    files (written to a temporary name, then renamed: never half-made)."""
    import asyncio
    import contextlib
    import threading

    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():  # the run was cancelled
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            work(*args)
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=run, name=f"maestro-{work.__name__}", daemon=True).start()
    return done


def _without(on_event: Callable[[Event], None], files: set[str]) -> Callable[[Event], None]:
    """`on_event`, but for the events of the tests of `files`."""

    def forward(event: Event) -> None:
        nodeid = getattr(event, "nodeid", None)
        if isinstance(nodeid, str) and nodeid.partition("::")[0] in files:
            return
        on_event(event)

    return forward
