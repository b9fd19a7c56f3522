"""The team coordinator's "back off" in the editor. A 429 with Retry-After makes the daemon
work from its local cache until a time it pushes at once (the ``remote.backoff`` event: start, a
later end, end) and its status reports (``remote.backoff_until``). The server says so once per
episode (a Warning) and in ``maestro/remoteBackoff`` (start, a later end time, end) for status
bars, from the event; it also reads the status when the daemon connects (an episode already
open) and every ``FALLBACK_POLL_S`` while connected, in case an event was missed."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from maestro.errors import MaestroError
from maestro.server import methods
from maestro.server.methods import RemoteBackoffParams
from maestro.server.policy import show
from maestro.wire import STATUS, Empty, RemoteBackoff, RemoteStatus

if TYPE_CHECKING:
    from maestro.server.server import MaestroServer, Workspace

log = logging.getLogger(__name__)

FALLBACK_POLL_S = 10.0
"""How often a connected daemon with a remote is asked anyway (the event is what is timely)."""
IDLE_POLL_S = 15.0
"""... and one without a remote (the editor's coordinatorUrl may give it one)."""


WARN_AGAIN_S = 60.0


def message(until: float, rule: str | None) -> str:
    clock = time.strftime("%H:%M:%S", time.localtime(until))
    return (
        f"Maestro: team cache asked us to wait until {clock} (rule {rule or 'not given'}); "
        "working from the local cache"
    )


def remote_of(daemon_status: Any) -> RemoteStatus | None:
    """The ``remote`` part of a daemon status (a model, or a dict from an older path)."""
    remote = getattr(daemon_status, "remote", None)
    if remote is None and isinstance(daemon_status, dict):
        remote = daemon_status.get("remote")
    if isinstance(remote, dict):
        return RemoteStatus.model_validate(remote)
    return remote if isinstance(remote, RemoteStatus) else None


def note(ls: MaestroServer, ws: Workspace, remote: RemoteStatus | None) -> None:
    """Compare the daemon's status with what the editor was told; tell it what changed."""
    if remote is None:
        _note(ls, ws, None, None)
    else:
        _note(ls, ws, remote.backoff_until, remote.backoff_rule)


def on_event(ls: MaestroServer, ws: Workspace, payload: Any) -> None:
    """The daemon's ``remote.backoff`` event: the same comparison, at once."""
    try:
        event = RemoteBackoff.model_validate(payload)
    except ValueError as exc:
        log.warning("malformed remote.backoff event ignored: %s", exc)
        return
    _note(ls, ws, event.until if event.active else None, event.rule)
    if ws.backoff_until is not None and (ws.backoff_watch is None or ws.backoff_watch.done()):
        ws.backoff_watch = ls.spawn(watch(ls, ws), name="maestro-backoff")


def _note(ls: MaestroServer, ws: Workspace, until: float | None, rule: str | None) -> None:
    active = until is not None and until > time.time()
    if active and until is not None:
        if ws.backoff_until is not None and until <= ws.backoff_until:
            return  # told already (the event and a poll may both bring it)
        first = ws.backoff_until is None
        ws.backoff_until = until
        text = message(until, rule)
        _notify(ls, ws, active=True, until=until, rule=rule, text=text)
        # once per episode (a later end time only updates the status bar), and not again for
        # an episode that starts right after one ended: the retried uploads met the limit again
        if first and time.monotonic() - ws.backoff_warned_at > WARN_AGAIN_S:
            ws.backoff_warned_at = time.monotonic()
            show(ls, types.MessageType.Warning, text)
    elif ws.backoff_until is not None:
        ws.backoff_until = None
        _notify(ls, ws, active=False, until=None, rule=None, text="team cache available again")


def _notify(
    ls: MaestroServer, ws: Workspace, *, active: bool, until: float | None, rule: str | None,
    text: str,
) -> None:  # fmt: skip
    params: RemoteBackoffParams = {
        "root": str(ws.root), "active": active, "until": until, "rule": rule, "message": text,
    }  # fmt: skip
    try:
        methods.notify(ls, methods.REMOTE_BACKOFF, params)
    except Exception as exc:  # a client gone mid-send
        log.info("remoteBackoff not sent: %s", exc)


async def watch(ls: MaestroServer, ws: Workspace) -> None:
    """Read the daemon's status while its link is connected (one watcher per workspace): at
    once (an episode open before the server subscribed), then as a fallback for a missed event,
    and at the end of a known episode so that its end is told on time even without one."""
    while ws.link.state == "connected" and not ls.shutting_down:
        try:
            status = await ws.link.call(STATUS, Empty())
        except MaestroError as exc:
            log.debug("backoff watch of %s stopped: %s", ws.root, exc.message)
            break
        remote = remote_of(status)
        note(ls, ws, remote)
        if ws.backoff_until is not None:
            # wake at the end too, so the end is reported on time
            delay = min(FALLBACK_POLL_S, max(0.05, ws.backoff_until - time.time() + 0.05))
        else:
            delay = FALLBACK_POLL_S if remote is not None else IDLE_POLL_S
        await asyncio.sleep(delay)
    ws.backoff_watch = None
