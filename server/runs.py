"""Test runs: one daemon ``run_tests`` stream per run, mirrored as work-done progress
(begin / report / end, cancellable), diagnostics, ``maestro/runStarted`` / ``runProgress`` /
``runFinished``, the tests' results in ``maestro/testResults`` batches (each test once, as they
arrive) and, for clients with the experimental capability, test-explorer notifications.

A run is an asyncio task: whoever starts it gets its id at once, so no client's request timeout
ever meets the length of a test run. Cancelling it (progress cancel button, ``maestro.cancel``,
``maestro/testExplorer/cancel``, a newer run that covers it) cancels the daemon request, which
terminates pytest; nothing of an unfinished run is cached by the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from lsprotocol import types

from maestro.counts import PYTEST_ORDER, counts_line, plural
from maestro.errors import (
    ConnectionLostError,
    DaemonNotRunningError,
    MaestroError,
    PolicyDeniedError,
)
from maestro.server import diagnostics, methods, policy, testexplorer
from maestro.server.methods import (
    FileOutcome,
    RunAccepted,
    RunKind,
    RunRef,
    RunResult,
    RunStatus,
    TestResult,
    notify,
)
from maestro.server.server import MaestroServer, Workspace
from maestro.wire import RUN_TESTS, ErrorInfo, RunQueued, RunTestsParams, RunTestsResult

log = logging.getLogger(__name__)

_ids = itertools.count(1)

PROGRESS_EVERY_S = 0.25  # maestro/runProgress at most this often (the last count always goes)
RESULTS_EVERY_S = 0.1  # a test's result waits at most this long for others to share its batch
RESULTS_BATCH = 500  # test results per maestro/testResults at most

Prepare = Callable[[], Awaitable["RunTestsParams | str"]]
"""Works out a run's params once it started (impacted selection asks the daemon); a string:
nothing to run, and why."""

IMPACTED_KINDS: frozenset[str] = frozenset({"impacted", "save"})


@dataclass
class Run:
    id: str
    ws: Workspace
    params: RunTestsParams | None
    kind: RunKind
    label: str
    prepare: Prepare | None = None
    task: asyncio.Task[RunResult] | None = None
    token: str | None = None
    cancel_requested: bool = False
    superseded_by: str | None = None
    superseded: list[str] = field(default_factory=list)
    done: int = 0
    total: int | None = None
    cached_tests: int = 0
    collected: set[str] = field(default_factory=set)  # nodes selected, over its pytest sessions
    finished: set[str] = field(default_factory=set)  # node ids with a result this run
    files: set[str] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)
    progress_at: float = 0.0
    pending: list[TestResult] = field(default_factory=list)  # results not sent yet
    sent: dict[str, TestResult] = field(default_factory=dict)  # node id -> result sent
    flush_at: asyncio.TimerHandle | None = None

    def covers(self, other: Run) -> bool:
        """Would this run redo what ``other`` is doing (so ``other`` can stop)?"""
        if self.ws is not other.ws:
            return False
        if self.kind in IMPACTED_KINDS or other.kind in IMPACTED_KINDS:
            return self.kind in IMPACTED_KINDS and other.kind in IMPACTED_KINDS
        mine = self.params.paths if self.params else []
        theirs = other.params.paths if other.params else []
        if not mine:
            return True  # a run of everything
        return bool(theirs) and all(
            any(p == q or p.startswith(q + "::") or p.startswith(q.rstrip("/") + "/") for q in mine)
            for p in theirs
        )

    def _names(self) -> RunRef:
        return {"runId": self.id, "root": str(self.ws.root), "kind": self.kind, "label": self.label}

    def accepted(self) -> RunAccepted:
        return {**self._names(), "superseded": list(self.superseded)}

    def cancel(self) -> bool:
        if self.task is None or self.task.done():
            return False
        self.cancel_requested = True
        self.task.cancel()
        return True

    def to_json(self) -> RunStatus:
        elapsed = round(time.monotonic() - self.started, 3)
        return {**self._names(), "done": self.done, "total": self.total, "elapsedS": elapsed}

    def outcome(self) -> RunResult:
        """What the run's answer says before it has counts."""
        status = self.to_json()
        return {
            "runId": status["runId"],
            "root": status["root"],
            "kind": status["kind"],
            "label": status["label"],
            "done": status["done"],
            "total": status["total"],
            "elapsedS": status["elapsedS"],
            "cancelled": False,
            "error": None,
        }


class RunManager:
    def __init__(self, server: MaestroServer) -> None:
        self.server = server
        self.active: dict[str, Run] = {}

    def start(
        self,
        ws: Workspace,
        params: RunTestsParams | None,
        *,
        kind: RunKind,
        label: str,
        prepare: Prepare | None = None,
        supersede: bool = True,
    ) -> Run:
        """Start a run and return at once. ``supersede``: cancel the active runs this one
        covers (the same file again, a file while one of its tests runs, everything, impacted
        after impacted): they would only delay it, and their results would be replaced."""
        run = Run(
            id=f"run-{next(_ids)}", ws=ws, params=params, kind=kind, label=label, prepare=prepare
        )
        if supersede:
            for old in list(self.active.values()):
                if run.covers(old) and old.cancel():
                    old.superseded_by = run.id
                    run.superseded.append(old.id)
        self.active[run.id] = run
        notify(self.server, methods.RUN_STARTED, run.accepted())
        run.task = asyncio.ensure_future(self._main(run))
        run.task.add_done_callback(lambda _: self.active.pop(run.id, None))
        return run

    def cancel(self, run_id: str | None = None) -> list[str]:
        runs = [r for r in self.active.values() if run_id in (None, "", r.id)]
        return [r.id for r in runs if r.cancel()]

    # --- one run ---------------------------------------------------------------------------------

    async def _main(self, run: Run) -> RunResult:
        try:
            return await self._run(run)
        except Exception as exc:
            # a fault Maestro did not foresee (a bug, an answer it cannot take): the run still
            # ends, says so, and the server goes on serving
            return self._failed(run, exc)

    def _failed(self, run: Run, exc: Exception) -> RunResult:
        ls = self.server
        # the log's formatter redacts the message and the traceback
        log.error("%s stopped on an unexpected error", run.id, exc_info=exc)
        outcome = run.outcome()
        # only the error's type goes to the client: its text may quote a secret
        message = (
            f"the run stopped on an unexpected error ({type(exc).__name__}) in the Maestro "
            "server; the Maestro output has the details"
        )
        hint = (
            "run it again; if it happens again, restart the daemon (maestro.restartDaemon) "
            "and report the Maestro output's traceback"
        )
        outcome["error"] = ErrorInfo(code="internal_error", message=message, hint=hint)
        self._end(run, f"failed: {message}")
        with contextlib.suppress(Exception):
            testexplorer.run_end(ls, run, outcome)
        with contextlib.suppress(Exception):
            ls.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Error, message=f"Maestro: {message}; {hint}"
                )
            )
        return self._finished(run, outcome)

    async def _run(self, run: Run) -> RunResult:
        ls = self.server
        outcome = run.outcome()
        # pytest runs what is on disk: the editor's unsaved edits are not in these results
        unsaved = sorted(ls.buffers(run.ws))
        try:
            # superseded while the editor creates its progress bar, the run still ends
            await self._begin(run)
            testexplorer.run_begin(ls, run)
            if run.prepare is not None:
                prepared = await run.prepare()
                if isinstance(prepared, str):  # nothing to run
                    outcome["message"] = prepared
                    outcome["files"] = []
                    self._end(run, prepared)
                    testexplorer.run_end(ls, run, outcome)
                    return self._finished(run, outcome)
                run.params = prepared
            result = await self._stream(run)
        except asyncio.CancelledError:
            if not run.cancel_requested:
                raise
            outcome = run.outcome()
            outcome["cancelled"] = True
            if run.superseded_by:
                outcome["message"] = f"superseded by {run.superseded_by}"
            self._end(run, outcome.get("message", "cancelled"))
            testexplorer.run_end(ls, run, outcome)
            self._publish(run)
            return self._finished(run, outcome)
        except PolicyDeniedError as exc:
            # not a failure of Maestro: the team's rules refused it, say why and when to retry
            denied = policy.denial(exc)
            outcome["error"] = ErrorInfo(
                code=exc.code, message=exc.message, hint=exc.hint, data=exc.wire_data()
            )
            outcome["denied"] = denied
            outcome["message"] = policy.denial_text(denied).removeprefix("Maestro: ")
            self._end(run, outcome["message"])
            testexplorer.run_end(ls, run, outcome)
            policy.show(ls, types.MessageType.Warning, policy.denial_text(denied))
            return self._finished(run, outcome)
        except MaestroError as exc:
            outcome["error"] = ErrorInfo(code=exc.code, message=exc.message, hint=exc.hint)
            self._end(run, f"failed: {exc.message}")
            testexplorer.run_end(ls, run, outcome)
            ls.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Error, message=f"Maestro: {exc.message}"
                )
            )
            return self._finished(run, outcome)
        outcome.update(self._summary(run, result))
        if unsaved:
            outcome["message"] = _unsaved_note(unsaved)
        self._publish(run)
        self._end(run, _summary_line(outcome))
        if result.not_run_files and result.pytest_said:
            # pytest broke down (an INTERNALERROR, a crash): its own words, not just a count
            log.warning("pytest's output of %s:\n%s", run.id, result.pytest_said)
            last = result.pytest_said.strip().splitlines()[-1]
            ls.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Error,
                    message=f"Maestro: {plural(result.not_run_files, 'test file')} did not finish; "
                    f"pytest said: {last} (the Maestro output has the rest)",
                )
            )
        self._notes(run, result)
        testexplorer.run_end(ls, run, outcome)
        ws = run.ws
        ws.stale = None
        ls.schedule_refresh(0)
        return self._finished(run, outcome)

    def _notes(self, run: Run, result: RunTestsResult) -> None:
        """What `maestro test` prints under a run: a variable the user's environment sets that
        pytest did not get (why the next run re-runs every file once) is shown; a failure of a
        file run in part that its whole file confirmed goes to the Maestro output."""
        ls = self.server
        if result.environment:
            ls.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Info,
                    message="Maestro: " + "; ".join(result.environment),
                )
            )
        for note in result.confirmed:
            ls.window_log_message(
                types.LogMessageParams(type=types.MessageType.Info, message=f"{run.id}: {note}")
            )

    def _finished(self, run: Run, outcome: RunResult) -> RunResult:
        self._flush(run)
        if self.server.test_results:
            outcome["results"] = len(run.sent)
        self._progress(run, _end_line(run, outcome), force=True)
        if not self.server.shutting_down:
            notify(self.server, methods.RUN_FINISHED, outcome)
        return outcome

    # --- maestro/testResults -----------------------------------------------------------------

    def _send_result(self, run: Run, result: TestResult) -> None:
        """Queue one test's result; batches go out when full or after RESULTS_EVERY_S."""
        if not self.server.test_results:
            return
        run.pending.append(result)
        run.sent[result["id"]] = result
        if len(run.pending) >= RESULTS_BATCH:
            self._flush(run)
        elif run.flush_at is None:
            run.flush_at = asyncio.get_running_loop().call_later(RESULTS_EVERY_S, self._flush, run)

    def _flush(self, run: Run) -> None:
        if run.flush_at is not None:
            run.flush_at.cancel()
            run.flush_at = None
        while run.pending:
            batch, run.pending = run.pending[:RESULTS_BATCH], run.pending[RESULTS_BATCH:]
            if not self.server.shutting_down:
                notify(
                    self.server,
                    methods.TEST_RESULTS,
                    methods.TestResultsParams(runId=run.id, root=str(run.ws.root), tests=batch),
                )

    async def _stream(self, run: Run) -> RunTestsResult:
        ls, ws = self.server, run.ws
        assert run.params is not None
        for attempt in (0, 1):
            stream = await ws.link.stream(RUN_TESTS, run.params)
            seen = False
            try:
                async with stream:
                    async for event in stream:
                        seen = True
                        self._on_event(run, event.event, event.payload)
                return stream.result
            except (ConnectionLostError, DaemonNotRunningError):
                # The daemon died before this run started: start a fresh one and try again.
                if seen or attempt:
                    raise
                ls.log_to_client(f"maestro: daemon of {ws.root} lost; restarting it for {run.id}")
        raise AssertionError("unreachable")

    def _on_event(self, run: Run, name: str, payload: dict[str, Any]) -> None:
        ls, ws = self.server, run.ws
        if name == "run.queued":
            message = RunQueued.model_validate(payload).describe()
            self._report(run, message, None)
            self._progress(run, message, force=True)
        elif name == "run.plan":
            files = payload.get("files") or []
            ws.results.record_plan(files, run.id)
            run.files.update(f["target"] for f in files)
            to_run = sum(1 for f in files if f.get("runs"))
            run.cached_tests = sum(
                int(f.get("cached_tests") or 0) for f in files if not f.get("runs")
            )
            noun = "test file" if len(files) == 1 else "test files"
            message = f"{len(files)} {noun}: {to_run} to run, {len(files) - to_run} cached"
            self._report(run, message, 0)
            self._progress(run, message, force=True)
            testexplorer.run_plan(ls, run, files)
        elif name == "run.progress":
            event = payload.get("event") or {}
            kind = event.get("event")
            if kind == "collected":
                # the nodes selected in this pytest session (after deselection); a run may start
                # several sessions, and a later one may run tests again (a file confirmed whole
                # after a run of part of it): each test counts once
                for ids in (event.get("files") or {}).values():
                    run.collected.update(ids)
                # results reported while collecting (a module-level skip) are not among the items
                run.total = len(run.collected | run.finished)
            elif kind == "test_start":
                testexplorer.test_started(ls, run, str(event.get("nodeid")))
            elif kind == "test_result":
                state = ws.results.record_live(event, run.id)
                if state is None:
                    return
                run.finished.add(state.nodeid)
                run.done = len(run.finished)
                if self.server.test_results:
                    result = state.to_json()
                    if _news(run.sent.get(state.nodeid), result):
                        self._send_result(run, result)
                pct = int(100 * run.done / run.total) if run.total else None
                line = f"{run.done}/{run.total or '?'} tests"
                self._report(run, f"{line} {state.nodeid}: {state.outcome}", pct)
                self._progress(run, line)
                testexplorer.test_finished(ls, run, state)
                if state.failing:
                    diagnostics.publish(ls, ws, state.file)

    def _summary(self, run: Run, result: RunTestsResult) -> RunResult:
        ws = run.ws
        files: list[FileOutcome] = []
        for f in result.files:
            ws.results.record_file_result(f.target, f.result, cached=f.cached, run_id=run.id)
        by_file = ws.results.by_file()
        for f in result.files:
            plan = ws.results.files.get(f.target)
            states = by_file.get(f.target, [])
            if f.result is None and not f.cached:
                # pytest did not finish the file: what it did not report this run is from an
                # earlier one (a pass before the edit), not this run's word
                states = [t for t in states if t.nodeid in run.finished]
            # a result of the earlier inputs (the file's other tests when one of them ran) is
            # not this run's word either: a pass there may be a failure now
            states = [t for t in states if not t.outdated]
            files.append(
                {
                    "target": f.target,
                    "uri": self.server.uri_of(ws, f.target),
                    "cached": f.cached,
                    "stored": f.stored,
                    "describe": plan.describe if plan else ("cached" if f.cached else ""),
                    "tests": len(states),
                }
            )
            run.files.add(f.target)
            # results this run did not report live: a cached file's, and the carried ones of a
            # file where only some tests re-ran (the explorer would leave them "queued")
            carried = [t for t in states if t.nodeid not in run.finished]
            testexplorer.cached_results(self.server, run, carried)
            for state in states if self.server.test_results else ():
                final = state.to_json()
                if _news(run.sent.get(state.nodeid), final):
                    self._send_result(run, final)
        outcome = run.outcome()
        outcome.update({
            "exitCode": result.exit_code,
            "passed": result.passed,
            "failed": result.failed,
            "errors": result.errors,
            "skipped": result.skipped,
            "xfailed": result.xfailed,
            "xpassed": result.xpassed,
            "deselected": result.deselected,
            "warnings": result.warnings,
            "subtestsPassed": result.subtests_passed,
            "flaky": result.flaky,
            "ranFiles": result.ran_files,
            "cachedFiles": result.cached_files,
            "notRunFiles": result.not_run_files,
            "timeSavedS": result.time_saved_s,
            "wallS": result.wall_s,
            "files": files,
        })  # fmt: skip
        outcome["counts"] = counts_line(result.model_dump(include={f for f, _, _ in PYTEST_ORDER}))
        return outcome

    def _publish(self, run: Run) -> None:
        for target in sorted(run.files):
            diagnostics.publish(self.server, run.ws, target)

    # --- progress --------------------------------------------------------------------------------

    def _progress(self, run: Run, message: str, *, force: bool = False) -> None:
        """``maestro/runProgress`` for every client (work-done progress is optional in LSP)."""
        now = time.monotonic()
        if self.server.shutting_down or (not force and now - run.progress_at < PROGRESS_EVERY_S):
            return
        run.progress_at = now
        notify(
            self.server,
            methods.RUN_PROGRESS,
            methods.RunProgressParams(
                runId=run.id,
                root=str(run.ws.root),
                done=run.done,
                total=run.total,
                cachedTests=run.cached_tests,
                message=message,
            ),
        )

    async def _begin(self, run: Run) -> None:
        ls = self.server
        if not ls.progress_supported:
            return
        token = f"maestro/{run.id}"
        try:
            # shielded: a run cancelled meanwhile must not cancel the request the editor answers
            await asyncio.shield(ls.work_done_progress.create_async(token))
        except Exception as exc:  # the client refused: run without a progress bar
            log.info("no progress for %s: %s", run.id, exc)
            return
        run.token = token
        ls.work_done_progress.begin(
            token,
            types.WorkDoneProgressBegin(
                title=f"Maestro: {run.label}", cancellable=True, message="planning", percentage=0
            ),
        )
        future = ls.work_done_progress.tokens.get(token)
        if future is not None:
            future.add_done_callback(lambda f: run.cancel() if f.cancelled() else None)

    def _report(self, run: Run, message: str, percentage: int | None) -> None:
        if run.token is None:
            return
        with contextlib.suppress(Exception):
            self.server.work_done_progress.report(
                run.token, types.WorkDoneProgressReport(message=message, percentage=percentage)
            )

    def _end(self, run: Run, message: str) -> None:
        if run.token is None:
            return
        with contextlib.suppress(Exception):
            self.server.work_done_progress.end(
                run.token, types.WorkDoneProgressEnd(message=message)
            )
        self.server.work_done_progress.tokens.pop(run.token, None)


# not "details": a second session's report of the same failure differs in object addresses
_SUBSTANCE = ("outcome", "message", "flaky", "cached", "line", "testLine", "raisedAt")


def _news(sent: TestResult | None, result: TestResult) -> bool:
    """Does a test's later result in a run say more than the one sent? (A flaky rerun does; the
    same outcome from a second pytest session of its file, or the run's end adding when and
    where it ran, does not.)"""
    if sent is None:
        return True
    return any(sent[k] != result[k] for k in _SUBSTANCE)  # type: ignore[literal-required]


def _summary_line(outcome: RunResult) -> str:
    text = outcome.get("counts") or counts_line(outcome)
    if outcome.get("cachedFiles"):
        cached = outcome["cachedFiles"]
        text += f" ({cached} {'file' if cached == 1 else 'files'} cached)"
    if unfinished := outcome.get("notRunFiles"):
        text += f"; {unfinished} test {'file' if unfinished == 1 else 'files'} did not finish"
        text += " (not cached)"
    if (message := outcome.get("message")) and message.startswith(_UNSAVED_NOTE):
        text += f"; {message}"
    return text


def _end_line(run: Run, outcome: RunResult) -> str:
    """The last progress line: the counts, or how a run without them ended."""
    if outcome.get("cancelled"):
        line = outcome.get("message") or "cancelled"
        if not line.startswith("cancelled"):
            line = f"cancelled: {line}"
        return line + (f" ({run.done}/{run.total} tests had run)" if run.done else "")
    if (error := outcome.get("error")) is not None:
        return f"failed: {error.message}"
    if outcome.get("passed") is None and (message := outcome.get("message")):
        return message
    return _summary_line(outcome)


_UNSAVED_NOTE = "ran the saved files: "


def _unsaved_note(paths: list[str]) -> str:
    """Says that the run did not see the unsaved edits of ``paths``."""
    named = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    return f"{_UNSAVED_NOTE}{named} {'has' if len(paths) == 1 else 'have'} unsaved changes"


def register(server: MaestroServer) -> None:
    server.runs = RunManager(server)


def manager(server: MaestroServer) -> RunManager:
    if server.runs is None:
        server.runs = RunManager(server)
    return server.runs
