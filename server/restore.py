"""Results that survive a restart: for a test file the server knows no result of (a fresh server,
a file just opened), ask the daemon for the stored result of the file's *current* inputs
(``cached_results``: keys computed as a run would, nothing run). What it finds is shown like any
cached result (lenses, diagnostics, hover, the test explorer), marked cached, with when and where
it ran. An input changed since: no stored result matches, nothing is shown.

Asked once per file and graph generation; concurrent askers (didOpen, the first lens request,
discovery) share one answer."""

from __future__ import annotations

import asyncio
import itertools
import logging

from maestro.counts import plural
from maestro.errors import MaestroError
from maestro.server import diagnostics, methods, testexplorer
from maestro.server.server import MaestroServer, Workspace
from maestro.wire import CACHED_RESULTS, CachedResultsParams

log = logging.getLogger(__name__)

_ids = itertools.count(1)


async def restore(ls: MaestroServer, ws: Workspace, rels: list[str]) -> list[str]:
    """Stored results of ``rels`` without known results; the files that got one."""
    waiting: list[asyncio.Future[bool]] = []
    todo: list[str] = []
    for rel in rels:
        asked = ws.restoring.get(rel)
        if asked is not None and asked[0] == ws.generation:
            waiting.append(asked[1])
        elif not ws.results.of_file(rel):
            todo.append(rel)
    if todo:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        for rel in todo:
            ws.restoring[rel] = (ws.generation, future)
        try:
            found = await _ask(ls, ws, todo)
        except asyncio.CancelledError:
            # the asker went away (the editor cancelled its lens request): not asked, ask again
            for rel in todo:
                if ws.restoring.get(rel, (0, None))[1] is future:
                    del ws.restoring[rel]
            raise
        finally:
            if not future.done():
                future.set_result(True)
    else:
        found = []
    if waiting:
        # not gather(): a cancelled waiter (the editor cancels a lens request it replaces) would
        # cancel the shared answer, and every later asker of the file would end cancelled too
        await asyncio.wait(waiting)
    return found


async def _ask(ls: MaestroServer, ws: Workspace, rels: list[str]) -> list[str]:
    try:
        answer = await ws.link.call(CACHED_RESULTS, CachedResultsParams(paths=rels))
    except MaestroError as exc:
        log.info("no stored results for %s: %s", ", ".join(rels[:3]), exc.message)
        for rel in rels:
            ws.restoring.pop(rel, None)  # ask again next time
        return []
    found: list[str] = []
    for f in answer.files:
        if f.result is None or ws.results.of_file(f.target):
            continue  # a run reported meanwhile: it is newer
        ws.results.record_restored(f.target, f.result)
        found.append(f.target)
    if found:
        _show(ls, ws, found)
    return found


def _show(ls: MaestroServer, ws: Workspace, rels: list[str]) -> None:
    """Diagnostics of the failures, and the results into the test explorer as a run of its own
    (the Testing view only shows results inside runs)."""
    for rel in rels:
        if any(s.failing for s in ws.results.of_file(rel)):
            diagnostics.publish(ls, ws, rel)
    if not ls.test_explorer or ls.shutting_down:
        return
    run_id = f"stored-{next(_ids)}"
    root = str(ws.root)
    label = "stored results"
    testexplorer.begin(ls, run_id, "explorer", label, root)
    states = [s for rel in rels for s in ws.results.of_file(rel)]
    for state in states:
        testexplorer.finished_state(ls, run_id, ws, state)
    summary: methods.RunSummary = {
        "runId": run_id,
        "root": root,
        "kind": "explorer",
        "label": label,
        "cancelled": False,
        "error": None,
        "message": (
            f"{plural(len(states), 'stored result')} of {plural(len(rels), 'file')} (cached)"
        ),
    }
    testexplorer.end(ls, summary)
