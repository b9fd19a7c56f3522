"""`maestro test` itself, without typer: both entry points call :func:`run_test`.

The full CLI (maestro/cli/test_cmd.py) parses any command line with typer and calls it; the
console script's fast path (maestro/cli/fast.py) calls it directly for the plain command lines it
parses itself (the selection flags, --root, --no-daemon, --junit-xml and `-- PYTEST_ARGS`), so
that an in-process first run hands pytest its run without importing typer (and the pydantic
adapters typer builds for every option). Output and exit codes are the same by construction.

Exit codes follow pytest: 0 all passed, 1 failures, 2 interrupted, 3 internal error (Maestro or
pytest could not run), 4 usage error, 5 no tests selected (but 0 for --impacted when nothing is
impacted: a docs-only change must not fail CI).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from maestro.cli.fast import (
    client_env,
    junit_of,
    paths_of,
    runs_in_process,
    start_in_background,
    with_env_addopts,
)
from maestro.cli.scope import resolve_root, subfolder
from maestro.cli.test_render import (
    Display,
    final_exit_code,
    no_tests_in_scope,
    print_summary,
    report_chars,
)
from maestro.errors import MaestroError, ReportWriteError, UnknownTargetError, WorkspaceError

if TYPE_CHECKING:
    from maestro.cache.action import ActionResult
    from maestro.engine.runner import WarmPytest
    from maestro.wire import Event as WireEvent
    from maestro.wire import PredictiveInfo, RunTestsParams, RunTestsResult

log = logging.getLogger(__name__)

EXIT_INTERRUPTED = 2


def run_test(
    *,
    paths: Sequence[str] = (),
    impacted: bool = False,
    since: str | None = None,
    all_tests: bool = False,
    no_cache: bool = False,
    junit_xml: Path | None = None,
    predictive: bool = False,
    threshold: float | None = None,
    root: Path | None = None,
    no_daemon: bool = False,
    pytest_args: Sequence[str] = (),
    warm: WarmPytest | None = None,
) -> int:
    """Run `maestro test` with these options; its exit code. ``warm``: pytest's process, started
    by the console script before the imports (taken by the run, or killed when it does not fit).

    Through the workspace daemon when one runs (see maestro/cli/via_daemon.py), in this process
    otherwise; the display, summary, exit code and JUnit file are the same either way: both paths
    produce a RunTestsResult and render it with the same functions."""
    scope: str | None = None
    try:
        # a --junitxml among pytest's arguments is Maestro's report (of every file, cached too)
        args, junit_path = junit_of(with_env_addopts(pytest_args, os.environ))
        # and the paths among them are the run's (`maestro test -- -k slow tests/x.py`)
        workspace = resolve_root(root)
        named, args = paths_of(args, workspace)
        if named and (impacted or since is not None):
            raise UnknownTargetError(
                f"{' '.join(named)} among pytest's arguments would choose the test files, and "
                f"{'--since' if since is not None else '--impacted'} chooses them",
                hint="drop one of the two selections",
            )
        paths = [*paths, *named]
        if all_tests and (paths or impacted or since):
            raise UnknownTargetError(
                "--all selects every test file; drop it or the other selection",
                hint="maestro test --all, or maestro test --impacted",
            )
        if junit_xml is None and junit_path is not None:
            junit_xml = Path(junit_path)
        if not (paths or root or all_tests or impacted or since is not None):
            scope = subfolder(workspace)
        given = list(paths) or (["."] if scope else [])  # "." is the cwd: the subfolder
        selected = _relative(workspace, given, keep_missing=impacted or bool(since))
        fields: dict[str, Any] = {
            "paths": selected,
            "impacted": impacted or since is not None,
            "since": since,
            "no_cache": no_cache,
            "pytest_args": args,
            "predictive": predictive or threshold is not None,
            "threshold": threshold,
        }
        odd = since == "" or len(since or "") > 1000 or len(pytest_args) > 10_000
        validated: RunTestsParams | None = None
        if selected or threshold is not None or odd:
            from maestro.wire import RunTestsParams

            validated = RunTestsParams.model_validate(fields)
        # else nothing validation could refuse: an in-process run imports no model (pydantic)
        # before pytest has its run
        params = validated if validated is not None else Request(**fields)
        with (
            Display(impacted=params.impacted, scope=scope) as display,
            _warm(warm, workspace, no_daemon) as warm_process,
        ):
            result = None
            in_process = runs_in_process(workspace, no_daemon=no_daemon)
            if not in_process:
                from maestro.cli import via_daemon
                from maestro.wire import RUN_TESTS, RunTestsParams

                sent = validated or RunTestsParams.model_construct(**fields)
                sent = sent.model_copy(update={"env": client_env(workspace), "answers_env": True})
                result = via_daemon.stream(
                    workspace, RUN_TESTS, sent, lambda e: _daemon_event(display, e),
                    environ=os.environ,
                )  # fmt: skip
                if result is None:
                    display.reset()  # the daemon gave up mid-run: start over in process
            if result is None:
                result = run_in_process(workspace, params, display, warm=warm_process)
                if params.predictive:  # the ranking needs the daemon's telemetry and change set
                    from maestro.wire import PredictiveInfo

                    note = "predictive mode needs the daemon: nothing skipped"
                    info = PredictiveInfo(threshold=threshold or 0.0, model="none", note=note)
                    result = result.model_copy(update={"predictive": info})
            display.finish()
        if in_process and not no_daemon:
            start_in_background(workspace)
        unwritten: ReportWriteError | None = None
        if junit_xml is not None:
            decided = result.predictive
            skipped = [(f.target, f.reason) for f in decided.skipped] if decided else []
            skipped += [(t.node_id, t.reason) for t in decided.skipped_tests] if decided else []
            files = ((f.result, f.cached, f.served) for f in result.files)
            try:
                write_junit(junit_xml, files, skipped)
            except ReportWriteError as exc:  # said after the run's summary, which stands
                unwritten = exc
    except KeyboardInterrupt:
        from maestro.cli.consoles import console

        console.print("[bold yellow]interrupted[/]: nothing from the unfinished run was cached")
        return EXIT_INTERRUPTED
    except MaestroError as exc:
        if scope and isinstance(exc, UnknownTargetError):
            return no_tests_in_scope(scope)
        return report_failure(exc)
    if result.predictive is not None:
        print_predictive(result.predictive)
    dumped = result.wire_dump()  # the form the daemon sends: both are rendered alike
    print_summary(dumped, report=report_chars(params.pytest_args))
    if unwritten is not None:
        return report_failure(unwritten)
    return final_exit_code(dumped, impacted=params.impacted)


def _relative(root: Path, paths: list[str], *, keep_missing: bool) -> list[str]:
    """User paths (cwd-relative or absolute, maybe with ::node) as root-relative posix paths."""
    from maestro.engine.changes import normalize

    out = []
    for raw in paths:
        path, sep, rest = raw.partition("::")
        try:
            rel = normalize(root, path)
        except WorkspaceError:
            if not keep_missing:
                raise
            rel = path
        out.append(f"{rel}{sep}{rest}" if rel != "." else f"{sep}{rest}" if sep else ".")
    return out


def print_predictive(info: PredictiveInfo) -> None:
    """The files and tests predictive mode skipped, each with its P(fail) and the features
    behind it."""
    from rich.markup import escape

    from maestro.cli.consoles import console

    for f in info.skipped:
        console.print(f"[yellow]skipped[/] {escape(f.target)}  [dim]{escape(f.reason)}[/]")
    shown = 20
    for t in info.skipped_tests[:shown]:
        console.print(f"[yellow]skipped[/] {escape(t.node_id)}  [dim]{escape(t.reason)}[/]")
    if len(info.skipped_tests) > shown:
        more = len(info.skipped_tests) - shown
        console.print(f"[yellow]skipped[/] {more} more test(s) (--junit-xml lists them all)")
    for f in info.kept:
        if "never skipped" in f.reason:
            console.print(f"[cyan]kept[/] {escape(f.target)}  [dim]{escape(f.reason)}[/]")
    note = f" ({info.note})" if info.note else ""
    console.print(escape(info.summary()) + note)


def _daemon_event(display: Display, event: WireEvent) -> None:
    display.daemon_event(event.event, event.payload)


def report_failure(exc: MaestroError) -> int:
    """Print a MaestroError as message + hint; the exit code it means."""
    from maestro.cli.consoles import exit_code_for, report_error

    report_error(exc)
    return exit_code_for(exc)


def _warm(
    early: WarmPytest | None, root: Path, no_daemon: bool
) -> contextlib.AbstractContextManager[WarmPytest | None]:
    """pytest's process, when this run will be in process: the one the console script started
    (maestro/cli/fast.py), else one started now. Leaving the block kills it if the run did not
    take it."""
    if early is not None:
        if early.root == root.absolute():
            return early
        early.discard()
    if not runs_in_process(root, no_daemon=no_daemon):
        return contextlib.nullcontext()
    from maestro.engine.core import Engine

    warm = Engine.warm(root)
    return warm if warm is not None else contextlib.nullcontext()


class Request(NamedTuple):
    """The run parameters of an in-process `maestro test`: RunTestsParams' fields that it
    reads, without the model."""

    paths: Sequence[str]
    impacted: bool
    since: str | None
    no_cache: bool
    pytest_args: Sequence[str]
    predictive: bool
    threshold: float | None


def run_in_process(
    root: Path,
    params: RunTestsParams | Request,
    display: Display,
    *,
    warm: WarmPytest | None = None,
) -> RunTestsResult:
    from contextlib import closing

    from maestro.cli.test_render import PlannedRow
    from maestro.engine.core import Engine
    from maestro.engine.testing import Plan, Selection, served_tests, summary_result
    from maestro.policy.local import LocalGates

    selection = Selection(
        paths=tuple(params.paths),
        impacted=params.impacted,
        since=params.since,
        no_cache=params.no_cache,
        pytest_args=tuple(params.pytest_args),
    )
    gates = LocalGates(root, ci=bool(os.environ.get("CI")))

    def on_plan(planned: Plan) -> None:
        gates.admit(list(params.paths))  # as the daemon admits a run: a denied one runs nothing
        gates.serve(planned)  # before showing it: a denied file runs
        # the rows the wire's PlannedFileInfo would give, without building its validator
        # before pytest has its run
        # shown once pytest has its run (`on_started`), when a process waits for it: what
        # showing it loads (rich) then loads while pytest runs
        display.plan(
            [PlannedRow(f.target, f.runs, f.describe(), served_tests(f)) for f in planned.files],
            later=warm is not None and bool(planned.to_run),
        )

    with closing(Engine.open(root, warm=warm)) as engine, closing(gates):
        engine.store_gate = gates.store
        summary = engine.run(
            selection, on_plan=on_plan, on_event=display.event, warm=warm,
            on_started=display.show_plan,
        )  # fmt: skip
        remote = engine.graph.loaded.config.remote
    from maestro.policy.quarantine import in_process

    result = in_process(root, summary_result(summary))  # quarantined failures do not fail it
    if remote is None:
        return result
    # the mirror lives in the daemon: a run without one neither reads nor uploads team results
    note = (
        f"the team cache ({remote.url}) was not used: it is read and filled through the "
        "workspace daemon, and this run had none; set MAESTRO_DAEMON=start (CI, scripts) to use it"
    )
    return result.model_copy(update={"notes": [*result.notes, note]})


def file_results(result: RunTestsResult) -> list[tuple[ActionResult, bool | frozenset[str]]]:
    """(ActionResult, served from cache: the whole file, or of a file run in part the node ids
    served) of every file that has a result, in plan order, each test once (a skipped folder's
    node is in the result of each of its files)."""
    return results_of((f.result, f.cached, f.served) for f in result.files)


def results_of(
    files: Iterable[tuple[Mapping[str, Any] | None, bool, Iterable[str]]],
) -> list[tuple[ActionResult, bool | frozenset[str]]]:
    """`file_results` of a run's files as (result in JSON mode, cached, served node ids): the
    fast path's (maestro/cli/fast.py) reply is JSON, never a RunTestsResult."""
    from maestro.cache.action import ActionResult

    seen: set[str] = set()
    out: list[tuple[ActionResult, bool | frozenset[str]]] = []
    for result, cached, served in files:
        if result is None:
            continue
        action = ActionResult.model_validate(result)
        tests = [t for t in action.tests if t.node_id not in seen]
        seen.update(t.node_id for t in tests)
        if len(tests) < len(action.tests):
            action = action.model_copy(update={"tests": tests})
        out.append((action, cached or frozenset(served)))
    return out


def write_junit(
    path: Path,
    files: Iterable[tuple[Mapping[str, Any] | None, bool, Iterable[str]]],
    skipped: Sequence[tuple[str, str]] = (),
) -> None:
    """The run's cached and fresh results as JUnit XML at ``path`` (``--junit-xml``); a folder
    on the way that does not exist yet is made, as pytest makes it. ReportWriteError when the
    file cannot be written (the results are stored already: nothing is lost)."""
    from maestro.engine import junit

    data = junit.render(results_of(files), skipped_files=skipped)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        why = exc.strerror or str(exc)
        if isinstance(exc, FileExistsError | NotADirectoryError):  # a file where a folder is
            why = f"{exc.filename} is a file, not a folder"
        elif exc.filename is not None and str(exc.filename) != str(path):
            why = f"{why}: {exc.filename}"
        raise ReportWriteError(
            f"could not write the JUnit report: {why}",
            where=str(path),
            hint="give --junitxml a file in a folder you can write; the results are stored, so "
            "the same command with that path runs no test again to write it",
        ) from exc
