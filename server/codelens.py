"""Code lenses. Test files: "Run file" and the file's last result on the first line; "Run" and the
last result (with "cached") above every test function and class. Source files: "N impacted test
files" (run them on click); a source module pytest collects for its doctests has both. Test files
are recognised by the daemon's graph, functions by ``ast`` on the editor's text, results come from
memory: a lens request never waits on pytest and costs a memoised daemon answer or two."""

from __future__ import annotations

import logging

from lsprotocol import types

from maestro.errors import MaestroError
from maestro.server.discovery import flatten
from maestro.server.impacted import impacted_targets
from maestro.server.restore import restore
from maestro.server.results import TestState, ran_words, summarize
from maestro.server.server import TEST_NAME, MaestroServer, Workspace

log = logging.getLogger(__name__)

ICONS = {"passed": "✓", "failed": "✗", "error": "✗", "skipped": "○", "xfailed": "○", "xpassed": "!"}


def _lens(line: int, title: str, command: str, *args: object) -> types.CodeLens:
    pos = types.Position(line=line, character=0)
    return types.CodeLens(
        range=types.Range(start=pos, end=pos),
        command=types.Command(title=title, command=command, arguments=list(args)),
    )


OUTDATED = " (outdated: edited since)"
UNSAVED = " (unsaved edit)"  # the results are of the saved text, not of the buffer


def _result_title(states: list[TestState], cached: bool) -> str:
    failing = [s for s in states if s.failing]
    worst = failing[0] if failing else states[0]
    icon = ICONS.get(worst.outcome, "?")
    if len(states) == 1:
        title = f"{icon} {worst.outcome} {worst.duration_s * 1000:.0f} ms"
    else:
        title = f"{icon} {summarize(states)}"
    if cached or all(s.cached for s in states):
        restored = next((s for s in states if s.run_id is None and s.cached), None)
        when = ran_words(restored.ran_at, restored.ran_on) if restored else ""
        title += f" (cached, {when})" if when else " (cached)"
    if any(s.flaky for s in states):
        title += " flaky"
    return title


def test_file_lenses(
    ls: MaestroServer, ws: Workspace, uri: str, rel: str, *, functions: bool = True
) -> list[types.CodeLens]:
    items = ls.test_items(uri, rel)
    plan = ws.results.files.get(rel)
    file_cached = plan is not None and not plan.runs
    lenses = [_lens(0, "▶ Run file", "maestro.runFile", uri)]
    states = ws.results.of_file(rel)
    unsaved = UNSAVED if ls.is_dirty(uri) else ""
    if states:
        outdated = OUTDATED if ws.results.is_outdated(rel, states) else unsaved
        title = "last: " + _result_title(states, file_cached) + outdated
        lenses.append(_lens(0, title, "maestro.explain", rel))
    elif plan is not None:
        lenses.append(_lens(0, f"last: {plan.describe}", "maestro.explain", rel))
    for item in flatten(items) if functions else []:
        lenses.append(_lens(item.line, "▶ Run", "maestro.runNode", item.nodeid, uri))
        node_states = ws.results.of_node(item.nodeid)
        if node_states:
            outdated = OUTDATED if ws.results.is_outdated(rel, node_states) else unsaved
            lenses.append(
                _lens(
                    item.line,
                    _result_title(node_states, file_cached) + outdated,
                    "maestro.explain",
                    item.nodeid,
                )
            )
    return lenses


async def source_file_lenses(
    ls: MaestroServer, ws: Workspace, uri: str, *, also_test: str | None = None
) -> list[types.CodeLens]:
    """The "▶ N impacted test files" lens; ``also_test``: the file is a test file too (a module
    collected for its doctests), so the lens is shown only when other test files depend on it."""
    try:
        report = await impacted_targets(ls, ws, [uri], None, cache_state=False, tests_only=True)
    except MaestroError as exc:
        log.info("no impacted lens for %s: %s", uri, exc.message)
        return []
    count = report["count"]
    if also_test is not None and all(row["target"] == also_test for row in report["impacted"]):
        return []
    unsaved = " (unsaved edit)" if report["source"] in ("buffers", "mixed") else ""
    # the rows are test files: "9 impacted tests" above a change that runs 78 read as 9 tests
    title = f"{count} impacted test file{'s' if count != 1 else ''}{unsaved}"
    if count:
        title = "▶ " + title
    return [_lens(0, title, "maestro.runImpacted", uri)]


def register(server: MaestroServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_CODE_LENS, types.CodeLensOptions(resolve_provider=False))
    async def code_lens(ls: MaestroServer, params: types.CodeLensParams) -> list[types.CodeLens]:
        settings = ls.settings.code_lens
        uri = params.text_document.uri
        located = ls.locate_python(uri) if settings.enabled else None
        if located is None:
            return []
        ws, rel = located
        if await ls.is_test_file(ws, rel):
            # the first lens request of a fresh server shows what the cache holds already
            await restore(ls, ws, [rel])
            lenses = test_file_lenses(ls, ws, uri, rel, functions=settings.test_functions)
            if settings.impacted_on_source and not TEST_NAME.search(rel):
                # a source module pytest collects for its doctests (--doctest-modules): its
                # edits still run the tests that import it, the lens a source file has
                lenses += await source_file_lenses(ls, ws, uri, also_test=rel)
            return lenses
        if settings.impacted_on_source:
            return await source_file_lenses(ls, ws, uri)
        return []
