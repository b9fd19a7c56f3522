"""The test-explorer protocol (modelled on Deno's ``deno/testModule``/``deno/testRun`` and
rust-analyzer's ``experimental/discoverTest``/``runTest``/``changeTestState``/``endRunTest``),
enabled when the client declares ``capabilities.experimental.maestroTestExplorer: true``.

Requests ``maestro/testExplorer/discover``, ``run`` and ``cancel``; notifications ``didChange``,
``begin``, ``progress`` and ``end`` (their shapes: ``methods.py``, docs/lsp.md).
Every run is mirrored, whichever way it was started (lens, command or explorer).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from maestro.counts import plural
from maestro.errors import UnknownTargetError
from maestro.nodeids import base as base_nodeid
from maestro.server import methods
from maestro.server.discovery import TestItem as FoundItem
from maestro.server.methods import (
    CancelParams,
    CancelResult,
    DiscoverParams,
    DiscoverResult,
    ExplorerRunParams,
    ProgressMessage,
    ProgressState,
    Range,
    RunStarted,
    RunSummary,
    TestItem,
    notify,
    serve,
)
from maestro.server.results import TestState
from maestro.server.server import MaestroServer, Workspace

if TYPE_CHECKING:
    from maestro.server.runs import Run

STATE: dict[str, ProgressState] = {
    "passed": "passed",
    "failed": "failed",
    "error": "errored",
    "skipped": "skipped",
    "xfailed": "skipped",
    "xpassed": "passed",
}


def _range(line: int, end_line: int) -> Range:
    return {"start": {"line": line, "character": 0}, "end": {"line": end_line, "character": 0}}


def item_json(item: FoundItem, uri: str) -> TestItem:
    return {
        "id": item.nodeid,
        "label": item.name,
        "kind": "class" if item.kind == "class" else "function",
        "uri": uri,
        "range": _range(item.line, item.end_line),
        "children": [item_json(c, uri) for c in item.children],
    }


def file_json(ls: MaestroServer, ws: Workspace, rel: str) -> TestItem | None:
    uri = ls.uri_of(ws, rel)
    items = ls.test_items(uri, rel)
    if not items:
        return None
    return {
        "id": rel,
        "label": rel.rsplit("/", 1)[-1],
        "kind": "file",
        "uri": uri,
        "range": None,
        "children": [item_json(i, uri) for i in items],
    }


def _notify(ls: MaestroServer, spec: methods.Notification[Any], payload: Any) -> None:
    if ls.test_explorer and not ls.shutting_down:
        notify(ls, spec, payload)


def begin(ls: MaestroServer, run_id: str, kind: methods.RunKind, label: str, root: str) -> None:
    _notify(ls, methods.BEGIN, methods.BeginParams(runId=run_id, kind=kind, label=label, root=root))


def run_begin(ls: MaestroServer, run: Run) -> None:
    begin(ls, run.id, run.kind, run.label, str(run.ws.root))


def run_plan(ls: MaestroServer, run: Run, files: list[dict[str, Any]]) -> None:
    for f in files:
        _notify(
            ls,
            methods.PROGRESS,
            methods.ProgressParams(
                runId=run.id,
                id=f["target"],
                state="enqueued",
                cached=not f.get("runs"),
                describe=f.get("describe"),
            ),
        )


def test_started(ls: MaestroServer, run: Run, nodeid: str) -> None:
    _notify(
        ls,
        methods.PROGRESS,
        methods.ProgressParams(
            runId=run.id, id=base_nodeid(nodeid), nodeid=nodeid, state="started"
        ),
    )


def _message(ls: MaestroServer, ws: Workspace, state: TestState) -> ProgressMessage | None:
    if not state.failing:
        return None
    line = (state.test_line or state.def_line or 1) - 1
    out: ProgressMessage = {
        "text": state.message or state.outcome,
        "location": {"uri": ls.uri_of(ws, state.file), "range": _range(line, line)},
        "related": None,
        "details": state.details,
    }
    if state.raised_path:
        rl = (state.raised_line or 1) - 1
        out["related"] = {"uri": ls.uri_of(ws, state.raised_path), "range": _range(rl, rl)}
    return out


def finished_state(ls: MaestroServer, run_id: str, ws: Workspace, state: TestState) -> None:
    _notify(
        ls,
        methods.PROGRESS,
        methods.ProgressParams(
            runId=run_id,
            id=base_nodeid(state.nodeid),
            nodeid=state.nodeid,
            state=STATE.get(state.outcome, "errored"),
            durationMs=round(state.duration_s * 1000, 3),
            cached=state.cached,
            message=_message(ls, ws, state),
        ),
    )


def test_finished(ls: MaestroServer, run: Run, state: TestState) -> None:
    finished_state(ls, run.id, run.ws, state)


def cached_results(ls: MaestroServer, run: Run, states: list[TestState]) -> None:
    for state in states:
        test_finished(ls, run, state)


def end(ls: MaestroServer, outcome: RunSummary) -> None:
    summary: RunSummary = {k: v for k, v in outcome.items() if k != "files"}  # type: ignore[assignment]
    _notify(
        ls,
        methods.END,
        methods.EndParams(
            runId=outcome["runId"],
            cancelled=outcome.get("cancelled", False),
            error=outcome.get("error"),
            summary=summary,
        ),
    )


def run_end(ls: MaestroServer, run: Run, outcome: RunSummary) -> None:
    end(ls, outcome)


async def document_changed(ls: MaestroServer, uri: str) -> None:
    """Tell the explorer about a test file's current items (on open and save)."""
    located = ls.locate_python(uri) if ls.test_explorer else None
    if located is None:
        return
    ws, rel = located
    if await ls.is_test_file(ws, rel):
        _notify(
            ls,
            methods.DID_CHANGE,
            methods.DidChangeParams(root=str(ws.root), uri=uri, file=file_json(ls, ws, rel)),
        )


RESTORE_BATCH = 32  # files per daemon question: it holds the graph lock while it keys them


async def restore_all(ls: MaestroServer, ws: Workspace, rels: list[str]) -> None:
    """Stored results of every discovered file, a batch at a time, so that lens and impacted
    questions get the daemon in between."""
    from maestro.server.restore import restore

    for start in range(0, len(rels), RESTORE_BATCH):
        await restore(ls, ws, rels[start : start + RESTORE_BATCH])


def register(server: MaestroServer) -> None:
    async def on_graph(ws: Workspace, event: Any) -> None:
        if ws.tests is None:  # files appeared or vanished
            _notify(
                server,
                methods.DID_CHANGE,
                methods.DidChangeParams(root=str(ws.root), uri=None, file=None),
            )

    server.graph_listeners.append(on_graph)

    @serve(server, methods.DISCOVER)
    async def discover_request(ls: MaestroServer, params: DiscoverParams) -> DiscoverResult:
        from maestro.server.impacted import workspace_for

        uris = params.documents()[:1]
        ws = workspace_for(ls, params)
        rels = [ls.ws_of_uri(uris[0])[1]] if uris else sorted(await ls.test_files(ws) or [])
        files = await asyncio.to_thread(lambda: [file_json(ls, ws, r) for r in rels])
        found = [f for f in files if f is not None]
        # the explorer shows stored results of the current inputs (after a restart) as they come
        ls.spawn(restore_all(ls, ws, [f["id"] for f in found]), "restore")
        return {"root": str(ws.root), "files": found}

    @serve(server, methods.EXPLORER_RUN)
    async def run_request(ls: MaestroServer, params: ExplorerRunParams) -> RunStarted:
        from maestro.server.impacted import workspace_for
        from maestro.server.runs import manager
        from maestro.wire import RunTestsParams

        include = params.include
        ws = workspace_for(ls, params)
        args: list[str] = []
        for node in params.exclude:
            args += ["--deselect", node]
        if include is not None and not include:
            raise UnknownTargetError(
                "include is empty",
                hint="leave include out to run every test",
            )
        label = f"run {plural(len(include), 'test')}" if include else "run all tests"
        run = manager(ls).start(
            ws, RunTestsParams(paths=include or [], pytest_args=args), kind="explorer", label=label
        )
        return {"runId": run.id}

    @serve(server, methods.EXPLORER_CANCEL)
    async def cancel_request(ls: MaestroServer, params: CancelParams) -> CancelResult:
        from maestro.server.runs import manager

        return {"cancelled": manager(ls).cancel(params.run_id)}
