"""`maestro stale` and `maestro status`: the workspace at a glance, through the daemon if it runs.

`stale` prints exactly what the in-process command of maestro/cli/test_cmd.py prints (same
StaleResult model either way); it replaces that command in the app once wired there.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from maestro.cli import common
from maestro.cli.common import JSON_OPTION, ROOT_OPTION, console, report_error, resolve_root
from maestro.cli.test_cmd import PYTEST_ARGS
from maestro.cli.test_cmd import TestCommand as TestCommand  # splits at `--` (cli/app.py)
from maestro.cli.via_daemon import NO_DAEMON_OPTION
from maestro.counts import plural
from maestro.errors import MaestroError
from maestro.wire import (
    RetraceStatus,
    SpeculationStatus,
    StaleResult,
    TeamModelStatus,
    TelemetryUploadStatus,
)

log = logging.getLogger(__name__)


def stale_in_process(root: Path, pytest_args: Sequence[str] = ()) -> StaleResult:
    from maestro.cli.fast import stale_data

    return StaleResult.model_validate(stale_data(root, pytest_args))


def stale(
    ctx: typer.Context,
    root: ROOT_OPTION = None,
    as_json: JSON_OPTION = False,
    no_daemon: NO_DAEMON_OPTION = False,
) -> None:
    """Test files with no cached passing result for their current inputs, and why. Give the
    run's pytest arguments after `--`, as to `maestro test` (PYTEST_ADDOPTS is read as pytest
    reads it)."""
    import os

    from maestro import wire
    from maestro.cli import via_daemon
    from maestro.cli.fast import junit_of, paths_of, stale_scope, with_env_addopts
    from maestro.cli.test_render import print_stale

    try:
        workspace = resolve_root(root)
        given = with_env_addopts(ctx.meta.get(PYTEST_ARGS, []), os.environ)
        # read as `maestro test` reads them: the paths choose the files, and they and its
        # --junitxml are no pytest arguments of a file's key
        named, pytest_args = paths_of(junit_of(given)[0], workspace)
        scope = stale_scope(workspace, named)
        params = wire.StaleParams(pytest_args=pytest_args)
        result = via_daemon.call(workspace, wire.STALE, params, no_daemon=no_daemon)
        if result is None:
            result = stale_in_process(workspace, pytest_args)
    except MaestroError as exc:
        raise common.pytest_style_exit(exc) from None
    print_stale(result.model_dump(mode="json", by_alias=True), as_json=as_json, scope=scope)


def _status_offline(workspace: Path, *, as_json: bool) -> None:
    """What ``status`` can say with no daemon, reading files only (starting nothing, creating
    nothing): the graph index the last build saved (not the graph: none is loaded) and the
    cache's counters."""
    import datetime as dt

    from maestro.graph.index import Index
    from maestro.paths import cache_dir, graph_index_path

    index_path = graph_index_path(workspace)
    index = Index.load(index_path) if index_path.is_file() else None
    saved = None
    if index is not None and index.saved_at_ns:
        saved = dt.datetime.fromtimestamp(index.saved_at_ns / 1e9, tz=dt.UTC)
    graph: dict[str, Any] | None = None
    if index is not None and saved is not None:
        # it holds the files the build scanned (Python modules, doctest text files)
        graph = {"scanned_files": len(index.files), "saved_at": saved.isoformat()}
    cache: dict[str, Any] | None = None
    lmdb_dir = cache_dir() / "lmdb"
    if lmdb_dir.is_dir():
        from maestro.cache import Cache

        try:
            with Cache.open(lmdb_dir) as opened:
                cache = opened.stats().model_dump(mode="json")
        except (MaestroError, OSError) as exc:  # another version's, or damaged: not shown
            log.info("cache not readable for status: %s", exc)
    if as_json:
        data = {"running": False, "root": str(workspace), "graph_index": graph, "cache": cache}
        console.print_json(json.dumps(data))
        return
    console.print(f"[bold]daemon[/] not running for {escape(str(workspace))}", highlight=False)
    if graph is not None and saved is not None:
        ago = _ago(dt.datetime.now(dt.UTC) - saved)
        console.print(
            f"[bold]graph[/]  not loaded; its last build ({ago} ago) saved an index of "
            f"{plural(graph['scanned_files'], 'scanned file')}",
            highlight=False,
        )
    else:
        console.print("[bold]graph[/]  not loaded, and no build saved an index yet")
    if cache is not None:
        rate = f"{cache['hit_rate']:.1%}" if cache.get("hit_rate") is not None else "-"
        console.print(
            f"[bold]cache[/]  {plural(cache['actions'], 'result')}, "
            f"{plural(cache['blobs'], 'blob')}, "
            f"hit rate {rate}, {cache['wall_seconds_saved']:.1f} s saved"
            f" ({escape(str(cache['path']))})",
            highlight=False,
        )
    else:
        console.print(f"[bold]cache[/]  none yet at {escape(str(lmdb_dir))}", highlight=False)
    console.print(
        "[dim]start the daemon: maestro daemon start (the graph now: maestro graph stats)[/]"
    )


def _ago(delta: Any) -> str:
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def status(
    root: ROOT_OPTION = None,
    as_json: JSON_OPTION = False,
) -> None:
    """The workspace daemon, its graph and the cache (never starts the daemon)."""
    from maestro import wire
    from maestro.daemon.transport.client import SyncDaemonClient
    from maestro.errors import DaemonNotRunningError

    try:
        workspace = resolve_root(root)
        try:
            with SyncDaemonClient(workspace, start=False, timeout=30.0, client="cli-status") as c:
                daemon = c.call(wire.STATUS)
                graph = c.call(wire.GRAPH_STATS, wire.GraphStatsParams())
                cache = c.call(wire.CACHE_STATS)
        except DaemonNotRunningError:
            _status_offline(workspace, as_json=as_json)
            raise typer.Exit(1) from None
    except MaestroError as exc:
        report_error(exc)
        raise typer.Exit(common.EXIT_INTERNAL) from None
    if as_json:
        data = {
            "running": True,
            "daemon": daemon.model_dump(mode="json"),
            "graph": graph.model_dump(mode="json", by_alias=True, exclude={"diagnostics"}),
            "cache": cache.model_dump(mode="json"),
        }
        console.print_json(json.dumps(data))
        return
    rate = f"{cache.hit_rate:.1%}" if cache.hit_rate is not None else "-"
    console.print(
        f"[bold]daemon[/] pid {daemon.pid}, up {daemon.uptime_s:.0f} s, "
        f"{daemon.connections} connection(s), log {escape(str(daemon.log_path))}",
        highlight=False,
    )
    console.print(
        f"[bold]graph[/]  {graph.files:,} files ({graph.python_files:,} Python), "
        f"{graph.tests:,} test files, {sum(graph.edges.values()):,} edges, "
        f"{len(graph.diagnostics)} diagnostics",
        highlight=False,
    )
    console.print(
        f"[bold]cache[/]  {cache.actions:,} results, {cache.blobs:,} blobs, hit rate {rate}, "
        f"{cache.wall_seconds_saved:.1f} s saved ({escape(str(cache.path))})",
        highlight=False,
    )
    remote = daemon.remote
    if remote is not None:
        line = (
            f"[bold]remote[/] {remote.url} tenant {remote.tenant}, role {remote.role or '?'}, "
            f"uploads {remote.uploads}, queue {remote.queue_length}, circuit {remote.circuit}, "
            f"{remote.remote_hits} remote hits, {remote.uploaded} uploaded"
        )
        if remote.egress_blocked or remote.egress_flagged:
            line += (
                f"\n       secrets found by the last scan: {remote.egress_blocked} uploads "
                f"blocked, {remote.egress_flagged} sent (secrets.redaction.enforce off)"
            )
        if remote.backoff_until:
            line += (
                f"\n       coordinator asked us to back off until {_at(remote.backoff_until)}"
                f"{f' ({remote.backoff_rule})' if remote.backoff_rule else ''}: "
                "working from the local cache, uploads wait"
            )
        if remote.last_error:
            line += f"\n       last error: {escape(remote.last_error)}"
            if remote.hint:
                line += f"\n       hint: {escape(remote.hint)}"
        console.print(line, highlight=False)
        if remote.telemetry is not None:
            console.print(telemetry_line(remote.telemetry), highlight=False)
        if remote.team_model is not None:
            console.print(team_model_line(remote.team_model), highlight=False)
    spec = daemon.speculation
    if spec is not None:
        console.print(speculation_line(spec), highlight=False)
    if daemon.retrace is not None:
        console.print(retrace_line(daemon.retrace), highlight=False)


def _at(epoch: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch)) if epoch else "never"


def telemetry_line(tel: TelemetryUploadStatus) -> str:
    """`maestro status`: what the telemetry uploader did."""
    if tel.every_s <= 0:
        return "[bold]telemetry[/] upload off (telemetry_upload_every_s = 0)"
    line = (
        f"[bold]telemetry[/] every {tel.every_s:g} s, last round {_at(tel.last_round_at)}: "
        f"{tel.rows_sent} rows sent in {tel.batches_sent} batches (last {_at(tel.last_sent_at)}), "
        f"{tel.rows_queued} rows queued, {tel.failures} failed sends"
    )
    if tel.skipped:
        line += f"\n       last round queued nothing: {tel.skipped}"
    if tel.last_error:
        line += f"\n       last send failed: {tel.last_error}"
    return line


def team_model_line(team: TeamModelStatus) -> str:
    """`maestro status`: what the last team-model fetch did and which model ranks."""
    every = f"every {team.every_s:g} s" if team.every_s > 0 else "on maestro model pull only"
    fetched = (
        f"last fetch {_at(team.last_fetch_at)}: {team.last_fetch}"
        if team.last_fetch
        else "not fetched yet"
    )
    return (
        f"[bold]team model[/] fetched {every}, {fetched}\n"
        f"       ranking: {team.description or team.ranking}"
    )


def retrace_line(retrace: RetraceStatus) -> str:
    """`maestro status`: the re-recording of untraced results (before 3.12), and why it is off,
    held or not needed."""
    line = f"[bold]retrace[/] {retrace.state}"
    if retrace.reason:
        line += f" ({retrace.reason})"
    if retrace.pending:
        line += f": {plural(retrace.pending, 'test file')} to re-record"
    if retrace.runs:
        line += (
            f"; {plural(retrace.runs, 're-recording')} stored "
            f"{plural(retrace.stored, 'traced result')}"
        )
    return line


def speculation_line(spec: SpeculationStatus) -> str:
    """`maestro status`: speculation state, its hit/miss/waste, and why it is throttled."""
    model = spec.model + (
        f" (stored model refused: {spec.model_error})" if spec.model_error else ""
    )
    if not spec.enabled:
        return f"[bold]speculation[/] off (ml.speculation.enabled); ranking with {model}"
    used = f"{spec.used_share:.0%}" if spec.used_share is not None else "-"
    waste = f"{spec.waste_share:.0%}" if spec.waste_share is not None else "-"
    line = (
        f"[bold]speculation[/] {spec.state}: {spec.runs} runs, {spec.cancelled} cancelled, "
        f"{spec.hits} hits, {spec.misses} misses, {spec.wasted} wasted, used {used}, "
        f"waste {waste} of {spec.cpu_s:.1f} CPU-s; ranking with {model}"
    )
    if spec.throttled_reason:
        line += f"\n       {spec.throttled_reason}"
    return line
