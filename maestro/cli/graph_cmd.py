"""`maestro graph stats|export`, `maestro impacted`, `maestro why`: the graph at the terminal."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from maestro.cli.common import JSON_OPTION, ROOT_OPTION, console, fail_on_error, resolve_root
from maestro.cli.graph_render import SHOWN, print_stats, render_impacted, render_why
from maestro.cli.via_daemon import NO_DAEMON_OPTION
from maestro.graph.export import export_dot, export_json

if TYPE_CHECKING:
    from maestro.graph.build import BuildGraph, Change

graph_app = typer.Typer(help="Inspect the build graph.", no_args_is_help=True)


def open_graph(root: Path) -> BuildGraph:
    from maestro.engine.collect_probe import learn_collected_now
    from maestro.graph.build import BuildGraph
    from maestro.paths import graph_index_path

    graph = BuildGraph.build(root, index_path=graph_index_path(root))
    learn_collected_now(graph)  # the test files a conftest collects or ignores itself
    return graph


def collect_changes(root: Path, paths: list[str], since: str | None) -> list[Change]:
    from maestro.engine import changes

    if paths and since:
        raise typer.BadParameter("give changed paths or --since, not both")
    return changes.from_paths(root, paths) if paths else changes.from_git(root, since)


@graph_app.command("stats")
@fail_on_error
def stats(
    root: ROOT_OPTION = None,
    targets: Annotated[bool, typer.Option("--targets", help="list every target")] = False,
    as_json: JSON_OPTION = False,
    check_syntax: Annotated[
        bool,
        typer.Option(
            "--check-syntax", help="compile every file not checked yet (slow; results are cached)"
        ),
    ] = False,
    no_daemon: NO_DAEMON_OPTION = False,
) -> None:
    """Files, tests, targets and edges of the graph, and every diagnostic found."""
    from maestro import wire
    from maestro.cli import via_daemon
    from maestro.cli.fast import stats_in_process

    workspace = resolve_root(root)
    params = wire.GraphStatsParams(targets=targets, check_syntax=check_syntax)
    answer = via_daemon.call(workspace, wire.GRAPH_STATS, params, no_daemon=no_daemon)
    if answer is not None:
        report = answer.model_dump(by_alias=True)
    else:
        report = stats_in_process(workspace, targets=targets, check_syntax=check_syntax)
    print_stats(workspace, report, as_json=as_json)


def impacted(
    paths: Annotated[list[str] | None, typer.Argument(help="changed files (default: git)")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="changes since the merge-base with REF")
    ] = None,
    as_json: JSON_OPTION = False,
    show_all: Annotated[bool, typer.Option("--all", help="show every impacted target")] = False,
    root: ROOT_OPTION = None,
    no_daemon: NO_DAEMON_OPTION = False,
) -> None:
    """Targets a change can break, each with the shortest chain of reasons."""
    from maestro import wire
    from maestro.cli import via_daemon
    from maestro.engine.changes import usable
    from maestro.graph.extensions import extension_notes
    from maestro.reports import ImpactedReport
    from maestro.workspace import normalize

    workspace = resolve_root(root)
    given = list(paths or [])
    if given and since:
        raise typer.BadParameter("give changed paths or --since, not both")
    explicit = bool(given)
    # A name that is not UTF-8 is dropped here, where the warning reaches the user (the daemon
    # would only log it): paths given and all dropped mean no changes, not git's.
    given = [p for p in given if usable(normalize(workspace, p))]
    # Paths are resolved here, against this process's cwd: the daemon's cwd is not the user's.
    params = wire.ImpactedParams(
        paths=[normalize(workspace, p) for p in given] if explicit else None,
        since=since,
        hops=None if as_json or show_all else SHOWN,  # the text shows SHOWN trees
        why=as_json,  # the text prints the structured chains, never the one-line `why`
    )
    report = via_daemon.call(workspace, wire.IMPACTED, params, no_daemon=no_daemon)
    if report is None:
        graph = open_graph(workspace)
        changes = collect_changes(workspace, given, since) if given or not explicit else []
        if not explicit:  # git's working tree, or since REF: with the hidden files pytest uses
            from maestro.engine.changes import from_hidden

            changes += from_hidden(graph)
        started = time.perf_counter()
        impacts = graph.impacted(changes)
        elapsed = (time.perf_counter() - started) * 1000
        notes = extension_notes(graph, changes, impacts)
        data = ImpactedReport.data(
            str(workspace), changes, impacts, elapsed, why=as_json, notes=notes
        )
        report = ImpactedReport.model_validate(data)
    if as_json:
        typer.echo(report.model_dump_json(by_alias=True, indent=2, exclude={"etag", "unchanged"}))
        return
    render_impacted(report.model_dump(mode="json", by_alias=True), show_all=show_all)


def why(
    target: Annotated[
        str, typer.Argument(help="a test file, a pytest node id or //declared-target")
    ],
    path: Annotated[str, typer.Argument(help="a file (or global input) it may depend on")],
    as_json: JSON_OPTION = False,
    root: ROOT_OPTION = None,
    no_daemon: NO_DAEMON_OPTION = False,
) -> None:
    """Why TARGET depends on FILE: the shortest chain of reasons, or that it does not."""
    from maestro import wire
    from maestro.cli import via_daemon
    from maestro.reports import HopModel, WhyReport
    from maestro.workspace import normalize

    workspace = resolve_root(root)
    if target.startswith("//"):
        target_rel = target
    else:  # a file, or a pytest node id (its file part is the path)
        file, sep, node = target.partition("::")
        target_rel = normalize(workspace, file) + sep + node
    path_rel = normalize(workspace, path)
    params = wire.WhyParams(target=target_rel, path=path_rel)
    target_rel, path_rel = params.target, params.path  # as the daemon sees them (UTF-8)
    report = via_daemon.call(workspace, wire.WHY, params, no_daemon=no_daemon)
    if report is None:
        graph = open_graph(workspace)
        chain = graph.why(target_rel, path_rel)
        report = WhyReport(
            target=target_rel,
            path=path_rel,
            depends=chain is not None,
            reason=[HopModel.of(h) for h in chain or ()],
        )
    if as_json:
        typer.echo(report.model_dump_json(by_alias=True, indent=2, exclude={"etag", "unchanged"}))
        return
    code = render_why(report.model_dump(mode="json", by_alias=True))
    if code:
        raise typer.Exit(code)


@graph_app.command("export")
@fail_on_error
def export(
    fmt: Annotated[str, typer.Option("--format", help="dot or json")] = "json",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="write to a file")] = None,
    root: ROOT_OPTION = None,
    no_daemon: NO_DAEMON_OPTION = False,
) -> None:
    """The whole graph as Graphviz dot or node-link JSON."""
    from maestro import wire
    from maestro.cli import via_daemon

    if fmt not in ("dot", "json"):
        raise typer.BadParameter("--format must be dot or json")
    workspace = resolve_root(root)
    # A one-off dump: served by a running daemon, never worth starting one for.
    params = wire.GraphExportParams(format="dot" if fmt == "dot" else "json")
    result = via_daemon.call(workspace, wire.GRAPH_EXPORT, params, no_daemon=no_daemon, start=False)
    if result is not None:
        text = result.text
    else:
        graph = open_graph(workspace)
        text = export_dot(graph) if fmt == "dot" else export_json(graph)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output}")


impacted = fail_on_error(impacted)
why = fail_on_error(why)
