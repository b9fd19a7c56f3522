"""Route a CLI command through the workspace daemon when that helps, in process otherwise.

The daemon returns the same report models the in-process path builds (maestro.reports and the
wire models), and the command renders them with the same function, so output does not depend on
who computed it. Policy (``MAESTRO_DAEMON``):

- ``auto`` (default): use a running daemon; start one only for an interactive terminal outside
  CI, where the next command will profit from it (`maestro test` does not wait for it: it runs in
  process and starts one after the run). Scripts and CI never leave a daemon behind.
- ``start``: always start one if needed.  ``off`` (or ``--no-daemon``): always in process.

If the daemon cannot be reached or dies mid-call the command falls back to the in-process path
(with a note on stderr): the daemon is an accelerator, never a new way to fail. Domain errors
(unknown target, bad config, git failures) are raised as they are: in process they would be too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import BaseModel

from maestro.cli.common import err_console
from maestro.cli.fast import may_start as may_start
from maestro.cli.fast import policy as policy
from maestro.errors import (
    ConnectionLostError,
    DaemonError,
    DaemonNotRunningError,
    InternalError,
    MaestroError,
    ProtocolError,
    RequestTimeoutError,
)
from maestro.wire import Event, MethodSpec

if TYPE_CHECKING:
    from maestro.daemon.transport.client import SyncDaemonClient

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)

NO_DAEMON_OPTION = Annotated[
    bool,
    typer.Option(
        "--no-daemon", help="compute in this process, without the workspace daemon (same output)"
    ),
]

CALL_TIMEOUT_S = 600.0
"""A first call may wait for the daemon's initial graph build of a large tree."""

_GIVE_UP = ("daemon_start_failed", "unknown_method", "busy", "cancelled")
_TRANSPORT = (
    DaemonNotRunningError,
    ConnectionLostError,
    RequestTimeoutError,
    ProtocolError,
    InternalError,
)


def call(
    root: Path,
    method: MethodSpec[P, R],
    params: P,
    *,
    no_daemon: bool = False,
    start: bool = True,
) -> R | None:
    """The daemon's answer, or None when the caller should compute it in process."""
    return _via(root, lambda client: client.call(method, params), no_daemon, start)


def stream(
    root: Path,
    method: MethodSpec[P, R],
    params: P,
    on_event: Callable[[Event], None],
    *,
    no_daemon: bool = False,
    start: bool = True,
    environ: Mapping[str, str] | None = None,
) -> R | None:
    """A streaming method (``run_tests``): ``on_event`` gets each event as it arrives; the
    result, or None when the caller should compute it in process. No timeout: a run takes as
    long as the tests do, and Ctrl-C cancels it (the daemon stops the pytest process group).
    ``environ``: what a run that asks for variables by name (``run.env_wanted``) is given."""
    return _via(
        root,
        lambda client: client.stream(method, params, on_event, timeout=None, environ=environ),
        no_daemon,
        start,
    )


def _via(
    root: Path, use: Callable[[SyncDaemonClient], R], no_daemon: bool, start: bool
) -> R | None:
    if no_daemon or policy() == "off":
        return None
    from maestro.daemon.transport.client import SyncDaemonClient

    try:
        with SyncDaemonClient(
            root, start=start and may_start(), client="cli", timeout=CALL_TIMEOUT_S
        ) as client:
            return use(client)
    except DaemonNotRunningError:
        return None
    except MaestroError as exc:
        if recoverable(exc):
            fallback_note(exc)
            return None
        raise


def recoverable(exc: MaestroError) -> bool:
    """Whether the command should compute in process after this daemon failure."""
    if isinstance(exc, _TRANSPORT):
        return True
    return isinstance(exc, DaemonError) and exc.code in _GIVE_UP


def fallback_note(exc: Any) -> None:
    err_console.print(
        f"[yellow]note:[/] the daemon did not answer ({exc.message}); computing in process",
        highlight=False,
    )
