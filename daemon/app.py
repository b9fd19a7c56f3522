"""The daemon's composition root: a DaemonApp holds workspace services and the method handlers.

Colleagues plug features in without touching transport code: declare the method in
``maestro.wire`` (``register_method``), then in ``build_app`` (or a startup hook) call
``app.register(SPEC, handler)`` and ``app.provide(Service, instance)``. Handlers receive the
validated params model and a RequestContext; long-lived work uses ``app.broadcast`` for events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from maestro import __version__
from maestro.daemon.lifecycle import (
    DaemonPaths,
    idle_timeout_from_env,
    read_info,
    reap_orphaned_runs,
    remove_stale_socket_file,
    write_info,
)
from maestro.daemon.transport.server import Dispatcher, RequestContext, RpcServer, ServerConfig
from maestro.wire import (
    DEBUG_SLEEP,
    DEBUG_TICK,
    PING,
    PROTOCOL_VERSION,
    SHUTDOWN,
    STATUS,
    SUBSCRIBE,
    Dumped,
    Empty,
    MethodSpec,
    P,
    PingParams,
    PingResult,
    R,
    RemoteStatus,
    RetraceStatus,
    ShutdownResult,
    SleepParams,
    SleepResult,
    SpeculationStatus,
    StatusResult,
    SubscribeParams,
    SubscribeResult,
    TickPayload,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


def _status_of(what: str, read: Callable[[], T | None]) -> T | None:
    """A service's part of `maestro status`, or None: status must answer even when that
    service's bookkeeping is broken (logged)."""
    try:
        return read()
    except Exception:
        log.exception("%s status failed", what)
        return None


Hook = Callable[["DaemonApp"], Awaitable[None]]

FIRST_ANSWER_LIMIT_S = 2.0
"""How long background work started with the daemon (such as the first run's imports and pytest
process) waits for the first answer before starting anyway: on a 2-vCPU machine it otherwise
competes with that answer, which a client that just started the daemon waits for."""


STATE_WATCH_S = 0.5
"""How often the daemon checks that its lock file is still there (two stat calls)."""


def test_methods_enabled() -> bool:
    return os.environ.get("MAESTRO_DAEMON_TEST_METHODS") == "1"


class DaemonApp:
    """One workspace's daemon: paths, services, dispatcher, server and the idle/stop policy."""

    def __init__(
        self,
        paths: DaemonPaths,
        *,
        idle_timeout_s: float | None = None,
        server_config: ServerConfig | None = None,
        test_methods: bool | None = None,
    ) -> None:
        self.paths = paths
        self.root = paths.root
        self.idle_timeout_s = idle_timeout_from_env() if idle_timeout_s is None else idle_timeout_s
        self.server_config = server_config or ServerConfig()
        self.dispatcher = Dispatcher()
        self.server: RpcServer | None = None
        self.started_at = time.time()
        self._started_mono = time.monotonic()
        self._services: dict[type[Any], Any] = {}
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []
        self._stop: asyncio.Event | None = None
        self._answered = asyncio.Event()
        self.stop_reason = ""
        self.owns_state: Callable[[], bool] | None = None
        """Whether the workspace's lock (so its state directory) is still this daemon's; set by
        the daemon process, which holds the lock."""
        self._register_builtins(test_methods_enabled() if test_methods is None else test_methods)

    # --- extension points ------------------------------------------------------------------------

    def register(
        self,
        method: MethodSpec[P, R] | str,
        handler: Callable[[P, RequestContext], Awaitable[R | Dumped[R]]],
    ) -> None:
        """Serve ``method`` (declared in maestro.wire) with ``handler``."""
        self.dispatcher.register(method, handler)

    def provide(
        self, kind: type[T], service: T, *, start: Hook | None = None, stop: Hook | None = None
    ) -> None:
        """Hold a workspace service (graph, cache, runner) for handlers to look up by type;
        `start` and `stop` run with the daemon's (see on_startup, on_shutdown)."""
        self._services[kind] = service
        if start is not None:
            self.on_startup(start)
        if stop is not None:
            self.on_shutdown(stop)

    def service(self, kind: type[T]) -> T:
        try:
            found: T = self._services[kind]
        except KeyError:
            raise LookupError(f"no {kind.__name__} service in this daemon") from None
        return found

    def on_startup(self, hook: Hook) -> None:
        """Run before the socket is bound: when clients can connect, services are ready."""
        self._startup.append(hook)

    def on_shutdown(self, hook: Hook) -> None:
        """Run after connections are closed, in reverse registration order."""
        self._shutdown.append(hook)

    def answered(self) -> None:
        """The daemon answered a workspace query or began a run: work waiting in
        `first_answer` may start."""
        self._answered.set()

    async def first_answer(self, limit_s: float = FIRST_ANSWER_LIMIT_S) -> None:
        """Return once the daemon has answered (see `answered`), or after ``limit_s``: for
        background work that would slow the answer a client waits for after a start."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._answered.wait(), limit_s)

    def broadcast(self, event: str, payload: BaseModel | Mapping[str, Any] | None = None) -> int:
        """Push an event to subscribed clients (never blocks); returns how many got it."""
        return self.server.broadcast(event, payload) if self.server else 0

    def request_shutdown(self, reason: str = "requested") -> None:
        if self._stop is not None and not self._stop.is_set():
            log.info("shutting down: %s", reason)
            self.stop_reason = reason
            self._stop.set()

    # --- running ---------------------------------------------------------------------------------

    async def serve(self) -> None:
        """Bind, serve until shutdown (request, SIGTERM/SIGINT, idle), then clean up."""
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_shutdown, sig.name)
        try:
            for hook in self._startup:
                await hook(self)
            remove_stale_socket_file(self.paths.socket)
            self.server = RpcServer(
                self.dispatcher,
                self.paths.socket,
                root=self.root,
                config=self.server_config,
                log_path=self.paths.log,
                on_outdated=self.request_shutdown,
            )
            await self.server.start()
            write_info(self.paths, self._info())
            idle = asyncio.create_task(self._idle_watch(), name="idle-watch")
            reap = asyncio.create_task(self._reap_orphans(), name="reap-orphans")
            state = asyncio.create_task(self._state_watch(), name="state-watch")
            try:
                await self._stop.wait()
            finally:
                idle.cancel()
                reap.cancel()
                state.cancel()
                await self.server.close()
                self._remove_info()
        finally:
            for hook in reversed(self._shutdown):
                try:
                    await hook(self)
                except Exception:
                    log.exception("shutdown hook %r failed", hook)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    async def _reap_orphans(self) -> None:
        """The runs a dead daemon left, killed once the first answer is out: it imports the test
        runner, which that answer does not need, and a run kills them itself before it starts."""
        await self.first_answer()
        await asyncio.to_thread(reap_orphaned_runs, self.root)

    def _remove_info(self) -> None:
        """daemon.json, if it is still this daemon's (a successor may have written its own)."""
        info = read_info(self.paths)
        if info is not None and info.get("pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                self.paths.info.unlink()

    async def _state_watch(self, step_s: float = STATE_WATCH_S) -> None:
        """Stop once the state directory is gone or replaced: no client can reach this daemon
        any more, and the next start would make a second one for the same workspace."""
        owns = self.owns_state
        if owns is None:
            return
        while True:
            await asyncio.sleep(step_s)
            if not owns():
                self.request_shutdown(
                    f"its lock {self.paths.lock} was removed (state directory deleted?)"
                )
                return

    async def _idle_watch(self) -> None:
        if self.idle_timeout_s <= 0:
            return
        step = min(self.idle_timeout_s / 4, 30.0)
        while True:
            await asyncio.sleep(step)
            server = self.server
            if server is None or server.connections or server.in_flight:
                continue
            if time.monotonic() - server.last_activity >= self.idle_timeout_s:
                self.request_shutdown(f"idle for {self.idle_timeout_s:g}s")
                return

    def _info(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "root": str(self.root),
            "socket": str(self.paths.socket),
            "log": str(self.paths.log),
            "protocol": PROTOCOL_VERSION,
            "maestro_version": __version__,
            "started_at": self.started_at,
        }

    # --- built-in methods ------------------------------------------------------------------------

    def _register_builtins(self, test_methods: bool) -> None:
        self.register(PING, self._ping)
        self.register(STATUS, self._status)
        self.register(SHUTDOWN, self._shutdown_method)
        self.register(SUBSCRIBE, self._subscribe)
        if test_methods:
            self.register(DEBUG_SLEEP, _debug_sleep)

    async def _ping(self, params: PingParams, ctx: RequestContext) -> PingResult:
        return PingResult(echo=params.echo, time=time.time())

    async def _status(self, params: Empty, ctx: RequestContext) -> StatusResult:
        server = self.server
        return StatusResult(
            pid=os.getpid(),
            root=str(self.root),
            uptime_s=time.monotonic() - self._started_mono,
            protocol=PROTOCOL_VERSION,
            maestro_version=__version__,
            python_version=sys.version.split()[0],
            connections=len(server.connections) if server else 0,
            requests_in_flight=max(0, (server.in_flight if server else 0) - 1),
            idle_timeout_s=self.idle_timeout_s,
            log_path=str(self.paths.log),
            socket_path=str(self.paths.socket),
            state_dir=str(self.paths.state_dir),
            methods=self.dispatcher.methods(),
            remote=self._remote_status(),
            speculation=self._speculation_status(),
            retrace=self._retrace_status(),
        )

    def _retrace_status(self) -> RetraceStatus | None:
        from maestro.daemon.services.tests import TestService

        service = self._services.get(TestService)
        return _status_of("retrace", service.retrace_status) if service else None

    def _speculation_status(self) -> SpeculationStatus | None:
        from maestro.daemon.services.speculation import SpeculationService

        service = self._services.get(SpeculationService)
        return _status_of("speculation", service.status) if service else None

    def _remote_status(self) -> RemoteStatus | None:
        from maestro.daemon.services.sync import SyncService

        sync = self._services.get(SyncService)
        return _status_of("remote", sync.status) if sync else None

    async def _shutdown_method(self, params: Empty, ctx: RequestContext) -> ShutdownResult:
        # Stop on the next loop turn, once the reply is queued: close() flushes queues first.
        asyncio.get_running_loop().call_soon(
            self.request_shutdown, f"shutdown from {ctx.connection}"
        )
        return ShutdownResult(stopping=True)

    async def _subscribe(self, params: SubscribeParams, ctx: RequestContext) -> SubscribeResult:
        ctx.connection.subscriptions = set(params.events)
        return SubscribeResult(events=sorted(ctx.connection.subscriptions))


async def _debug_sleep(params: SleepParams, ctx: RequestContext) -> SleepResult:
    """Test-only: a slow, streaming, cancellable handler."""
    started = time.monotonic()
    steps = max(params.ticks, 1)
    for n in range(steps):
        await asyncio.sleep(params.seconds / steps)
        if params.ticks:
            await ctx.emit(DEBUG_TICK, TickPayload(n=n))
    return SleepResult(slept_s=time.monotonic() - started)


def build_app(paths: DaemonPaths) -> DaemonApp:
    """Compose the daemon. Workspace services (graph, cache, runner) are plugged in here."""
    from maestro.daemon.services import (
        client_settings,
        flags,
        speculation,
        sync,
        tests,
        workspace,
    )

    app = DaemonApp(paths)
    client_settings.install(app)
    shared = workspace.install(app, watch=os.environ.get("MAESTRO_DAEMON_WATCH") != "0")
    remote = sync.install(app)
    flags.install(app)
    runs = tests.install(app, shared, remote)
    speculation.install(app, shared, runs)
    return app
