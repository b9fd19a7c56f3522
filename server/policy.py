"""Policy in the editor: the decisions about a test (for ``maestro/explain``), a run the policy
refused (shown with its remediation and retry time), team-bundle incidents and expired feature
flags (each shown once per workspace, not on every reconnect)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from maestro.errors import MaestroError, PolicyDeniedError
from maestro.server import methods
from maestro.server.methods import PolicyDenial, PolicyIncidentParams

if TYPE_CHECKING:
    from maestro.policy.model import DecisionRecord
    from maestro.server.server import MaestroServer, Workspace

log = logging.getLogger(__name__)

INCIDENT_EVENT = "policy.incident"


async def decisions_about(ws: Workspace, test: str, limit: int = 20) -> list[DecisionRecord]:
    """The daemon's policy decisions about a test file or node, newest first (none when the
    daemon cannot say: explain still answers the rest)."""
    from maestro.policy.protocol import POLICY_DECISIONS, PolicyDecisionsParams

    try:
        result = await ws.link.call(POLICY_DECISIONS, PolicyDecisionsParams(test=test, limit=limit))
    except MaestroError as exc:
        log.info("no policy decisions for %s: %s", test, exc.message)
        return []
    return result.decisions


def retry_text(retry_after_ms: int | None) -> str:
    """'retry in 42 s' (as the decision's summary says it), '... s (~3 min)' past two minutes."""
    if retry_after_ms is None:
        return ""
    seconds = max(1, round(retry_after_ms / 1000))
    text = f"retry in {seconds} s"
    if seconds >= 7200:
        text += f" (~{seconds / 3600:.1f} h)"
    elif seconds >= 120:
        text += f" (~{round(seconds / 60)} min)"
    return text


def denial(exc: PolicyDeniedError) -> PolicyDenial:
    # the wire hint is "<remediation>; maestro explain --execution ID": keep the remediation
    parts = [p.strip() for p in (exc.hint or "").split("; ")]
    remediation = "; ".join(p for p in parts if p and not p.startswith("maestro explain"))
    return {
        "message": exc.message,
        "remediation": remediation or None,
        "retryAfterMs": exc.retry_after_ms,
        "executionId": exc.execution_id,
    }


def denial_text(denied: PolicyDenial) -> str:
    """'Maestro: run refused by policy: run denied (retry in 42 s): ... (rule x); remediation:
    ...' with the remediation and retry time added when the summary does not say them."""
    text = f"Maestro: run refused by policy: {denied['message']}"
    if denied["remediation"] and denied["remediation"] not in text:
        text += f". Remediation: {denied['remediation']}"
    retry = retry_text(denied["retryAfterMs"])
    short = retry.split(" (")[0]
    if retry and short in text:
        text = text.replace(short, retry, 1)
    elif retry:
        text += f" ({retry})"
    return text


def show(ls: MaestroServer, kind: types.MessageType, message: str) -> None:
    try:
        ls.window_show_message(types.ShowMessageParams(type=kind, message=message))
    except Exception as exc:  # a client gone mid-send: nothing to show it to
        log.info("showMessage not sent: %s", exc)


def on_incident(ls: MaestroServer, ws: Workspace, payload: dict[str, Any]) -> None:
    """Forward a ``policy.incident`` broadcast; show it once (and its clearing once)."""
    params: PolicyIncidentParams = {
        "root": str(ws.root),
        "active": bool(payload.get("active")),
        "reason": str(payload.get("reason") or ""),
        "message": str(payload.get("message") or ""),
        "revision": payload.get("revision"),
    }
    methods.notify(ls, methods.POLICY_INCIDENT, params)
    if params["active"]:
        key = f"{params['reason']}|{params['revision']}|{params['message']}"
        if ws.incident_shown == key:
            return
        ws.incident_shown = key
        show(
            ls,
            types.MessageType.Warning,
            f"Maestro: team policy bundle rejected ({params['reason']}): {params['message']}; "
            "the last good policy stays in force",
        )
    elif ws.incident_shown is not None:
        ws.incident_shown = None
        show(
            ls,
            types.MessageType.Info,
            "Maestro: team policy incident cleared: "
            + (params["message"] or "a good bundle is in force"),
        )


async def current_incident(ls: MaestroServer, ws: Workspace) -> None:
    """Ask the daemon for the incident open now: one raised before the server subscribed (at
    the daemon's start, or while the server was disconnected) is shown as if it came now."""
    from maestro.policy.protocol import POLICY_INCIDENT_CURRENT
    from maestro.wire import Empty

    try:
        result = await ws.link.call(POLICY_INCIDENT_CURRENT, Empty())
    except MaestroError as exc:  # an older daemon without the method: events only
        log.info("no current policy incident from %s: %s", ws.root, exc.message)
        return
    # none open is not announced as "cleared": a restarted daemon knows no incident until its
    # first sync quarantines the same bundle again, and the editor would flap
    if result.incident is not None and result.incident.active:
        on_incident(ls, ws, result.incident.model_dump())


async def warn_expired_flags(ls: MaestroServer, ws: Workspace) -> list[str]:
    """Show the daemon's expired-flag warnings, each once per workspace; returns those shown."""
    from maestro.flags.report import FLAGS
    from maestro.wire import Empty

    try:
        report = await ws.link.call(FLAGS, Empty())
    except MaestroError as exc:
        log.info("no flag report for %s: %s", ws.root, exc.message)
        return []
    fresh = [w for w in report.warnings if w not in ws.flag_warnings_shown]
    ws.flag_warnings_shown.update(fresh)
    for line in fresh:
        show(ls, types.MessageType.Warning, f"Maestro: {line}")
    return fresh
