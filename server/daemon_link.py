"""One workspace folder's connection to its daemon: connect or start, reconnect transparently.

A query that fails because the daemon went away (killed, crashed, stopped, upgraded) reconnects
once (starting a new daemon when ``autostart``) and is sent again: every daemon query is a
read-only question, so repeating it is safe. Test runs are not repeated: a run whose daemon died
reports the error, and the next run reconnects.

The link also subscribes to the daemon's ``graph_changed`` broadcast and hands events to the
server (lens refresh, caches invalidated); the subscription is renewed on every reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from maestro.daemon.transport.client import DaemonClient, Stream
from maestro.errors import (
    ConnectionLostError,
    DaemonNotRunningError,
    MaestroError,
    ProtocolMismatchError,
)
from maestro.server.methods import LinkState, WorkspaceStatus
from maestro.wire import (
    CONFIGURE,
    REMOTE_BACKOFF,
    STATUS,
    ClientSettings,
    ConfigureResult,
    Empty,
    Event,
    MethodSpec,
    P,
    R,
)

log = logging.getLogger(__name__)


_RETRYABLE = (ConnectionLostError, DaemonNotRunningError)

EventHandler = Callable[["DaemonLink", Event], Awaitable[None]]
StateHandler = Callable[["DaemonLink"], None]


class DaemonLink:
    """The daemon of one workspace root, as seen by the LSP server."""

    def __init__(
        self,
        root: Path,
        *,
        autostart: bool = True,
        timeout_s: float = 60.0,
        settings: ClientSettings | None = None,
        on_event: EventHandler | None = None,
        on_state: StateHandler | None = None,
    ) -> None:
        self.root = root
        self.autostart = autostart
        self._timeout_s = timeout_s
        self.settings = settings or ClientSettings()
        """The editor's settings for this daemon: sent on every connect (a restarted daemon
        forgets them) and whenever they change."""
        self.applied: ConfigureResult | None = None
        self.state: LinkState = "idle"
        self.last_error: str | None = None
        self.connects = 0
        self.pid: int | None = None
        self._client: DaemonClient | None = None
        self._lock = asyncio.Lock()
        self._pump: asyncio.Task[None] | None = None
        self._on_event = on_event
        self._on_state = on_state
        self._closing = False

    # --- connection ------------------------------------------------------------------------------

    @property
    def timeout_s(self) -> float:
        """How long a query waits for the daemon (the editor's requestTimeoutS)."""
        return self._timeout_s

    @timeout_s.setter
    def timeout_s(self, value: float) -> None:
        # the live connection too: a changed setting must not wait for the next reconnect
        self._timeout_s = value
        if self._client is not None:
            self._client.default_timeout = value

    @property
    def connected(self) -> bool:
        return self._client is not None and not self._client.closed

    async def client(self) -> DaemonClient:
        """The live connection, (re)connecting — and starting the daemon — when needed."""
        client = self._client
        if client is not None and not client.closed:
            return client
        async with self._lock:
            client = self._client
            if client is not None and not client.closed:
                return client
            if self._closing:
                raise ConnectionLostError("the language server is shutting down")
            self._set_state("connecting")
            try:
                client = await DaemonClient.connect(
                    self.root, start=self.autostart, client="lsp", default_timeout=self.timeout_s
                )
            except ProtocolMismatchError as exc:
                # An old daemon from before an upgrade: replace it once, transparently.
                if not self.autostart:
                    self._fail(exc)
                    raise
                log.warning("%s; restarting the daemon", exc.message)
                from maestro.daemon.lifecycle import stop_daemon

                await asyncio.to_thread(stop_daemon, self.root)
                client = await self._connect_or_fail()
            except MaestroError as exc:
                self._fail(exc)
                raise
            self._client = client
            self.pid = client.info.pid
            self.connects += 1
            self.last_error = None
            await self._send_settings(client)
            try:
                await client.subscribe(["graph_changed", "policy.incident", REMOTE_BACKOFF])
            except MaestroError as exc:
                log.warning("cannot subscribe to daemon events: %s", exc.message)
            self._pump = asyncio.create_task(self._read_events(client), name="daemon-events")
            self._set_state("connected")
            if self.connects > 1:
                log.info("reconnected to the daemon of %s (pid %s)", self.root, self.pid)
            return client

    async def _connect_or_fail(self) -> DaemonClient:
        try:
            return await DaemonClient.connect(
                self.root, start=True, client="lsp", default_timeout=self.timeout_s
            )
        except MaestroError as exc:
            self._fail(exc)
            raise

    async def configure(self, settings: ClientSettings) -> None:
        """New editor settings: kept for later connects, sent now if connected."""
        self.settings = settings
        client = self._client
        if client is not None and not client.closed:
            await self._send_settings(client)

    async def _send_settings(self, client: DaemonClient) -> None:
        try:
            self.applied = await client.call(CONFIGURE, self.settings)
        except MaestroError as exc:  # an older daemon without `configure`: run on its config
            log.warning("the daemon of %s did not take the editor settings: %s", self.root, exc)
            return
        if self.applied.remote_problem:
            log.warning("remote cache of %s: %s", self.root, self.applied.remote_problem)

    def _fail(self, exc: MaestroError) -> None:
        if self.state != "error":  # once per outage: every request retries while it lasts
            log.warning("cannot connect to the daemon of %s: %s", self.root, exc.message)
        self.last_error = exc.message
        self._set_state("error")

    def _set_state(self, state: LinkState) -> None:
        if state != self.state:
            self.state = state
            if self._on_state is not None:
                try:
                    self._on_state(self)
                except Exception:
                    log.exception("state callback failed")

    async def _drop(self, client: DaemonClient, why: BaseException) -> None:
        if self._client is client:
            self._client = None
            self.last_error = str(why)
            self._set_state("disconnected")
        with contextlib.suppress(Exception):
            await client.close()

    async def _read_events(self, client: DaemonClient) -> None:
        try:
            while True:
                event = await client.next_event()
                if self._on_event is not None:
                    try:
                        await self._on_event(self, event)
                    except Exception:
                        log.exception("daemon event handler failed")
        except MaestroError as exc:
            await self._drop(client, exc)
            if self.autostart and not self._closing:
                # The daemon died: bring it back now so that the editor's next question is fast
                # and graph_changed events keep flowing.
                await asyncio.sleep(0.2)
                with contextlib.suppress(MaestroError):
                    await self.client()
        except asyncio.CancelledError:
            pass

    # --- calls -----------------------------------------------------------------------------------

    async def call(self, method: MethodSpec[P, R], params: P | None = None) -> R:
        """A daemon query; retried once on a fresh connection if the daemon went away."""
        for attempt in (0, 1):
            client = await self.client()
            try:
                return await client.call(method, params)
            except _RETRYABLE as exc:
                await self._drop(client, exc)
                if attempt:
                    raise
                log.info("daemon connection lost during %s; reconnecting", method.name)
        raise AssertionError("unreachable")

    async def stream(self, method: MethodSpec[P, R], params: P) -> Stream[R]:
        """A streaming request (not retried); iterate it inside ``async with``."""
        client = await self.client()
        return client.stream(method, params, timeout=None)

    async def status(self) -> WorkspaceStatus:
        """What `maestro/status` reports for this root."""
        info: WorkspaceStatus = {
            "root": str(self.root),
            "state": self.state,
            "pid": self.pid,
            "connects": self.connects,
            "restarts": max(0, self.connects - 1),
            "lastError": self.last_error,
            "daemon": None,
        }
        try:
            started = time.perf_counter()
            info["daemon"] = await self.call(STATUS, Empty())
            info["latencyMs"] = round((time.perf_counter() - started) * 1000, 3)
            info["state"] = self.state
            info["pid"] = self.pid
        except MaestroError as exc:
            info["state"] = self.state
            info["lastError"] = exc.message
        return info

    async def close(self) -> None:
        self._closing = True
        if self._pump is not None:
            self._pump.cancel()
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
