"""Feature flags in the daemon: the tenant's overrides polled from the coordinator, and every
service's switches read through the registry.

- The poll follows the sync's remote settings (`SyncService.config`: the workspace's
  `[tool.maestro.remote]` with the editor's URL over it) with a conditional GET every
  ``MAESTRO_FLAGS_POLL_S`` seconds (default 30); a 304 costs no body. A change applies to the
  next decision that reads the flag (a save, a run, a status): a kill-switch set by the tenant's
  admin takes effect at the next poll. The overrides are written to the workspace state dir so
  the CLI (`maestro flags`) and a restarted daemon start from the last ones seen.
- A failed poll keeps the last overrides (a kill-switch must not lapse because the coordinator
  is unreachable) and says so in the `flags` method; a workspace with no remote drops them.
- Local inputs (the user and workspace flag files, the configuration's older keys) are re-read
  only when one of those files changes (stat), so resolving on the event loop stays cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, cast

from maestro.envvars import tuning
from maestro.errors import CoordinatorError
from maestro.flags import (
    FlagError,
    FlagValue,
    Inputs,
    Registry,
    Resolution,
    TenantFlags,
    WorkspaceFlags,
    builtin_registry,
    expiry_warnings,
    today_utc,
)
from maestro.flags.report import FLAGS, FlagsReport, FlagState, TenantPoll, TenantPollCounts
from maestro.flags.resolve import resolve_all
from maestro.flags.store import (
    tenant_cache_path,
    user_flags_path,
    workspace_flags_path,
    write_tenant_cache,
)
from maestro.tasks import cancel_and_wait

if TYPE_CHECKING:
    from maestro.config import FailFirst, RemoteSettings, Settings
    from maestro.coordinator.flags_client import FlagsClient
    from maestro.daemon.app import DaemonApp
    from maestro.daemon.transport.server import RequestContext
    from maestro.wire import Empty

log = logging.getLogger(__name__)

POLL_TIMEOUT_S = 10.0


def poll_interval_s() -> float:
    """``MAESTRO_FLAGS_POLL_S`` (default 30 s, at least 0.2 s)."""
    return tuning("MAESTRO_FLAGS_POLL_S", 30.0, minimum=0.2)


def _stat_key(paths: list[Path]) -> tuple[tuple[int, int] | None, ...]:
    out: list[tuple[int, int] | None] = []
    for path in paths:
        try:
            st = path.stat()
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


class FlagsService:
    def __init__(
        self,
        app: DaemonApp,
        poll_s: float | None = None,
        *,
        registry: Registry | None = None,
        today: Callable[[], date] = today_utc,
    ) -> None:
        self.app = app
        self.root = app.root
        self.registry = registry or builtin_registry()
        self.today = today
        self.poll_s = poll_interval_s() if poll_s is None else poll_s
        self.tenant: TenantFlags | None = None
        self.tenant_poll = TenantPollCounts(state="off: starting")
        self._client: FlagsClient | None = None
        self._client_for: tuple[str, str, str] | None = None
        self._task: asyncio.Task[None] | None = None
        self._local: tuple[tuple[object, ...], Inputs] | None = None
        self._resolved: tuple[tuple[object, ...], dict[str, Resolution]] | None = None
        self._tenant_version = 0  # bumped whenever self.tenant is replaced
        self._local_files: list[Path] | None = None
        self._wake = asyncio.Event()

    # --- resolution ------------------------------------------------------------------------------

    def _local_key(self) -> tuple[object, ...]:
        if self._local_files is None:  # computing them makes directories: once
            self._local_files = [
                user_flags_path(),
                workspace_flags_path(self.root),
                self.root / "maestro.toml",
                self.root / "pyproject.toml",
            ]
        return _stat_key(self._local_files)

    def _local_inputs(self) -> Inputs:
        key = self._local_key()
        if self._local is None or self._local[0] != key:
            flags = WorkspaceFlags(
                self.root, self.registry, today=self.today, tenant=TenantFlags(tenant="")
            )
            self._local = (key, flags.inputs())
        return self._local[1]

    def _editor(self) -> dict[str, FlagValue]:
        from maestro.daemon.services.client_settings import ClientSettingsService

        try:
            current = self.app.service(ClientSettingsService).current()
        except LookupError:
            return {}
        return (
            {} if current.speculation is None else {"ml.speculation.enabled": current.speculation}
        )

    def inputs(self) -> Inputs:
        try:
            local = self._local_inputs()
        except FlagError as exc:  # a broken settings file: the tenant's overrides still hold
            log.warning("local flag settings unreadable: %s", exc)
            local = Inputs()
        return replace(local.with_tenant(self.tenant), editor=self._editor())

    def resolve_all(self) -> dict[str, Resolution]:
        """Every flag resolved; memoised until a local file, the tenant's overrides, the
        editor's settings or the day change (a run asks several times)."""
        editor = self._editor()
        today = self.today()
        key = (self._local_key(), self._tenant_version, tuple(sorted(editor.items())), today)
        if self._resolved is not None and self._resolved[0] == key:
            return self._resolved[1]
        resolved = resolve_all(self.registry, self.inputs(), today)
        self._resolved = (key, resolved)
        return resolved

    def value(self, name: str) -> FlagValue:
        return self.resolve_all()[name].value

    def apply(self, config: Settings) -> Settings:
        """``config`` with every switch that is a flag replaced by the flag's value."""
        res = self.resolve_all()
        ml = config.ml
        ml = replace(
            ml,
            speculation=replace(ml.speculation, enabled=bool(res["ml.speculation.enabled"].value)),
            predictive=replace(
                ml.predictive, threshold=float(res["ml.predictive.threshold"].value)
            ),
            fail_first=cast("FailFirst", str(res["ml.fail-first"].value)),
        )
        redaction = replace(
            config.secrets.redaction, enforce=bool(res["secrets.redaction.enforce"].value)
        )
        return replace(config, ml=ml, secrets=replace(config.secrets, redaction=redaction))

    async def _push_enforce(self) -> None:
        """The sync's upload gate follows ``secrets.redaction.enforce`` as soon as it changes
        (runs apply it too; this covers a tenant's change between runs)."""
        from maestro.daemon.services.sync import SyncService

        try:
            sync = self.app.service(SyncService)
        except LookupError:
            return
        enforce = bool(self.value("secrets.redaction.enforce"))
        if enforce != sync.enforce:
            log.warning("secrets.redaction.enforce is now %s", "on" if enforce else "off")
            await sync.configure(sync.config, enforce=enforce)

    # --- polling ---------------------------------------------------------------------------------

    def _remote(self) -> RemoteSettings | None:
        from maestro.daemon.services.sync import SyncService

        try:
            return self.app.service(SyncService).config
        except LookupError:
            return None

    async def _drop_tenant(self, why: str) -> None:
        self.tenant_poll.state = f"off: {why}"
        if self.tenant is not None:
            self.tenant = None
            self._tenant_version += 1
            with contextlib.suppress(OSError):
                await asyncio.to_thread(tenant_cache_path(self.root).unlink, True)
        await self._close_client()

    async def _close_client(self) -> None:
        client, self._client, self._client_for = self._client, None, None
        if client is not None:
            await client.close()

    async def poll_once(self) -> None:
        remote = self._remote()
        if remote is None or not remote.tenant:
            await self._drop_tenant("no [tool.maestro.remote] with a tenant")
            return
        key = os.environ.get(remote.api_key_env)
        if not key:  # the last overrides stay: a kill-switch must not lapse with a lost key
            self.tenant_poll.state = f"off: ${remote.api_key_env} is not set (last overrides kept)"
            return
        ident = (remote.url, remote.tenant, key)
        if self._client_for != ident:
            from maestro.coordinator.flags_client import FlagsClient

            await self._close_client()
            self._client = FlagsClient(remote.url, remote.tenant, key, timeout_s=POLL_TIMEOUT_S)
            self._client_for = ident
            if self.tenant is not None and self.tenant.tenant != remote.tenant:
                self.tenant = None
                self._tenant_version += 1
        assert self._client is not None
        etag = self.tenant.etag if self.tenant is not None else ""
        self.tenant_poll.polls += 1
        try:
            poll = await asyncio.wait_for(self._client.poll_flags(etag), POLL_TIMEOUT_S)
        except (CoordinatorError, TimeoutError) as exc:
            message = getattr(exc, "message", None) or "timed out"
            self.tenant_poll.last_error = message
            self.tenant_poll.state = "failing (last overrides kept)"
            log.warning("tenant flags poll failed: %s", message)
            return
        self.tenant_poll.last_poll_at = time.time()
        self.tenant_poll.last_error = None
        self.tenant_poll.state = "polling"
        if poll.flags is None:
            return
        before = self.tenant.overrides if self.tenant is not None else {}
        self.tenant = poll.flags
        self._tenant_version += 1
        self.tenant_poll.changes += 1
        self.tenant_poll.last_change_at = self.tenant_poll.last_poll_at
        for name in sorted(set(before) | set(poll.flags.overrides)):
            old, new = before.get(name), poll.flags.overrides.get(name)
            latest = new or old
            if old != new and latest is not None:
                log.warning(
                    "tenant flag %s: %s -> %s (%s)",
                    name,
                    old.describe() if old else "unset",
                    new.describe() if new else "cleared",
                    latest.reason,
                )
        await self._push_enforce()
        await self._stop_speculation_if_off()
        try:
            await asyncio.to_thread(write_tenant_cache, self.root, poll.flags)
        except OSError as exc:
            log.warning("could not save the tenant flags for the CLI: %s", exc)

    async def _stop_speculation_if_off(self) -> None:
        """A speculative run in flight stops when its flag goes off (a kill-switch is meant to
        stop work now, not only the next one)."""
        from maestro.daemon.services.speculation import SpeculationService

        if self.value("ml.speculation.enabled"):
            return
        try:
            speculation = self.app.service(SpeculationService)
        except LookupError:
            return
        await speculation.cancel("ml.speculation.enabled is off (feature flag)")

    async def _poll_forever(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tenant flags poll failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()

    async def startup(self, app: DaemonApp) -> None:
        from maestro.flags.store import read_tenant_cache

        self.tenant = await asyncio.to_thread(read_tenant_cache, self.root)
        self._tenant_version += 1
        await self._push_enforce()
        for line in expiry_warnings(self.registry, self.today()):
            log.warning("%s", line)
        self._task = asyncio.create_task(self._poll_forever(), name="flags-poll")

    async def stop(self, app: DaemonApp) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        await self._close_client()

    # --- the `flags` method ----------------------------------------------------------------------

    def report(self) -> FlagsReport:
        res = self.resolve_all()
        remote = self._remote()
        return FlagsReport(
            flags=[
                FlagState(
                    name=r.flag.name,
                    value=r.value,
                    layer=r.layer.value,
                    killed=r.killed,
                    why=r.why,
                    expired=r.expired,
                    expires=r.flag.expires.isoformat(),
                    owner=r.flag.owner,
                )
                for r in res.values()
            ],
            warnings=expiry_warnings(self.registry, self.today()),
            tenant=TenantPoll(
                tenant=remote.tenant if remote else None,
                url=remote.url if remote else None,
                etag=self.tenant.etag if self.tenant else None,
                poll_interval_s=self.poll_s,
                overrides=len(self.tenant.overrides) if self.tenant else 0,
                **dict(self.tenant_poll),
            ),
        )

    async def flags(self, params: Empty, ctx: RequestContext) -> FlagsReport:
        return self.report()


def install(app: DaemonApp) -> FlagsService:
    service = FlagsService(app)
    app.provide(FlagsService, service, start=service.startup, stop=service.stop)
    app.register(FLAGS, service.flags)
    return service
