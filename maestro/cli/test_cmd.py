"""`maestro test` and `maestro stale`: cached, impact-selected pytest runs at the terminal.

Exit codes follow pytest: 0 all passed, 1 failures, 2 interrupted, 3 internal error (Maestro or
pytest could not run), 4 usage error, 5 no tests selected.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from maestro.cli.common import ROOT_OPTION, console, err_console, report_error, resolve_root
from maestro.cli.via_daemon import NO_DAEMON_OPTION
from maestro.errors import (
    ConfigError,
    GitError,
    MaestroError,
    UnknownTargetError,
    WorkspaceError,
)

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from maestro.cache.action import ActionResult
    from maestro.daemon.events import Event
    from maestro.wire import Event as WireEvent
    from maestro.wire import PlannedFileInfo, RunTestsParams, RunTestsResult

log = logging.getLogger(__name__)

EXIT_INTERRUPTED = 2
EXIT_INTERNAL = 3
EXIT_USAGE = 4
_USAGE = (ConfigError, WorkspaceError, GitError, UnknownTargetError)
_META = "maestro.pytest_args"
_SHOW_REASONS = 10


class TestCommand(TyperCommand):
    """Splits the command line at `--`: what follows goes to pytest, not to PATHS."""

    __test__ = False

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if "--" in args:
            cut = args.index("--")
            ctx.meta[_META] = list(args[cut + 1 :])
            args = args[:cut]
        parsed: list[str] = super().parse_args(ctx, args)
        return parsed


def _open(root: Path) -> tuple[Any, Any, Any]:
    from maestro.cache import Cache
    from maestro.daemon.interpreter_cache import workspace_interpreter
    from maestro.graph.build import BuildGraph
    from maestro.paths import graph_index_path

    graph = BuildGraph.build(root, index_path=graph_index_path(root))
    interpreter = workspace_interpreter(root, configured=graph.loaded.config.interpreter)
    return graph, Cache.open(), interpreter


def _relative(root: Path, paths: list[str], *, keep_missing: bool) -> list[str]:
    """User paths (cwd-relative or absolute, maybe with ::node) as root-relative posix paths."""
    from maestro.daemon.changes import normalize

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


def test(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="test files, directories or node ids (with --impacted: changed files)",
            show_default=False,
        ),
    ] = None,
    impacted: Annotated[
        bool,
        typer.Option("--impacted", help="only tests impacted by changes (default: git)"),
    ] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="REF", help="tests impacted since merge-base with REF"),
    ] = None,
    all_tests: Annotated[
        bool, typer.Option("--all", help="every test file (the default), served from cache")
    ] = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="run everything selected; still store results")
    ] = False,
    junit_xml: Annotated[
        Path | None,
        typer.Option("--junit-xml", metavar="PATH", help="cached + fresh results as JUnit XML"),
    ] = None,
    root: ROOT_OPTION = None,
    no_daemon: NO_DAEMON_OPTION = False,
) -> None:
    """Run tests whose inputs changed; serve the rest from the cache. `-- ARGS` go to pytest.

    Through the workspace daemon when one runs (see maestro/cli/via_daemon.py), in this process
    otherwise; the display, summary, exit code and JUnit file are the same either way: both paths
    produce a RunTestsResult and render it with the same functions."""
    from maestro.cli import via_daemon
    from maestro.wire import RUN_TESTS, RunTestsParams

    pytest_args = tuple(ctx.meta.get(_META, ()))
    try:
        if all_tests and (paths or impacted or since):
            raise UnknownTargetError(
                "--all selects every test file; drop it or the other selection",
                hint="maestro test --all, or maestro test --impacted",
            )
        workspace = resolve_root(root)
        selected = _relative(workspace, paths or [], keep_missing=impacted or bool(since))
        params = RunTestsParams(
            paths=selected,
            impacted=impacted or since is not None,
            since=since,
            no_cache=no_cache,
            pytest_args=list(pytest_args),
        )
        with _Display() as display:
            result = None
            if not no_daemon and via_daemon.policy() != "off":
                params = params.model_copy(update={"env": client_env(workspace)})
                result = via_daemon.stream(workspace, RUN_TESTS, params, display.daemon_event)
                if result is None:
                    display.reset()  # the daemon gave up mid-run: start over in process
            if result is None:
                result = _run_in_process(workspace, params, display)
            display.finish()
        if junit_xml is not None:
            from maestro.daemon import junit

            junit_xml.write_bytes(junit.render(file_results(result)))
    except KeyboardInterrupt:
        console.print("[bold yellow]interrupted[/]: nothing from the unfinished run was cached")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except MaestroError as exc:
        report_error(exc)
        raise typer.Exit(EXIT_USAGE if isinstance(exc, _USAGE) else EXIT_INTERNAL) from None
    _print_summary(result)
    raise typer.Exit(result.exit_code)


def client_env(root: Path) -> dict[str, str]:
    """This process's environment, cut to the workspace's allowlist (what pytest may see)."""
    from maestro.cache.keys import allowlisted_env
    from maestro.daemon.runner import DEFAULT_ENV_ALLOWLIST
    from maestro.settings import load_settings

    extra = load_settings(root).config.env_allowlist
    return dict(allowlisted_env((*DEFAULT_ENV_ALLOWLIST, *extra), os.environ))


def _run_in_process(root: Path, params: RunTestsParams, display: _Display) -> RunTestsResult:
    from maestro.daemon.test_service import planned_info, summary_result
    from maestro.daemon.testing import Selection, run

    graph, cache, interpreter = _open(root)
    selection = Selection(
        paths=tuple(params.paths),
        impacted=params.impacted,
        since=params.since,
        no_cache=params.no_cache,
        pytest_args=tuple(params.pytest_args),
    )
    with cache:
        summary = run(
            graph,
            cache,
            interpreter,
            selection,
            on_plan=lambda p: display.plan([planned_info(f) for f in p.files]),
            on_event=display.event,
        )
    return summary_result(summary)


def file_results(result: RunTestsResult) -> list[tuple[ActionResult, bool]]:
    """(ActionResult, served from cache) of every file that has a result, in plan order."""
    from maestro.cache.action import ActionResult

    return [
        (ActionResult.model_validate(f.result), f.cached)
        for f in result.files
        if f.result is not None
    ]


def stale(
    root: ROOT_OPTION = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Test files with no cached passing result for their current inputs, and why."""
    from maestro.daemon.testing import stale as find_stale

    try:
        workspace = resolve_root(root)
        graph, cache, interpreter = _open(workspace)
        with cache:
            found = find_stale(graph, cache, interpreter)
    except MaestroError as exc:
        report_error(exc)
        raise typer.Exit(EXIT_USAGE if isinstance(exc, _USAGE) else EXIT_INTERNAL) from None
    if as_json:
        rows = [{"target": f.target, "reason": f.reason, "changed": f.changed} for f in found]
        console.print_json(json.dumps({"schema": "maestro.stale/1", "stale": rows}))
        return
    for f in found:
        console.print(f"{f.target}  [dim]{f.describe()}[/]")
    console.print(f"{len(found)} of {len(graph.tests)} test files stale")


class _Display:
    """Progress bar (tests done / total, current test) fed by the runner's events."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.done = 0
        self.total = 0
        self.started = time.monotonic()

    def __enter__(self) -> _Display:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def reset(self) -> None:
        self.finish()
        self.done = self.total = 0

    def daemon_event(self, event: WireEvent) -> None:
        """The daemon's run events: run.queued (stderr), run.plan, run.progress."""
        from maestro.wire import RunPlanned

        if event.event == "run.queued":
            ahead = event.payload.get("ahead", 0)
            err_console.print(f"[dim]waiting for {ahead} run(s) of this workspace to finish[/]")
        elif event.event == "run.plan":
            self.plan(RunPlanned.model_validate(event.payload).files)
        elif event.event == "run.progress":
            data = event.payload.get("event")
            if isinstance(data, dict):
                self.progress_event(data)

    def plan(self, files: list[PlannedFileInfo]) -> None:
        to_run = [f for f in files if f.runs]
        cached = [f for f in files if not f.runs]
        cached_tests = sum(f.cached_tests for f in cached)
        console.print(
            f"[bold]{len(files)}[/] test files: [green]{len(cached)} cached[/] "
            f"({cached_tests} tests), [cyan]{len(to_run)} to run[/]"
        )
        for f in to_run[:_SHOW_REASONS]:
            console.print(f"  {f.target}  [dim]{f.describe}[/]")
        if len(to_run) > _SHOW_REASONS:
            console.print(f"  [dim]... and {len(to_run) - _SHOW_REASONS} more[/]")
        if not to_run or not console.is_terminal:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("collecting", total=None)

    def event(self, event: Event) -> None:
        from maestro.daemon.events import Collected, TestResult, TestStart

        if self.progress is None or self.task is None:
            return
        match event:
            case Collected():
                self._collected(len(event.nodeids))
            case TestStart():
                self._started(event.nodeid)
            case TestResult():
                self._finished()

    def progress_event(self, data: dict[str, Any]) -> None:
        """A plugin event in its JSON form (the daemon's run.progress)."""
        if self.progress is None or self.task is None:
            return
        kind = data.get("event")
        if kind == "collected" and isinstance(data.get("files"), dict):
            self._collected(sum(len(ids) for ids in data["files"].values()))
        elif kind == "test_start":
            self._started(str(data.get("nodeid", "")))
        elif kind == "test_result":
            self._finished()

    def _collected(self, total: int) -> None:
        if self.progress is not None and self.task is not None:
            self.total = total
            self.progress.update(self.task, total=self.total, description="running")

    def _started(self, nodeid: str) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, description=_short(nodeid))

    def _finished(self) -> None:
        if self.progress is not None and self.task is not None:
            self.done += 1
            self.progress.update(self.task, completed=self.done)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _short(nodeid: str, width: int = 50) -> str:
    return nodeid if len(nodeid) <= width else "…" + nodeid[-(width - 1) :]


def _print_summary(summary: RunTestsResult) -> None:
    results = [r for r, _ in file_results(summary)]
    failures = [t for r in results for t in r.tests if t.outcome in ("failed", "error")]
    if failures:
        console.rule("[bold red]failures")
        for t in failures:
            where = f"{t.path}:{t.line}" if t.path and t.line else (t.path or "")
            label = "FAILED" if t.outcome == "failed" else "ERROR"
            console.print(f"[red]{label}[/] {t.node_id}", highlight=False)
            console.print(f"    {where}: {t.message or ''}".rstrip(": "), highlight=False)
    flaky = [t.node_id for r in results for t in r.tests if t.flaky]
    if flaky:
        console.print(
            f"[yellow]flaky[/] (outcome changed with the same inputs): {', '.join(flaky)}"
        )
    if summary.not_run_files:
        console.print(f"[yellow]{summary.not_run_files} files did not finish (not cached)[/]")
    parts = [f"[green]{summary.passed} passed[/]"]
    if summary.failed:
        parts.append(f"[red]{summary.failed} failed[/]")
    if summary.errors:
        parts.append(f"[red]{summary.errors} errors[/]")
    parts.append(f"{summary.skipped} skipped")
    if summary.xfailed:
        parts.append(f"{summary.xfailed} xfailed")
    if summary.xpassed:
        parts.append(f"{summary.xpassed} xpassed")
    console.print(
        ", ".join(parts)
        + f" — ran {summary.ran_files} files, {summary.cached_files} cached"
        + f" (saved {summary.time_saved_s:.2f}s)"
        + (f", pytest {summary.wall_s:.2f}s" if summary.pytest_exit_code is not None else "")
    )
