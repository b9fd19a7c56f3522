"""The daemon's sync with the team coordinator: composition of cache/remote.py into the daemon.

- Started with the daemon (so a queue left by the previous daemon drains right away), from the
  workspace's `[tool.maestro.remote]`; re-read on every run, so a config edit applies to the next
  run. The API key comes from the environment variable the config names, never from a file.
- Everything remote lives on RemoteSync's own thread and loop: no handler of this daemon awaits
  the network. Runs read through with a short timeout; `stale` (the IDE's question) never
  waits and only prefetches.
- A missing key, a bad config or an unreachable coordinator shows up in `status` (`remote`),
  never as a failed request.
- When the coordinator asks the sync to back off (429/503 + Retry-After), subscribers get the
  `remote.backoff` event at once (and again when the end moves later), and its end when it
  ends: editors need not poll `status` to show it.
- The workspace's run telemetry is sent to the coordinator's ingest endpoint by itself
  (telemetry_upload.py: periodic, bounded, paused while the coordinator asks for backoff), and
  the team model is fetched and verified by itself (team_model.py); `status` says what both did
  (`remote.telemetry`, `remote.team_model`).
- Uploads pass the egress gate (cache/remote.py): `secrets.redaction.enforce`
  (`[tool.maestro.secrets.redaction] enforce`, read when the daemon starts, default true) says
  whether an upload in which the last scan finds a secret is blocked or only counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from maestro.envvars import tuning
from maestro.errors import MaestroError
from maestro.tasks import cancel_and_wait
from maestro.wire import REMOTE_BACKOFF, RemoteBackoff, RemoteStatus, TelemetryUploadStatus

if TYPE_CHECKING:
    from maestro.cache import Cache
    from maestro.cache.remote import MirroredCache, RemoteSync
    from maestro.config import RemoteSettings
    from maestro.daemon.app import DaemonApp

    from .team_model import TeamModelFetcher
    from .telemetry_upload import TelemetryUploader

log = logging.getLogger(__name__)

QUEUE_FILE = "sync-queue.sqlite"


class SyncService:
    def __init__(self, app: DaemonApp) -> None:
        self.app = app
        self.config: RemoteSettings | None = None
        self.engine: RemoteSync | None = None
        self.problem: str | None = None  # why there is no engine despite a config
        self.enforce = True  # secrets.redaction.enforce
        self._views: dict[bool, MirroredCache] = {}
        self._lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._backoff: RemoteBackoff | None = None  # the episode subscribers were told of
        self._backoff_end: asyncio.TimerHandle | None = None
        self._telemetry_task: asyncio.Task[None] | None = None
        self._model_task: asyncio.Task[None] | None = None
        self._uploader: TelemetryUploader | None = None
        self._fetcher: TeamModelFetcher | None = None

    async def startup(self, app: DaemonApp) -> None:
        from maestro.config import load_settings

        try:
            loaded = await asyncio.to_thread(load_settings, app.root)
        except MaestroError as exc:
            log.warning("remote sync off: %s", exc.message)
            return
        await self.configure(loaded.config.remote, enforce=loaded.config.secrets.redaction.enforce)

    async def configure(
        self, remote: RemoteSettings | None, *, enforce: bool | None = None
    ) -> None:
        """Apply the workspace's remote settings (idempotent); ``enforce`` (None: as it was) is
        `secrets.redaction.enforce`, applied to a running sync at once."""
        if enforce is not None and enforce != self.enforce:
            self.enforce = enforce
            if self.engine is not None:
                self.engine.enforce = enforce
        self._loop = asyncio.get_running_loop()
        key_env = remote.api_key_env if remote else None
        key = os.environ.get(key_env) if key_env else None
        async with self._lock:
            if remote == self.config and (self.engine is not None or not key):
                return
            await self._stop_engine()
            self.config, self.problem = remote, None
            if remote is None:
                return
            if not remote.tenant:
                self.problem = (
                    f"the editor's coordinator URL {remote.url} needs a tenant: add "
                    '[tool.maestro.remote] with tenant = "NAME" (and api_key_env) to the '
                    "workspace configuration"
                )
                log.warning("%s", self.problem)
                return
            if not key:
                self.problem = f"${remote.api_key_env} is not set: the remote cache is off"
                log.warning("%s", self.problem)
                return
            from maestro.cache import Cache
            from maestro.cache.remote import RemoteSync
            from maestro.coordinator.client import send_telemetry

            def start() -> RemoteSync:
                engine = RemoteSync(
                    Cache.open(),
                    url=remote.url,
                    tenant=remote.tenant,
                    api_key=key,
                    queue_path=self.app.paths.state_dir / QUEUE_FILE,
                    read_timeout_s=remote.read_timeout_s,
                    upload=remote.upload,
                    backoff_s=(0.5, _max_backoff_s()),
                    enforce=self.enforce,
                    on_backoff=self._on_backoff,
                    telemetry_transport=send_telemetry,
                )
                engine.start()
                return engine

            try:
                self.engine = await asyncio.to_thread(start)
            except Exception as exc:  # a broken queue file, a cache error: run without remote
                self.problem = f"remote sync could not start: {exc}"
                log.exception("remote sync could not start")
                return
            log.info("remote cache %s (tenant %s)", remote.url, remote.tenant)
            self._start_telemetry_upload(self.engine, remote.telemetry_upload_every_s)
            self._start_team_model(self.engine, remote.team_model_every_s)

    def _start_telemetry_upload(self, engine: RemoteSync, every_s: float) -> None:
        from maestro.paths import workspace_state_dir

        from .telemetry_upload import TelemetryUploader

        uploader = TelemetryUploader(
            engine,
            workspace_state_dir(self.app.root) / "telemetry.sqlite3",
            self.app.paths.state_dir,
            every_s=every_s,
        )
        self._uploader = uploader
        if every_s <= 0:
            return
        self._telemetry_task = asyncio.create_task(uploader.run_forever(), name="telemetry-upload")

    def _start_team_model(self, engine: RemoteSync, every_s: float) -> None:
        from maestro.model.train import ModelStore

        from .team_model import TeamModelFetcher

        fetcher = TeamModelFetcher(
            engine, ModelStore.for_workspace(self.app.root).dir, every_s=every_s
        )
        self._fetcher = fetcher
        if every_s > 0:
            self._model_task = asyncio.create_task(fetcher.run_forever(), name="team-model")
        else:  # no fetch: still say which model ranks
            self._model_task = asyncio.create_task(asyncio.to_thread(fetcher.rank))

    def view(self, *, wait_remote: bool) -> Cache | None:
        """The mirrored cache handle for runs (wait_remote) or for the IDE's questions."""
        if self.engine is None:
            return None
        view = self._views.get(wait_remote)
        if view is None:
            from maestro.cache.remote import MirroredCache

            view = MirroredCache.mirror(self.engine, wait_remote=wait_remote)
            self._views[wait_remote] = view
        return view

    # --- backoff events --------------------------------------------------------------------

    def _on_backoff(self, until: float, rule: str | None) -> None:
        """The sync engine's thread: the coordinator asked it to wait until ``until``."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody listens
                loop.call_soon_threadsafe(self._backoff_started, until, rule)

    def _backoff_started(self, until: float, rule: str | None) -> None:
        held = self._backoff
        if held is not None and held.until is not None and until <= held.until:
            return  # the same episode, told already
        self._backoff = RemoteBackoff(active=True, until=until, rule=rule)
        self.app.broadcast(REMOTE_BACKOFF, self._backoff)
        self._schedule_end(until)

    def _schedule_end(self, until: float) -> None:
        if self._backoff_end is not None:
            self._backoff_end.cancel()
        loop = asyncio.get_running_loop()
        self._backoff_end = loop.call_later(max(0.0, until - time.time()), self._backoff_over)

    def _backoff_over(self, *, now: bool = False) -> None:
        self._backoff_end = None
        held = self._backoff
        if held is None:
            return
        if not now and held.until is not None and held.until > time.time():
            self._schedule_end(held.until)  # the loop's clock ran ahead of the wall clock
            return
        self._backoff = None
        self.app.broadcast(REMOTE_BACKOFF, RemoteBackoff(active=False, rule=held.rule))

    async def _stop_engine(self) -> None:
        if self._backoff_end is not None:
            self._backoff_end.cancel()
        self._backoff_over(now=True)  # no engine, nothing to wait for
        task, self._telemetry_task = self._telemetry_task, None
        await cancel_and_wait(task)
        await cancel_and_wait(self._model_task)
        self._model_task = None
        self._uploader, self._fetcher = None, None
        engine, views = self.engine, list(self._views.values())
        self.engine, self._views = None, {}
        for view in views:
            with contextlib.suppress(Exception):
                view.close()
        if engine is not None:
            await asyncio.to_thread(engine.stop)

    async def stop(self, app: DaemonApp) -> None:
        async with self._lock:
            await self._stop_engine()

    def status(self) -> RemoteStatus | None:
        if self.config is None:
            return None
        if self.engine is None:
            return RemoteStatus(
                url=self.config.url,
                tenant=self.config.tenant,
                uploads="off",
                circuit="closed",
                last_error=self.problem,
            )
        status = self.engine.status(
            telemetry=self._telemetry_status(self.engine),
            team_model=self._fetcher.status() if self._fetcher is not None else None,
        )
        hint = remote_hint(self.engine.last_failure, self.config, self._where)
        return status.model_copy(update={"hint": hint}) if hint else status

    def unusable_note(self, since: float) -> str | None:
        """A run's note when the team cache failed it for a reason of the configuration (a key
        the coordinator rejects, a URL nothing answers on) since ``since`` (epoch s) and has
        not recovered: the run used the local cache only."""
        from maestro.errors import CoordinatorAuthError, CoordinatorUnreachableError

        engine, remote = self.engine, self.config
        if engine is None or remote is None:
            return None
        failure, at = engine.last_failure, engine.counters.last_error_at
        if not isinstance(failure, CoordinatorAuthError | CoordinatorUnreachableError):
            return None
        if at is None or at < since or engine.breaker.state == "closed":
            return None
        return (
            f"the team cache ({remote.url}) could not be used: {failure.message}; this run used "
            "the local cache only (`maestro status` says how to fix it)"
        )

    def _where(self) -> str:
        """The table and file that set `[tool.maestro.remote]`, for hints."""
        from maestro.config import load_settings

        try:
            loaded = load_settings(self.app.root)
        except MaestroError:
            return "[tool.maestro.remote] of the workspace configuration"
        if loaded.source is None:  # not the workspace's: the editor's settings
            return "the editor's Maestro settings"
        prefix = f"{loaded.table}." if loaded.table else ""
        return f"[{prefix}remote] of {loaded.source}"

    def _telemetry_status(self, engine: RemoteSync) -> TelemetryUploadStatus | None:
        uploader = self._uploader
        if uploader is None:
            return None
        return TelemetryUploadStatus(
            every_s=uploader.every_s, **dict(uploader.counters), **dict(engine.telemetry)
        )


def remote_hint(
    failure: BaseException | None, remote: RemoteSettings, where: Callable[[], str]
) -> str | None:
    """How to fix the sync's last failure when the configuration is its cause: a key the
    coordinator rejects, a URL nothing answers on (``where()``: the table and file that set
    them, read only then). None for anything else."""
    from maestro.errors import CoordinatorAuthError, CoordinatorUnreachableError

    if isinstance(failure, CoordinatorAuthError) and failure.status == 401:
        return (
            f"the API key is read from ${remote.api_key_env} (api_key_env in {where()}): set it "
            f"to a key of tenant {remote.tenant} at {remote.url}; an admin of the coordinator "
            f"makes one with `maestro coordinator key create {remote.tenant}`"
        )
    if isinstance(failure, CoordinatorUnreachableError):
        return (
            f"the coordinator URL {remote.url} is set by url in {where()}: fix it there, or "
            "start the coordinator; runs use the local cache meanwhile"
        )
    return None


def _max_backoff_s() -> float:
    """Upper bound of the upload retry delay (``MAESTRO_SYNC_MAX_BACKOFF_S``, default 30 s)."""
    return tuning("MAESTRO_SYNC_MAX_BACKOFF_S", 30.0, minimum=0.5)


def install(app: DaemonApp) -> SyncService:
    service = SyncService(app)
    app.provide(SyncService, service, start=service.startup, stop=service.stop)
    return service
