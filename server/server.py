"""The Maestro language server: per-workspace state and the helpers feature modules share.

Feature modules (one per capability, esbonio style) each export ``register(server)``;
``create_server`` composes them. Everything the server knows about the build comes from the
workspace daemon (``daemon_link``); the server itself only keeps editor state (open buffers,
last results for lenses and diagnostics).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from maestro import __version__
from maestro.errors import MaestroError, UnknownTargetError
from maestro.server import backoff, methods, policy
from maestro.server.daemon_link import DaemonLink
from maestro.server.discovery import TestItem, discover
from maestro.server.protocol import MaestroProtocol, converter
from maestro.server.results import Results
from maestro.server.settings import Settings
from maestro.server.util import path_to_uri, uri_to_path
from maestro.wire import GRAPH_STATS, REMOTE_BACKOFF, Event, GraphStatsParams, StaleResult

if TYPE_CHECKING:
    from maestro.reports import ImpactedReport

if TYPE_CHECKING:
    from maestro.server.runs import RunManager

log = logging.getLogger(__name__)


class OutsideWorkspaceError(UnknownTargetError):
    """A document outside every workspace folder (or in no project at all)."""

    code = "outside_workspace"


TEST_NAME = re.compile(r"(^|/)(test_[^/]*|[^/]*_test)\.py$")
TEST_EXPLORER_CAPABILITY = "maestroTestExplorer"
FLAG_TTL_S = 10.0


class Workspace:
    """One workspace root: its daemon link, its results and memoised daemon answers."""

    def __init__(self, root: Path, link: DaemonLink) -> None:
        self.root = root
        self.link = link
        self.results = Results()
        self.tests: set[str] | None = None  # test files of the graph (memo; None = unknown)
        self.stale: StaleResult | None = None
        self.stale_task: asyncio.Task[StaleResult | None] | None = None
        self.generation = 0  # bumped when the graph changes (memos are dropped)
        # the last daemon answers per request shape: re-asked with their etag, the daemon says
        # "unchanged" instead of sending (and both sides encoding) hundreds of rows again
        self.impacted_memo: dict[tuple[Any, ...], ImpactedReport] = {}
        self.impacted_inflight: dict[tuple[Any, ...], asyncio.Future[ImpactedReport]] = {}
        """Daemon questions on their way, by exact request: concurrent askers share one answer."""
        self.rows_memo: dict[tuple[Any, ...], Any] = {}
        """The editor's rows of the last answers, by shape (see impacted.impacted_targets)."""
        self.former_readers: dict[str, list[str]] = {}
        """Test files the impacted answers named per asked path (see impacted.former_readers)."""
        self.restoring: dict[str, tuple[int, asyncio.Future[bool]]] = {}
        """Stored results asked for, per test file: (graph generation, answer on its way)."""
        self.incident_shown: str | None = None  # the policy incident last shown (None: none)
        self.flag_warnings_shown: set[str] = set()  # expired-flag warnings already shown
        self.flags_checked = False
        self.backoff_until: float | None = None  # the coordinator's backoff the editor was told
        self.backoff_warned_at = 0.0  # when the last backoff Warning was shown (monotonic)
        self.backoff_watch: asyncio.Task[None] | None = None

    def invalidate(self, *, files_changed: bool) -> None:
        self.generation += 1
        self.stale = None
        self.stale_task = None
        if files_changed:
            self.tests = None

    def rel(self, path: Path) -> str:
        return path.resolve().relative_to(self.root).as_posix()


class MaestroServer(LanguageServer):
    """pygls server plus Maestro's per-workspace state."""

    def __init__(self) -> None:
        super().__init__(
            "maestro",
            __version__,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            converter_factory=converter,
            protocol_cls=MaestroProtocol,
        )
        self.settings = Settings()
        self.workspaces: dict[Path, Workspace] = {}
        self.disk: dict[str, str | None] = {}  # uri -> text on disk when opened/saved
        # uri -> text on disk at the last didOpen/didSave (``disk`` is also refreshed by a lens
        # request that comes before the save's notification): did a save change the file?
        self.saved_text: dict[str, str | None] = {}
        self.test_explorer = False
        self.test_results = True  # maestro/testResults (a client may decline them)
        self.code_lens_refresh = False
        self.progress_supported = False
        self.shutting_down = False
        self._refresh: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.runs: RunManager | None = None
        self.graph_listeners: list[Callable[[Workspace, Event], Awaitable[None]]] = []
        self._test_items: dict[str, tuple[str, str, list[TestItem]]] = {}
        self._lsp_enabled: dict[Path, tuple[float, bool]] = {}
        # uri -> (workspace, path relative to its root), valid for one set of workspace folders:
        # resolving a path costs an lstat per component, and every request starts with it.
        self._located: dict[str, tuple[Workspace, str]] = {}
        self._located_for: object = None
        self._unwatched: set[Path] = set()  # workspace folders refused (/ or home, no project)

    # --- workspaces ------------------------------------------------------------------------------

    def folders(self) -> list[Path]:
        roots = [uri_to_path(f.uri) for f in self.workspace.folders.values()]
        if not roots and self.workspace.root_path:
            roots = [Path(self.workspace.root_path)]
        return [r for r in (r.resolve() for r in roots) if self._watchable(r)]

    def _watchable(self, root: Path) -> bool:
        """``/`` and the home folder serve as workspace folders only when they are projects: a
        client that falls back to the current directory for a lone file (Neovim's usual
        ``root_dir``) would otherwise start a daemon that indexes and watches everything under
        it. Files in projects below them still find their own project (``root_of``)."""
        if root not in (Path("/"), Path.home().resolve()):
            return True
        from maestro.workspace import MARKERS

        if any((root / m).exists() for m in MARKERS):
            return True
        if root not in self._unwatched:
            self._unwatched.add(root)
            message = (
                f"Maestro: {root} is not a project (no {', '.join(MARKERS)}): not watching it; "
                "files in projects below it still work. Open the project folder itself."
            )
            log.warning("%s", message)
            self.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Warning, message=message)
            )
        return False

    def root_of(self, path: Path, *, directory: bool = False) -> Path:
        """The innermost workspace folder holding ``path``; without folders (a lone file opened),
        its project. Anything else is refused: a daemon watches and indexes its whole root, so
        one for ``/etc`` or ``/`` would be a runaway process the user never asked for.
        ``directory``: ``path`` names a folder (a root), not a document in one."""
        path = path.resolve()
        folders = self.folders()
        best: Path | None = None
        for root in folders:
            if (path == root or root in path.parents) and (
                best is None or len(root.parts) > len(best.parts)
            ):
                best = root
        if best is not None:
            return self._switched_on(best)
        if folders:
            raise OutsideWorkspaceError(
                f"{path} is outside the workspace folders",
                hint="open its project as a workspace folder",
            )
        from maestro.workspace import MARKERS, find_root

        root = find_root(path if directory else path.parent)
        if not any((root / m).exists() for m in MARKERS) or root in (Path("/"), Path.home()):
            raise OutsideWorkspaceError(
                f"{path} is in no project (no pyproject.toml, setup.py or .git above it)",
                hint="open the project folder as the workspace",
            )
        return self._switched_on(root)

    def lsp_enabled(self, root: Path) -> bool:
        """The ``lsp.enabled`` flag of a workspace (re-read every ``FLAG_TTL_S``, so a change,
        a tenant kill-switch included, reaches an open editor without a restart)."""
        now = time.monotonic()
        known = self._lsp_enabled.get(root)
        if known is not None and now - known[0] < FLAG_TTL_S:
            return known[1]
        from maestro.flags import FlagError, WorkspaceFlags

        try:
            on = bool(WorkspaceFlags(root).value("lsp.enabled"))
        except FlagError as exc:  # a broken flags file must not switch the editor off
            log.warning("lsp.enabled unreadable for %s: %s", root, exc)
            on = True
        self._lsp_enabled[root] = (now, on)
        return on

    def _switched_on(self, root: Path) -> Path:
        if not self.lsp_enabled(root):
            raise OutsideWorkspaceError(
                f"Maestro is switched off for {root} (flag lsp.enabled)",
                hint=f"maestro flags explain lsp.enabled --root {root}",
            )
        return root

    def report_server_error(self, error: Exception, source: Any) -> None:
        # a body that is not JSON at all
        if isinstance(error, json.JSONDecodeError) and isinstance(self.protocol, MaestroProtocol):
            self.protocol.answer_parse_error(error)
            return
        super().report_server_error(error, source)

    def ws_named(self, root: str | None) -> Workspace:
        """The workspace a request names by its root (path or file URI), or the first folder;
        a root that is not one of the workspace folders (or inside one) is refused."""
        if root:
            path = uri_to_path(root) if root.startswith("file:") else Path(root)
            return self.ws(self.root_of(path, directory=True))
        folders = self.folders()
        if not folders:
            raise UnknownTargetError("no workspace folder is open", hint="pass a document or root")
        return self.ws(self._switched_on(folders[0]))

    def locate(self, uri: str) -> tuple[Workspace, str] | None:
        """``ws_of_uri`` for features that simply have nothing to say about other files."""
        try:
            return self.ws_of_uri(uri)
        except (OutsideWorkspaceError, ValueError):
            return None

    def locate_python(self, uri: str) -> tuple[Workspace, str] | None:
        """:meth:`locate` for a Python file's ``file:`` URI; None for any other document."""
        if not uri.startswith("file:") or not uri.endswith(".py"):
            return None
        return self.locate(uri)

    def ws(self, root: Path) -> Workspace:
        found = self.workspaces.get(root)
        if found is not None:
            return found
        root = root.resolve()
        found = self.workspaces.get(root)
        if found is None:
            link = DaemonLink(
                root,
                autostart=self.settings.daemon_autostart,
                timeout_s=self.settings.request_timeout_s,
                settings=self.settings.client_settings(),
                on_event=self._on_daemon_event,
                on_state=self._on_link_state,
            )
            found = self.workspaces[root] = Workspace(root, link)
        return found

    def ws_of_uri(self, uri: str) -> tuple[Workspace, str]:
        """The workspace of a document and the document's path relative to its root (memoised
        per URI until the workspace folders change; a symlink retargeted meanwhile is not seen)."""
        folders = (tuple(self.workspace.folders), self.workspace.root_path)
        if folders != self._located_for:
            self._located.clear()
            self._located_for = folders
        located = self._located.get(uri)
        if located is None:
            try:
                path = uri_to_path(uri)
            except ValueError:  # untitled:, vscode-notebook-cell:, http: ... nothing on disk
                raise OutsideWorkspaceError(
                    f"{uri} is not a file on disk", hint="save it in the workspace first"
                ) from None
            ws = self.ws(self.root_of(path))
            try:
                rel = ws.rel(path)
            except ValueError:
                rel = path.as_posix()
            if len(self._located) >= 4096:
                self._located.clear()
            located = self._located[uri] = (ws, rel)
        return located

    def uri_of(self, ws: Workspace, rel: str) -> str:
        return path_to_uri(ws.root / rel)

    # --- documents -------------------------------------------------------------------------------

    def text_of(self, uri: str) -> str | None:
        """The editor's text if the document is open, else the disk's."""
        doc = self.workspace.text_documents.get(uri)
        if doc is not None:
            text: str = doc.source
            return text
        try:
            return uri_to_path(uri).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError, ValueError):
            return None

    def test_items(self, uri: str, rel: str) -> list[TestItem]:
        """The tests of a document's current text. Memoised per document: editors ask for lenses,
        hovers and the test tree of the same text many times (on focus, after every run)."""
        source = self.text_of(uri) or ""
        memo = self._test_items.get(uri)
        if memo is not None and memo[0] == rel and memo[1] == source:
            return memo[2]
        items = discover(rel, source)
        self._test_items[uri] = (rel, source, items)
        return items

    def forget(self, uri: str) -> None:
        self._test_items.pop(uri, None)

    def remember_disk(self, uri: str) -> None:
        try:
            self.disk[uri] = uri_to_path(uri).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError, ValueError):
            self.disk[uri] = None

    def is_dirty(self, uri: str) -> bool:
        doc = self.workspace.text_documents.get(uri)
        if doc is None:
            return False
        if uri not in self.disk:
            self.remember_disk(uri)
        if doc.source == self.disk.get(uri):
            return False
        # The editor may have written the file without its didSave having arrived yet (Neovim
        # asks for lenses right after `:w`, before it notifies the save): the disk decides.
        self.remember_disk(uri)
        return bool(doc.source != self.disk.get(uri))

    def buffers(self, ws: Workspace, uris: list[str] | None = None) -> dict[str, str]:
        """Unsaved buffers of the workspace (or of ``uris``): {relative path: text}."""
        out: dict[str, str] = {}
        for uri, doc in list(self.workspace.text_documents.items()):
            if uris is not None and uri not in uris:
                continue
            if not uri.startswith("file:") or not self.is_dirty(uri):
                continue
            located = self.locate(uri)
            if located is not None and located[0] is ws:
                out[located[1]] = doc.source
        return out

    # --- graph knowledge -------------------------------------------------------------------------

    async def test_files(self, ws: Workspace) -> set[str] | None:
        """The graph's test files (memoised until files appear or vanish); None if unknown."""
        if ws.tests is None:
            generation = ws.generation
            try:
                report = await ws.link.call(GRAPH_STATS, GraphStatsParams(targets=True))
            except MaestroError as exc:
                log.warning("cannot list the test files of %s: %s", ws.root, exc.message)
                return None
            if generation == ws.generation:
                ws.tests = {t for t in report.targets or [] if not t.startswith("//")}
            else:
                return {t for t in report.targets or [] if not t.startswith("//")}
        return ws.tests

    async def is_test_file(self, ws: Workspace, rel: str) -> bool:
        tests = await self.test_files(ws)
        if tests is None:
            return bool(TEST_NAME.search(rel))
        return rel in tests

    # --- events from daemons ---------------------------------------------------------------------

    async def _on_daemon_event(self, link: DaemonLink, event: Event) -> None:
        ws = self.workspaces.get(link.root)
        if ws is not None and event.event == policy.INCIDENT_EVENT:
            policy.on_incident(self, ws, event.payload)
            return
        if ws is not None and event.event == REMOTE_BACKOFF:
            backoff.on_event(self, ws, event.payload)
            return
        if ws is None or event.event != "graph_changed":
            return
        touched = event.payload.get("touched") or []
        paths = event.payload.get("paths") or []
        ws.invalidate(files_changed="*" in touched or any(p.endswith(".py") for p in paths))
        for listener in self.graph_listeners:
            await listener(ws, event)
        self.schedule_refresh()

    def _on_link_state(self, link: DaemonLink) -> None:
        if self.shutting_down:
            return
        ws = self.workspaces.get(link.root)
        if link.state == "connected" and ws is not None:
            # The editor asks for a document's lenses once and keeps the answer until told
            # otherwise: one given without the daemon (guessed from the file name, no results)
            # or lost on the way must not stay for good.
            self.schedule_refresh(0)
            # every connect: an incident raised while no server listened is not lost
            self.spawn(policy.current_incident(self, ws), name="maestro-incident")
            if ws.backoff_watch is None or ws.backoff_watch.done():
                ws.backoff_watch = self.spawn(backoff.watch(self, ws), name="maestro-backoff")
        if link.state == "connected" and ws is not None and not ws.flags_checked:
            # once per workspace: a reconnect must not repeat the same warnings
            ws.flags_checked = True
            self.spawn(policy.warn_expired_flags(self, ws), name="maestro-flags")
        with contextlib.suppress(Exception):
            methods.notify(
                self,
                methods.STATUS_CHANGED,
                methods.StatusChangedParams(
                    root=str(link.root),
                    state=link.state,
                    pid=link.pid,
                    restarts=max(0, link.connects - 1),
                    lastError=link.last_error,
                ),
            )

    # --- client helpers --------------------------------------------------------------------------

    def spawn(self, coro: Awaitable[Any], name: str = "maestro-task") -> asyncio.Task[Any]:
        async def wrapped() -> Any:
            return await coro

        task = asyncio.ensure_future(wrapped())
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def schedule_refresh(self, delay_s: float | None = None) -> None:
        """Ask the client to re-request code lenses (debounced), if it supports refresh."""
        if not self.code_lens_refresh or self.shutting_down:
            return
        loop = asyncio.get_running_loop()
        if self._refresh is not None:
            self._refresh.cancel()
        delay = self.settings.debounce_ms / 1000 if delay_s is None else delay_s
        self._refresh = loop.call_later(delay, self._send_refresh)

    def _send_refresh(self) -> None:
        self._refresh = None
        with contextlib.suppress(Exception):
            self.workspace_code_lens_refresh(None)

    def show_error(self, message: str) -> None:
        with contextlib.suppress(Exception):
            self.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Error, message=message)
            )

    def log_to_client(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        with contextlib.suppress(Exception):
            self.window_log_message(types.LogMessageParams(type=kind, message=message))

    async def close_links(self) -> None:
        self.shutting_down = True
        for ws in self.workspaces.values():
            await ws.link.close()


def create_server() -> MaestroServer:
    """The server with every feature module registered."""
    from maestro.server import (
        codelens,
        commands,
        diagnostics,
        documents,
        hover,
        impacted,
        runs,
        status,
        testexplorer,
    )

    server = MaestroServer()
    for module in (
        documents,
        runs,
        diagnostics,
        codelens,
        commands,
        impacted,
        hover,
        status,
        testexplorer,
    ):
        module.register(server)
    return server
