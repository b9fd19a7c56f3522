"""Hover: on a test function (or the line where it failed), its last outcome, duration, pytest's
report of a failure and why it is selected; on an import line, how many tests depend on the
imported module."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from lsprotocol import types

from maestro.errors import MaestroError
from maestro.nodeids import base as base_nodeid
from maestro.server.codelens import OUTDATED, UNSAVED
from maestro.server.discovery import import_at, item_at
from maestro.server.impacted import impacted_targets
from maestro.server.results import TestState, excerpt, summarize
from maestro.server.server import MaestroServer, Workspace

log = logging.getLogger(__name__)


def module_file(root: Path, module: str, names: list[str]) -> Path | None:
    """The workspace file of an absolute module (root or src layout), or None (third party)."""
    parts = module.split(".")
    candidates: list[list[str]] = [[*parts, n] for n in names] + [parts]
    for base in (root, root / "src"):
        for cand in candidates:
            for path in (
                base.joinpath(*cand).with_suffix(".py"),
                base.joinpath(*cand, "__init__.py"),
            ):
                if path.is_file():
                    return path
    return None


def fenced(text: str) -> str:
    """``text`` as a Markdown code block whose fence no backtick run inside it closes."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _of(nodeid: str, hovered: str) -> str:
    """ " of [2-3]" when the report is one parametrization's of the hovered test."""
    return f" of {nodeid.removeprefix(hovered)}" if nodeid != hovered else ""


SHOWN_AT_LINE = 5  # tests named when several failed at one line; the rest are counted


def _failing_at(ws: Workspace, rel: str, line: int) -> list[TestState]:
    """The tests that failed at ``line`` (0-based) of their file, where their diagnostics are,
    in the diagnostics' order (the order they ran in)."""
    return [s for s in ws.results.of_file(rel) if s.failing and s.test_line == line + 1]


def _failing_head(rel: str, failing: list[TestState]) -> str | None:
    """ "**6 tests failed at this line**: A, B, ... and 1 more" when more than one test (not
    only the parameter sets of one) failed there; None otherwise."""
    if len({base_nodeid(s.nodeid) for s in failing}) < 2:
        return None
    names = [s.nodeid.removeprefix(f"{rel}::") for s in failing]
    shown = ", ".join(names[:SHOWN_AT_LINE])
    more = f" and {len(names) - SHOWN_AT_LINE} more" if len(names) > SHOWN_AT_LINE else ""
    outcomes = summarize(failing)
    kinds = "" if outcomes == f"{len(failing)} failed" else f" ({outcomes})"
    return f"**{len(failing)} tests failed at this line**{kinds}: {shown}{more}"


async def test_hover(ls: MaestroServer, ws: Workspace, uri: str, rel: str, line: int) -> str | None:
    item = item_at(ls.test_items(uri, rel), line)
    head: str | None = None
    if item is not None:
        nodeid = item.nodeid
    else:
        failing = _failing_at(ws, rel, line)
        if not failing:
            return None
        nodeid = base_nodeid(failing[0].nodeid)
        head = _failing_head(rel, failing)
    states = ws.results.of_node(nodeid)
    lines = [head, "", f"**{nodeid}**", ""] if head else [f"**{nodeid}**", ""]
    if states:
        worst = next((s for s in states if s.failing), states[0])
        duration = sum(s.duration_s for s in states)
        cached = " (cached result)" if all(s.cached for s in states) else ""
        # as the lens above it says: a result of other inputs than the saved or typed ones
        outdated = ws.results.is_outdated(rel, states)
        stale = OUTDATED if outdated else UNSAVED if ls.is_dirty(uri) else ""
        lines.append(
            f"Last result: **{summarize(states)}** in {duration * 1000:.1f} ms{cached}{stale}"
        )
        if worst.failing and worst.message:
            lines.append(f"\n`{worst.message}`")
            if worst.raised_path:
                lines.append(f"\nraised at {worst.raised_path}:{worst.raised_line}")
            if worst.details:
                lines.append(f"\npytest's report{_of(worst.nodeid, nodeid)}:")
                lines.append(fenced(excerpt(worst.details)))
    else:
        lines.append("Not run in this session.")
    plan = ws.results.files.get(rel)
    if plan is not None:
        lines.append(f"\nLast run of the file: {plan.describe}")
    try:
        report = await impacted_targets(ls, ws, None, None, cache_state=False, tests_only=True)
        impact = next((r for r in report["impacted"] if r["target"] == rel), None)
        if impact is not None:
            lines.append(f"\nSelected: {impact['why']}")
        else:
            lines.append("\nNot impacted by the current changes.")
    except MaestroError as exc:
        lines.append(f"\n(selection unknown: {exc.message})")
    return "\n".join(lines)


async def import_hover(ls: MaestroServer, ws: Workspace, uri: str, line: int) -> str | None:
    found = import_at(ls.text_of(uri) or "", line)
    if found is None:
        return None
    path = module_file(ws.root, found.module, found.names)
    if path is None:
        return f"`{found.module}`: not a workspace module"
    rel = ws.rel(path)
    from maestro.server.util import path_to_uri

    try:
        report = await impacted_targets(
            ls, ws, [path_to_uri(path)], None, cache_state=False, tests_only=True
        )
    except MaestroError as exc:
        return f"`{found.module}` ({rel}): dependents unknown ({exc.message})"
    count = report["count"]
    shown = ", ".join(r["target"] for r in report["impacted"][:5])
    more = f" and {count - 5} more" if count > 5 else ""
    return (
        f"`{found.module}` ({rel}): **{count}** test file{'s' if count != 1 else ''} depend on it"
        + (f"\n\n{shown}{more}" if count else "")
    )


def register(server: MaestroServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_HOVER)
    async def hover(ls: MaestroServer, params: types.HoverParams) -> types.Hover | None:
        uri = params.text_document.uri
        located = ls.locate_python(uri)
        if located is None:
            return None
        ws, rel = located
        line = params.position.line
        text: str | None = None
        if await ls.is_test_file(ws, rel):
            text = await test_hover(ls, ws, uri, rel, line)
        if text is None:
            text = await import_hover(ls, ws, uri, line)
        if text is None:
            return None
        return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text))
