"""Test failures as diagnostics: at the failing line in the test, with related information at the
line that raised in the source. One publish per test file replaces that file's diagnostics (a
passing run clears them; so does the file vanishing from disk, which no run would report).

The message's first line says which test failed with what. For a client without the test
explorer (Neovim, Emacs: they show a diagnostic's whole message in its float or echo area),
the end of pytest's report of the failure follows it (the traceback's end, the assertion diff);
the explorer's client shows the report in its failure message instead."""

from __future__ import annotations

from lsprotocol import types

from maestro import nodeids
from maestro.server.discovery import flatten
from maestro.server.results import TestState, excerpt, ran_words
from maestro.server.server import MaestroServer, Workspace
from maestro.wire import Event

SOURCE = "maestro"


def _line_text(ls: MaestroServer, uri: str, line0: int) -> str:
    text = ls.text_of(uri) or ""
    lines = text.splitlines()
    return lines[line0] if 0 <= line0 < len(lines) else ""


def _range(ls: MaestroServer, uri: str, line1: int) -> types.Range:
    """The non-blank part of a 1-based line."""
    line0 = max(line1 - 1, 0)
    text = _line_text(ls, uri, line0)
    start = len(text) - len(text.lstrip())
    return types.Range(
        start=types.Position(line=line0, character=start),
        end=types.Position(line=line0, character=max(len(text), start)),
    )


def _def_lines(ls: MaestroServer, uri: str, rel: str) -> dict[str, int]:
    """Node id -> 1-based def line, from the document's current text."""
    return {i.nodeid: i.line + 1 for i in flatten(ls.test_items(uri, rel))}


MAX_IDS = 10  # parameter ids named in one diagnostic; the rest are counted
SHORT_MESSAGE = 160  # characters of pytest's message on the first line when its report follows


def _params(state: TestState) -> str:
    """``[a-1]`` of ``test_x[a-1]``; "" for a test without parameters."""
    return nodeids.params(state.nodeid)


def diagnostic_for(
    ls: MaestroServer,
    ws: Workspace,
    uri: str,
    states: list[TestState],
    def_lines: dict[str, int],
) -> types.Diagnostic:
    """One diagnostic for the tests that failed at one place (the parametrizations of a test
    failing at the same assert are one problem, with their parameter ids listed)."""
    state = states[0]
    line = state.test_line or state.def_line or def_lines.get(nodeids.base(state.nodeid)) or 1
    related: list[types.DiagnosticRelatedInformation] = []
    if state.raised_path and (state.raised_path != state.file or state.raised_line != line):
        raised_uri = ls.uri_of(ws, state.raised_path)
        related.append(
            types.DiagnosticRelatedInformation(
                location=types.Location(
                    uri=raised_uri, range=_range(ls, raised_uri, state.raised_line or 1)
                ),
                message=f"raised here: {state.raised_path}:{state.raised_line}",
            )
        )
    name = nodeids.base(state.nodeid).split("::", 1)[-1]
    ids = [p for p in (_params(s) for s in states) if p]
    if len(states) > 1 or ids:
        shown = ", ".join(ids[:MAX_IDS]) + (
            f" and {len(ids) - MAX_IDS} more" if len(ids) > MAX_IDS else ""
        )
        count = f"{len(states)} parameter sets" if len(states) > 1 else "1 parameter set"
        name = f"{name} ({count}: {shown})"
    said = state.message or "no message"
    report = state.details if not ls.test_explorer else None
    if report and len(said) > SHORT_MESSAGE:  # the report holds it whole
        said = said[: SHORT_MESSAGE - 1] + "…"
    message = f"{name} {state.outcome}: {said}"
    if all(s.cached for s in states):
        when = ran_words(state.ran_at, state.ran_on) if state.run_id is None else ""
        message += f" (cached result, {when})" if when else " (cached result)"
    if report:
        whose = f"pytest's report of {_params(state)}" if len(states) > 1 else "pytest's report"
        message += f"\n\n{whose}:\n{excerpt(report)}"
    return types.Diagnostic(
        range=_range(ls, uri, line),
        message=message,
        severity=types.DiagnosticSeverity.Error,
        source=SOURCE,
        code=state.outcome,
        related_information=related or None,
        data={
            "nodeid": state.nodeid,
            "nodeids": [s.nodeid for s in states],
            "cached": state.cached,
        },
    )


def diagnostics_of(ls: MaestroServer, ws: Workspace, rel: str) -> list[types.Diagnostic]:
    uri = ls.uri_of(ws, rel)
    failing = [s for s in ws.results.of_file(rel) if s.failing]
    if not failing or not (ws.root / rel).is_file():
        return []
    def_lines = _def_lines(ls, uri, rel)
    groups: dict[tuple[object, ...], list[TestState]] = {}
    for s in failing:  # in the order pytest ran them: parameter ids read [5], [6], ... [10]
        line = s.test_line or s.def_line or def_lines.get(nodeids.base(s.nodeid)) or 1
        key = (nodeids.base(s.nodeid), line, s.outcome, s.raised_path, s.raised_line)
        groups.setdefault(key, []).append(s)
    return [diagnostic_for(ls, ws, uri, states, def_lines) for states in groups.values()]


def publish(ls: MaestroServer, ws: Workspace, rel: str) -> None:
    if not ls.settings.diagnostics:
        return
    uri = ls.uri_of(ws, rel)
    ls.text_document_publish_diagnostics(
        types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics_of(ls, ws, rel))
    )


def register(server: MaestroServer) -> None:
    """Diagnostics are pushed by runs (maestro.server.runs); a test file deleted or checked out
    away outside the editor has its failures taken back when the daemon sees it go."""

    async def on_graph(ws: Workspace, event: Event) -> None:
        paths = event.payload.get("paths") or []
        if all((ws.root / p).exists() for p in paths):
            return
        for rel, states in ws.results.by_file().items():
            if any(s.failing for s in states) and not (ws.root / rel).is_file():
                publish(server, ws, rel)

    server.graph_listeners.append(on_graph)
