"""Lifecycle and document sync: initialization options, capabilities, open/change/save/close.

The server follows unsaved buffers: a change only marks the document; lenses and
`maestro/impactedTargets` send the buffer's text to the daemon (``impacted`` with ``buffers``)
when it differs from the disk.
"""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types

from maestro.errors import MaestroError
from maestro.server import methods, testexplorer
from maestro.server.server import TEST_EXPLORER_CAPABILITY, MaestroServer, Workspace
from maestro.server.settings import Settings, SettingsError
from maestro.server.util import plain
from maestro.wire import IMPACTED, Event, ImpactedParams

log = logging.getLogger(__name__)


def _experimental(params: types.InitializeParams) -> dict[str, Any]:
    raw = plain(params.capabilities.experimental)
    return raw if isinstance(raw, dict) else {}


def _read_settings(ls: MaestroServer, options: Any) -> bool:
    """Take new settings; a bad value keeps the current ones and tells the user (whether the
    settings changed)."""
    try:
        settings = Settings.from_options(options, ls.settings)
    except SettingsError as exc:
        log.warning("%s", exc)
        ls.show_error(f"Maestro: {exc.message}. {exc.hint}")
        return False
    changed = settings != ls.settings
    ls.settings = settings
    return changed


async def _restore(ls: MaestroServer, uri: str) -> None:
    """A test file opened with no result known: show its stored result, if its current inputs
    have one (lenses are refreshed; a lens request meanwhile waits for the same answer)."""
    from maestro.server.restore import restore

    located = ls.locate_python(uri)
    if located is None:
        return
    ws, rel = located
    if await ls.is_test_file(ws, rel) and await restore(ls, ws, [rel]):
        ls.schedule_refresh(0)


async def _outdate(ls: MaestroServer, uri: str) -> None:
    """A saved file changed the inputs of its own tests and of the tests it impacts: their
    last results (lenses) are marked outdated until a run or a stored result of the new inputs."""
    from maestro.server.impacted import impacted_targets

    located = ls.locate(uri)
    if located is None or not uri.endswith(".py"):
        return
    ws, rel = located
    targets = [rel]
    if not ws.results.of_file(rel):
        try:
            report = await impacted_targets(ls, ws, [uri], None, cache_state=False, tests_only=True)
        except MaestroError as exc:
            log.info("cannot tell which results %s outdates: %s", rel, exc.message)
            return
        targets = [row["target"] for row in report["impacted"] if row["kind"] == "test"]
    if ws.results.mark_outdated(targets):
        ls.schedule_refresh(0)


async def _outdate_changed(ls: MaestroServer, ws: Workspace, paths: list[str]) -> None:
    """Files the daemon saw change, whoever changed them (a save of a data file, another
    program, a checkout, a deletion): the last results of the tests they impact are outdated."""
    try:
        report = await ws.link.call(IMPACTED, ImpactedParams(paths=paths, hops=0, why=False))
    except MaestroError as exc:
        log.info("cannot tell which results %d changed files outdate: %s", len(paths), exc.message)
        return
    targets = [row.target for row in report.impacted if row.kind == "test"]
    if ws.results.mark_outdated(targets, changed_at=_latest_change(ws, paths)):
        ls.schedule_refresh(0)


def _latest_change(ws: Workspace, paths: list[str]) -> float | None:
    """When the newest of ``paths`` changed (its mtime); None when one is gone (a deletion
    has no time to compare: every result it reaches is outdated)."""
    latest = 0.0
    for path in paths:
        try:
            latest = max(latest, (ws.root / path).stat().st_mtime)
        except OSError:
            return None
    return latest


def register(server: MaestroServer) -> None:
    async def on_graph(ws: Workspace, event: Event) -> None:
        paths = [str(p) for p in event.payload.get("paths") or []]
        if paths and ws.results.tests:
            server.spawn(_outdate_changed(server, ws, paths), "outdate")

    server.graph_listeners.append(on_graph)

    @server.feature(types.INITIALIZE)
    def initialize(ls: MaestroServer, params: types.InitializeParams) -> None:
        _read_settings(ls, params.initialization_options)
        caps = params.capabilities
        experimental = _experimental(params)
        ls.test_explorer = bool(experimental.get(TEST_EXPLORER_CAPABILITY))
        ls.test_results = experimental.get(methods.TEST_RESULTS_CAPABILITY) is not False
        ls.progress_supported = bool(caps.window and caps.window.work_done_progress)
        ls.code_lens_refresh = bool(
            caps.workspace and caps.workspace.code_lens and caps.workspace.code_lens.refresh_support
        )
        # Nothing on stderr before the answer: eglot 1.9's wait for the answer (eglot-sync-connect)
        # ends at the first output of any process, and a server that is not connected yet is
        # not found by the next buffer's eglot-ensure, which starts a second one.

    @server.feature(types.INITIALIZED)
    async def initialized(ls: MaestroServer, params: types.InitializedParams) -> None:
        log.info("settings: %s", ls.settings.to_json())
        # Connect (or start) the daemon of every folder now, so the first lens is fast.
        if not ls.settings.daemon_autostart:
            return
        for root in ls.folders():
            if not ls.lsp_enabled(root):
                log.info("not connecting to %s: flag lsp.enabled is off there", root)
                continue
            ws = ls.ws(root)
            ls.spawn(ws.link.client(), name=f"connect {root}")

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(
        ls: MaestroServer, params: types.DidChangeConfigurationParams
    ) -> None:
        if not _read_settings(ls, params.settings):
            return
        daemon_settings = ls.settings.client_settings()
        for ws in ls.workspaces.values():
            ws.link.autostart = ls.settings.daemon_autostart
            ws.link.timeout_s = ls.settings.request_timeout_s
            if daemon_settings != ws.link.settings:
                ls.spawn(ws.link.configure(daemon_settings), name=f"configure {ws.root}")
        ls.schedule_refresh(0)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: MaestroServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.remember_disk(params.text_document.uri)
        ls.saved_text[params.text_document.uri] = ls.disk.get(params.text_document.uri)
        ls.spawn(testexplorer.document_changed(ls, params.text_document.uri), "explorer")
        ls.spawn(_restore(ls, params.text_document.uri), "restore")

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: MaestroServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.schedule_refresh()

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))
    def did_save(ls: MaestroServer, params: types.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.remember_disk(uri)
        before, ls.saved_text[uri] = ls.saved_text.get(uri), ls.disk.get(uri)
        located = ls.locate(uri)
        if located is None:
            return
        ws = located[0]
        ws.stale = None  # the daemon's answer may change; the watcher will tell us the rest
        ls.schedule_refresh()
        ls.spawn(testexplorer.document_changed(ls, uri), "explorer")
        if ls.saved_text[uri] != before:  # `:w` of an unchanged buffer changes nothing
            ls.spawn(_outdate(ls, uri), "outdate")
        if ls.settings.run_on_save and uri.endswith(".py"):
            from maestro.server.commands import run_impacted_of

            # a newer save's run supersedes this one (RunManager.start)
            run_impacted_of(ls, ws, uri, kind="save")

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(
        ls: MaestroServer, params: types.DidChangeWatchedFilesParams
    ) -> None:
        """A file created, changed or deleted outside the editor's buffers. The daemon's own
        watcher tells the graph (and through it the results and diagnostics); here only the
        memoised cache state of its workspace is dropped and the lenses asked for again."""
        for change in params.changes:
            located = ls.locate(change.uri)
            if located is not None:
                located[0].stale = None
        if params.changes:
            ls.schedule_refresh()

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: MaestroServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.disk.pop(params.text_document.uri, None)
        ls.saved_text.pop(params.text_document.uri, None)
        ls.forget(params.text_document.uri)

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: MaestroServer, params: Any) -> None:
        await ls.close_links()
