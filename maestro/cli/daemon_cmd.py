"""`maestro daemon ...`: start, stop, inspect and read the log of the workspace daemon."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from maestro.cli.common import JSON_OPTION, fail_on_error, resolve_root
from maestro.cli.consoles import console as out
from maestro.cli.consoles import err_console as err
from maestro.errors import DaemonNotRunningError

daemon_app = typer.Typer(
    help="The per-workspace daemon (started on demand by the CLI and the LSP server).",
    no_args_is_help=True,
)

RootOption = Annotated[
    Path | None,
    typer.Option(
        "--root",
        help="Workspace root (default: nearest ancestor of the cwd with pyproject.toml or .git).",
        file_okay=False,
    ),
]


@daemon_app.command()
@fail_on_error
def start(
    root: RootOption = None,
    foreground: Annotated[
        bool, typer.Option("--foreground", help="Run in this process until stopped.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the daemon.")] = 30.0,
) -> None:
    """Start the daemon of the workspace (no-op if it is running)."""
    from maestro.daemon.lifecycle import start_daemon

    ws = resolve_root(root)
    reply = start_daemon(ws, detach=not foreground, timeout=timeout)
    if reply is not None:
        said = f"daemon running for {escape(str(reply.root))} (pid {reply.pid})"
        out.print(said, highlight=False)


@daemon_app.command()
@fail_on_error
def stop(
    root: RootOption = None,
    timeout: Annotated[float, typer.Option(help="Seconds before escalating to signals.")] = 10.0,
) -> None:
    """Stop the daemon gracefully (SIGTERM, then SIGKILL if it does not go)."""
    from maestro.daemon.lifecycle import stop_daemon

    ws = resolve_root(root)
    pid = stop_daemon(ws, timeout=timeout)
    out.print(f"daemon stopped (pid {pid})" if pid else "daemon not running", highlight=False)


@daemon_app.command()
@fail_on_error
def status(
    root: RootOption = None,
    as_json: JSON_OPTION = False,
) -> None:
    """Pid, uptime, versions, connections, socket and log. Exit status 1 if not running."""
    from maestro.daemon.lifecycle import DaemonPaths
    from maestro.daemon.transport.client import SyncDaemonClient
    from maestro.wire import STATUS

    ws = resolve_root(root)
    try:
        with SyncDaemonClient(ws, start=False, timeout=10.0, client="cli-status") as client:
            s = client.call(STATUS)
    except DaemonNotRunningError:
        paths = DaemonPaths.for_root(ws)
        if as_json:
            data = {"running": False, "root": str(ws), "log_path": str(paths.log)}
            out.print_json(json.dumps(data))
        else:
            out.print(f"daemon not running for {escape(str(ws))}", highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        out.print_json(json.dumps({"running": True, **s.model_dump(mode="json")}))
        return
    table = Table(title=f"Daemon for {escape(str(s.root))}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    idle = f"{s.idle_timeout_s:g} s" if s.idle_timeout_s > 0 else "never"
    rows = [
        ("pid", str(s.pid)),
        ("uptime", _duration(s.uptime_s)),
        ("maestro / python", f"{s.maestro_version} / {s.python_version}"),
        ("protocol", str(s.protocol)),
        ("connections", f"{s.connections} (this one included)"),
        ("requests in flight", str(s.requests_in_flight)),
        ("idle shutdown", idle),
        ("socket", s.socket_path),
        ("log", s.log_path),
    ]
    for name, value in rows:
        table.add_row(name, escape(value))  # paths are text, not markup
    out.print(table)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


@daemon_app.command()
@fail_on_error
def logs(
    root: RootOption = None,
    lines: Annotated[int, typer.Option("-n", "--lines", help="Lines from the end.", min=0)] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing.")] = False,
) -> None:
    """Print the end of the daemon log (it survives the daemon; rotated at 8 MiB)."""
    from maestro.daemon.lifecycle import DaemonPaths

    path = DaemonPaths.for_root(resolve_root(root)).log
    if not path.exists() and not follow:
        err.print(f"no daemon log yet at {escape(str(path))}", highlight=False)
        raise typer.Exit(1)
    position = 0
    if path.exists():
        with path.open("rb") as fh:
            data = fh.read()
            position = fh.tell()
        tail = data.splitlines(keepends=True)[-lines:] if lines else []
        sys.stdout.write(b"".join(tail).decode(errors="replace"))
        sys.stdout.flush()
    if not follow:
        return
    try:
        while True:
            position = _follow_once(path, position)
            time.sleep(0.25)
    except KeyboardInterrupt:
        return


def _follow_once(path: Path, position: int) -> int:
    """Print what was appended since ``position``; start over if the log was rotated."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size < position:
        position = 0
    if size == position:
        return position
    with path.open("rb") as fh:
        fh.seek(position)
        chunk = fh.read()
    sys.stdout.write(chunk.decode(errors="replace"))
    sys.stdout.flush()
    return position + len(chunk)
