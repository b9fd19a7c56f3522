"""`maestro test` and `maestro stale`: cached, impact-selected pytest runs at the terminal.

Exit codes follow pytest: 0 all passed, 1 failures, 2 interrupted, 3 internal error (Maestro or
pytest could not run), 4 usage error, 5 no tests selected.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from maestro.cli.common import ROOT_OPTION, console, report_error, resolve_root
from maestro.errors import (
    ConfigError,
    GitError,
    MaestroError,
    UnknownTargetError,
    WorkspaceError,
)

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from maestro.daemon.events import Event
    from maestro.daemon.testing import Plan, Summary

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
) -> None:
    """Run tests whose inputs changed; serve the rest from the cache. `-- ARGS` go to pytest."""
    from maestro.daemon.testing import Selection, run

    pytest_args = tuple(ctx.meta.get(_META, ()))
    try:
        if all_tests and (paths or impacted or since):
            raise UnknownTargetError(
                "--all selects every test file; drop it or the other selection",
                hint="maestro test --all, or maestro test --impacted",
            )
        workspace = resolve_root(root)
        selected = _relative(workspace, paths or [], keep_missing=impacted or bool(since))
        graph, cache, interpreter = _open(workspace)
        selection = Selection(
            paths=tuple(selected),
            impacted=impacted or since is not None,
            since=since,
            no_cache=no_cache,
            pytest_args=pytest_args,
        )
        with cache, _Display() as display:
            summary = run(
                graph, cache, interpreter, selection, on_plan=display.plan, on_event=display.event
            )
            display.finish()
        if junit_xml is not None:
            from maestro.daemon import junit

            junit_xml.write_bytes(junit.render(summary.results()))
    except KeyboardInterrupt:
        console.print("[bold yellow]interrupted[/]: nothing from the unfinished run was cached")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except MaestroError as exc:
        report_error(exc)
        raise typer.Exit(EXIT_USAGE if isinstance(exc, _USAGE) else EXIT_INTERNAL) from None
    _print_summary(summary)
    raise typer.Exit(summary.exit_code)


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

    def plan(self, plan: Plan) -> None:
        to_run, cached = plan.to_run, plan.cached
        cached_tests = sum(len(f.cached.tests) for f in cached if f.cached)
        console.print(
            f"[bold]{len(plan.files)}[/] test files: [green]{len(cached)} cached[/] "
            f"({cached_tests} tests), [cyan]{len(to_run)} to run[/]"
        )
        for f in to_run[:_SHOW_REASONS]:
            console.print(f"  {f.target}  [dim]{f.describe()}[/]")
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
                self.total = len(event.nodeids)
                self.progress.update(self.task, total=self.total, description="running")
            case TestStart():
                self.progress.update(self.task, description=_short(event.nodeid))
            case TestResult():
                self.done += 1
                self.progress.update(self.task, completed=self.done)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _short(nodeid: str, width: int = 50) -> str:
    return nodeid if len(nodeid) <= width else "…" + nodeid[-(width - 1) :]


def _print_summary(summary: Summary) -> None:
    failures = summary.failures()
    if failures:
        console.rule("[bold red]failures")
        for _, t in failures:
            where = f"{t.path}:{t.line}" if t.path and t.line else (t.path or "")
            label = "FAILED" if t.outcome == "failed" else "ERROR"
            console.print(f"[red]{label}[/] {t.node_id}", highlight=False)
            console.print(f"    {where}: {t.message or ''}".rstrip(": "), highlight=False)
    flaky = [t.node_id for f in summary.files if f.result for t in f.result.tests if t.flaky]
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
        + (f", pytest {summary.wall_s:.2f}s" if summary.report is not None else "")
    )
