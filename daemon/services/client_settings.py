"""A client's settings (an editor's) over the workspace configuration, held per connection.

The daemon is shared by the CLI and every editor of the workspace, so an editor's settings are
not the workspace's: they hold while that editor's connection is open (the newest connected
client wins), and the workspace's own configuration applies again once it is gone. Services ask
``effective(config)`` instead of reading the workspace configuration directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from maestro.config import RemoteSettings, Settings, load_settings
from maestro.errors import MaestroError
from maestro.wire import CONFIGURE, ClientSettings, ConfigureResult

if TYPE_CHECKING:
    from maestro.daemon.app import DaemonApp
    from maestro.daemon.transport.server import Connection, RequestContext

log = logging.getLogger(__name__)


def apply_client_settings(config: Settings, client: ClientSettings) -> Settings:
    """``config`` with every setting the client gives (not None) in place of the workspace's."""
    changes: dict[str, Any] = {}
    if client.interpreter is not None:
        changes["interpreter"] = client.interpreter
    if client.speculation is not None:
        speculation = replace(config.ml.speculation, enabled=client.speculation)
        changes["ml"] = replace(config.ml, speculation=speculation)
    if client.coordinator_url is not None:
        # Only the URL comes from the editor: tenant and key variable are the workspace's. An
        # empty tenant tells SyncService to report what is missing instead of syncing.
        remote = config.remote or RemoteSettings(url=client.coordinator_url, tenant="")
        changes["remote"] = replace(remote, url=client.coordinator_url)
    return replace(config, **changes) if changes else config


class ClientSettingsService:
    def __init__(self, app: DaemonApp) -> None:
        self.app = app
        self._held: dict[int, tuple[Connection, ClientSettings]] = {}

    def hold(self, connection: Connection, settings: ClientSettings) -> None:
        self._held.pop(id(connection), None)  # re-inserted last: the newest setter wins
        self._held[id(connection)] = (connection, settings)

    def current(self) -> ClientSettings:
        """The settings of the newest client still connected (none: all fields None)."""
        server = self.app.server
        open_now = server.connections if server is not None else set()
        for key, (connection, _) in list(self._held.items()):
            if connection not in open_now:
                del self._held[key]
        if not self._held:
            return ClientSettings()
        return next(reversed(self._held.values()))[1]

    def effective(self, config: Settings) -> Settings:
        return apply_client_settings(config, self.current())

    async def configure(self, params: ClientSettings, ctx: RequestContext) -> ConfigureResult:
        self.hold(ctx.connection, params)
        try:
            loaded = await asyncio.to_thread(load_settings, self.app.root)
            config = loaded.config
        except MaestroError as exc:  # the workspace config is broken: the graph reports it
            log.warning("configure: workspace settings unreadable: %s", exc.message)
            config = Settings()
        effective = self.effective(config)
        from maestro.daemon.services.flags import FlagsService

        with contextlib.suppress(LookupError):  # what is in force: a tenant kill-switch included
            effective = self.app.service(FlagsService).apply(effective)
        log.info(
            "client settings of %s: %s",
            ctx.connection, params.model_dump(exclude_none=True) or "none",
        )  # fmt: skip
        from maestro.daemon.services.sync import SyncService

        problem: str | None = None
        try:
            sync = self.app.service(SyncService)
        except LookupError:  # a daemon composed without sync (tests)
            pass
        else:
            await sync.configure(effective.remote)
            problem = sync.problem
        return ConfigureResult(
            interpreter=effective.interpreter,
            speculation=effective.ml.speculation.enabled,
            coordinator_url=effective.remote.url if effective.remote else None,
            remote_problem=problem,
        )


def install(app: DaemonApp) -> ClientSettingsService:
    service = ClientSettingsService(app)
    app.provide(ClientSettingsService, service)
    app.register(CONFIGURE, service.configure)
    return service
