"""DaemonApp served inside the test's event loop: registration, broadcasts, slow clients, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
from conftest import DaemonEnv

from maestro import wire
from maestro.daemon.app import DaemonApp
from maestro.daemon.lifecycle import DaemonPaths
from maestro.daemon.transport import server as server_mod
from maestro.daemon.transport.client import DaemonClient
from maestro.daemon.transport.framing import encode_frame
from maestro.daemon.transport.server import RequestContext, ServerConfig
from maestro.errors import (
    ConnectionLostError,
    DaemonNotRunningError,
    InternalError,
    ProtocolError,
    UnknownTargetError,
)

T = TypeVar("T")


class EchoParams(wire.WireModel):
    text: str
    fail: str = ""


class EchoResult(wire.WireModel):
    upper: str
    calls: int


ECHO = wire.register_method("test.echo", EchoParams, EchoResult, doc="test only")


class Counter:
    def __init__(self) -> None:
        self.calls = 0


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


@asynccontextmanager
async def serving(env: DaemonEnv, config: ServerConfig | None = None) -> AsyncIterator[DaemonApp]:
    paths = DaemonPaths.for_root(env.root, create_socket_dir=True)
    app = DaemonApp(paths, idle_timeout_s=0, server_config=config, test_methods=True)
    app.provide(Counter, Counter())

    async def echo(params: EchoParams, ctx: RequestContext) -> EchoResult | wire.Dumped[EchoResult]:
        counter = app.service(Counter)
        counter.calls += 1
        if params.fail == "maestro":
            raise UnknownTargetError(f"no target {params.text}", hint="list them", where="x.py")
        if params.fail == "bug":
            raise ValueError("boom")
        if params.fail == "type":
            return wire.Empty()  # type: ignore[return-value]
        if params.fail == "dumped":  # sent as is; the client still validates it
            return wire.Dumped(EchoResult, {"upper": params.text.upper(), "calls": counter.calls})
        if params.fail == "dumped-wrong":
            return wire.Dumped(wire.Empty, {})  # type: ignore[arg-type]
        if params.fail == "dumped-invalid":
            return wire.Dumped(EchoResult, {"upper": 3})
        return EchoResult(upper=params.text.upper(), calls=counter.calls)

    app.register(ECHO, echo)
    task = asyncio.create_task(app.serve())
    while app.server is None or not paths.socket.exists():
        assert not task.done(), task
        await asyncio.sleep(0.01)
    try:
        yield app
    finally:
        app.request_shutdown("test over")
        await task


def test_registered_method_and_typed_errors(daemon_env: DaemonEnv) -> None:
    async def scenario() -> None:
        async with serving(daemon_env) as app:
            client = await DaemonClient.connect_socket(app.paths.socket)
            result = await client.call(ECHO, EchoParams(text="abc"))
            assert result == EchoResult(upper="ABC", calls=1)
            assert (await client.call("test.echo", {"text": "x"})).upper == "X"  # type: ignore[attr-defined]

            with pytest.raises(UnknownTargetError) as known:
                await client.call(ECHO, {"text": "t", "fail": "maestro"})
            assert (known.value.hint, known.value.where) == ("list them", "x.py")

            with pytest.raises(InternalError) as bug:
                await client.call(ECHO, {"text": "t", "fail": "bug"})
            assert "ValueError: boom" in bug.value.message
            assert str(app.paths.log) in (bug.value.hint or "")

            with pytest.raises(InternalError, match="returned Empty"):
                await client.call(ECHO, {"text": "t", "fail": "type"})
            assert (await client.call(ECHO, {"text": "ab", "fail": "dumped"})).upper == "AB"
            with pytest.raises(InternalError, match="returned Dumped"):
                await client.call(ECHO, {"text": "t", "fail": "dumped-wrong"})
            with pytest.raises(ProtocolError):  # the receiver's validation is the check
                await client.call(ECHO, {"text": "t", "fail": "dumped-invalid"})
            assert (await client.call(ECHO, {"text": "ok"})).calls == 9
            await client.close()

    run(scenario())


def test_broadcast_reaches_subscribers_only(daemon_env: DaemonEnv) -> None:
    async def scenario() -> None:
        async with serving(daemon_env) as app:
            sub = await DaemonClient.connect_socket(app.paths.socket)
            other = await DaemonClient.connect_socket(app.paths.socket)
            assert await sub.subscribe(["graph_changed"]) == ["graph_changed"]
            assert app.broadcast("graph_changed", {"files": ["a.py"]}) == 1
            assert app.broadcast("something_else") == 0
            event = await sub.next_event(timeout=2)
            assert (event.event, event.payload, event.id) == (
                "graph_changed",
                {"files": ["a.py"]},
                None,
            )
            with pytest.raises(TimeoutError):
                await other.next_event(timeout=0.2)
            await other.subscribe()  # "*"
            assert app.broadcast("anything") == 1
            assert (await other.next_event(timeout=2)).event == "anything"
            await sub.close()
            await other.close()

    run(scenario())


def test_client_that_stops_reading_is_dropped_not_waited_for(daemon_env: DaemonEnv) -> None:
    config = ServerConfig(send_queue_frames=8, send_timeout_s=1.0)

    async def scenario() -> None:
        async with serving(daemon_env, config) as app:
            assert app.server is not None
            good = await DaemonClient.connect_socket(app.paths.socket)
            await good.subscribe()
            _, writer = await asyncio.open_unix_connection(str(app.paths.socket))
            writer.write(encode_frame(wire.dump_frame(wire.hello("stuck"))))
            request = wire.Request(id=1, method="subscribe", params={"events": ["*"]})
            writer.write(encode_frame(wire.dump_frame(request)))
            await writer.drain()
            while sum(bool(c.subscriptions) for c in app.server.connections) < 2:
                await asyncio.sleep(0.01)

            blob = {"blob": "x" * 1_000_000}
            received = 0
            for _ in range(40):
                app.broadcast("big", blob)
                await asyncio.sleep(0.01)  # the good client shares this loop: let it read
            while received < 40:
                assert (await good.next_event(timeout=5)).event == "big"
                received += 1
            while len(app.server.connections) != 1:  # the stuck client was dropped
                await asyncio.sleep(0.05)
            assert (await good.call(wire.PING, {"echo": "alive"})).echo == "alive"
            writer.close()
            await good.close()

    run(scenario())


def test_peer_with_another_uid_is_rejected(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with serving(daemon_env) as app:
            real_uid = server_mod.os.getuid()
            monkeypatch.setattr(server_mod.os, "getuid", lambda: real_uid + 1)
            with pytest.raises((ConnectionLostError, DaemonNotRunningError)):
                await DaemonClient.connect_socket(app.paths.socket, timeout=3)
            monkeypatch.setattr(server_mod.os, "getuid", lambda: real_uid)
            client = await DaemonClient.connect_socket(app.paths.socket)
            assert (await client.call(wire.PING)).echo == ""
            await client.close()

    run(scenario())


def test_shutdown_closes_clients_and_cancels_requests(daemon_env: DaemonEnv) -> None:
    async def scenario() -> None:
        async with serving(daemon_env) as app:
            client = await DaemonClient.connect_socket(app.paths.socket)
            slow = asyncio.create_task(client.call(wire.DEBUG_SLEEP, {"seconds": 30}))
            await asyncio.sleep(0.1)
            assert (await client.call(wire.SHUTDOWN)).stopping
            # in flight when the daemon stops: a retryable kind of lost connection, so that
            # the CLI and the LSP server ask again (a fresh daemon answers), never "cancelled"
            with pytest.raises(ConnectionLostError) as info:
                await slow
            assert info.value.code in {"daemon_stopping", "connection_lost"}
            await client.close()
        assert not app.paths.socket.exists()

    run(scenario())


def test_registry_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match="already registered"):
        wire.register_method("ping", wire.PingParams, wire.PingResult)
    with pytest.raises(ValueError, match="not declared"):
        server_mod.Dispatcher().register("never.declared", _never)


async def _never(params: wire.Empty, ctx: RequestContext) -> wire.Empty:
    return wire.Empty()
