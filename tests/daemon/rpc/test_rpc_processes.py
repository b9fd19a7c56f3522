"""The daemon as a real detached process: start races, kill -9, idle, permissions, isolation."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import msgpack
import pytest
from conftest import DaemonEnv, daemon_processes, kill_hard

from maestro import wire
from maestro.daemon.lifecycle import start_daemon, stop_daemon
from maestro.daemon.transport.client import DaemonClient, SyncDaemonClient
from maestro.daemon.transport.framing import FrameDecoder, encode_frame
from maestro.errors import (
    ConnectionLostError,
    DaemonNotRunningError,
    InvalidParamsError,
    ProtocolMismatchError,
    RequestCancelledError,
    RequestTimeoutError,
    UnknownMethodError,
)

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """asyncio.run with a hard bound: a hanging test fails instead of blocking the suite."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


def started(env: DaemonEnv) -> int:
    reply = start_daemon(env.root)
    assert reply is not None
    return env.track(reply.pid)


class RawClient:
    """A hand-driven socket, to send what a well-behaved client never would."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5.0)
        self.sock.connect(str(path))
        self.decoder = FrameDecoder()
        self.frames: list[dict[str, Any]] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, obj: dict[str, Any]) -> None:
        self.send(encode_frame(obj))

    def hello(self) -> dict[str, Any]:
        self.send_frame(wire.dump_frame(wire.hello("raw")))
        return self.recv()

    def recv(self) -> dict[str, Any]:
        while not self.frames:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.frames.extend(self.decoder.feed(data))
        return self.frames.pop(0)

    def at_eof(self) -> bool:
        try:
            return self.sock.recv(65536) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def test_start_status_stop_and_permissions(daemon_env: DaemonEnv) -> None:
    pid = started(daemon_env)
    paths = daemon_env.paths
    assert stat.S_IMODE(paths.state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(paths.socket.parent.stat().st_mode) == 0o700
    sock_st = paths.socket.stat()
    assert stat.S_ISSOCK(sock_st.st_mode)
    assert stat.S_IMODE(sock_st.st_mode) == 0o600
    assert stat.S_IMODE(paths.lock.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.log.stat().st_mode) == 0o600
    assert json.loads(paths.info.read_text())["pid"] == pid

    with SyncDaemonClient(daemon_env.root) as client:
        status = client.call(wire.STATUS)
    assert status.pid == pid
    assert status.root == str(daemon_env.root)
    assert status.protocol == wire.PROTOCOL_VERSION
    assert status.connections == 1
    assert status.log_path == str(paths.log)
    assert {"ping", "status", "shutdown", "debug.sleep"} <= set(status.methods)

    # A second start is a no-op that reports the same daemon.
    assert start_daemon(daemon_env.root) is not None
    assert daemon_env.holder() == pid

    assert stop_daemon(daemon_env.root) == pid
    assert daemon_env.holder() is None
    assert not paths.socket.exists()
    assert not paths.info.exists()
    assert stop_daemon(daemon_env.root) is None


def test_not_running_without_start(daemon_env: DaemonEnv) -> None:
    with pytest.raises(DaemonNotRunningError) as info:
        run(DaemonClient.connect(daemon_env.root, start=False))
    assert "maestro daemon start" in (info.value.hint or "")
    assert not daemon_processes(daemon_env.root)


def test_connect_starts_the_daemon(daemon_env: DaemonEnv) -> None:
    async def scenario() -> int:
        async with await DaemonClient.connect(daemon_env.root) as client:
            pong = await client.call(wire.PING, wire.PingParams(echo="hi"))
            assert pong.echo == "hi"
            return client.info.pid

    daemon_env.track(run(scenario()))
    assert daemon_processes(daemon_env.root) == [daemon_env.holder()]


def test_two_clients_run_concurrently(daemon_env: DaemonEnv) -> None:
    started(daemon_env)

    async def scenario() -> None:
        a = await DaemonClient.connect(daemon_env.root, start=False)
        b = await DaemonClient.connect(daemon_env.root, start=False)
        try:
            t0 = time.monotonic()
            results = await asyncio.gather(
                a.call(wire.DEBUG_SLEEP, wire.SleepParams(seconds=0.6)),
                b.call(wire.DEBUG_SLEEP, wire.SleepParams(seconds=0.6)),
                a.call(wire.DEBUG_SLEEP, wire.SleepParams(seconds=0.6)),  # same connection too
                b.call(wire.PING),
            )
            assert time.monotonic() - t0 < 1.5
            assert all(r.slept_s >= 0.55 for r in results[:3])  # type: ignore[union-attr]
            status = await a.call(wire.STATUS)
            assert status.connections == 2
        finally:
            await a.close()
            await b.close()

    run(scenario())


def test_client_vanishing_mid_stream_does_not_disturb_others(daemon_env: DaemonEnv) -> None:
    started(daemon_env)

    async def scenario() -> None:
        other = await DaemonClient.connect(daemon_env.root, start=False)
        reader, writer = await asyncio.open_unix_connection(str(daemon_env.paths.socket))
        writer.write(encode_frame(wire.dump_frame(wire.hello("doomed"))))
        request = wire.Request(id=1, method="debug.sleep", params={"seconds": 20, "ticks": 400})
        writer.write(encode_frame(wire.dump_frame(request)))
        await writer.drain()
        decoder = FrameDecoder()
        frames: list[dict[str, Any]] = []
        while sum(f["type"] == "event" for f in frames) < 3:
            frames += decoder.feed(await reader.read(65536))
        assert frames[0]["type"] == "hello_reply"
        writer.transport.abort()  # gone without a word, mid-stream

        for _ in range(5):
            assert (await other.call(wire.PING, {"echo": "still here"})).echo == "still here"
        deadline = time.monotonic() + 5
        while True:
            status = await other.call(wire.STATUS)
            if status.connections == 1 and status.requests_in_flight == 0:
                break
            assert time.monotonic() < deadline, status
            await asyncio.sleep(0.05)
        await other.close()

    run(scenario())


def test_start_race_yields_one_daemon(daemon_env: DaemonEnv) -> None:
    script = (
        "import sys; from pathlib import Path;"
        "from maestro.daemon.transport.client import SyncDaemonClient; from maestro import wire;"
        "c = SyncDaemonClient(Path(sys.argv[1]));"
        "print(c.call(wire.STATUS).pid); c.close()"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-P", "-c", script, str(daemon_env.root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd="/",
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err.decode()
    pids = {int(out) for out, _ in outputs}
    for pid in pids:
        daemon_env.track(pid)
    assert len(pids) == 1
    deadline = time.monotonic() + 5  # losers of the lock race exit on their own
    while len(daemon_processes(daemon_env.root)) != 1:
        assert time.monotonic() < deadline, daemon_processes(daemon_env.root)
        time.sleep(0.05)
    assert daemon_processes(daemon_env.root) == [pids.pop()]


def test_kill_9_leaves_stale_socket_that_next_start_replaces(daemon_env: DaemonEnv) -> None:
    pid = started(daemon_env)
    sock = daemon_env.paths.socket
    kill_hard(pid)
    assert sock.exists(), "kill -9 cannot clean up: the socket file stays behind"
    assert daemon_env.holder() is None, "the kernel released the lock"
    with pytest.raises(DaemonNotRunningError):
        run(DaemonClient.connect(daemon_env.root, start=False))

    new_pid = started(daemon_env)
    assert new_pid != pid
    assert "removing stale socket" in daemon_env.paths.log.read_text()
    with SyncDaemonClient(daemon_env.root, start=False) as client:
        assert client.call(wire.STATUS).pid == new_pid


def _only_daemons(env: DaemonEnv, expected: list[int], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while daemon_processes(env.root) != expected:
        assert time.monotonic() < deadline, (daemon_processes(env.root), expected)
        time.sleep(0.05)


def test_a_daemon_whose_state_dir_was_removed_stops_by_itself(daemon_env: DaemonEnv) -> None:
    """`rm -rf` of the state directory (or `git clean -fdx` with it inside the project): the
    daemon can no longer be reached, so it must not run on (watching, running tests) forever."""
    started(daemon_env)
    state = daemon_env.paths.state_dir
    shutil.rmtree(state)
    _only_daemons(daemon_env, [], within_s=5.0)
    assert not state.exists(), sorted(p.name for p in state.iterdir())


def test_start_after_the_state_dir_was_removed_leaves_one_daemon(daemon_env: DaemonEnv) -> None:
    old = started(daemon_env)
    shutil.rmtree(daemon_env.paths.state_dir)
    new = started(daemon_env)
    assert new != old
    _only_daemons(daemon_env, [new])
    with SyncDaemonClient(daemon_env.root, start=False) as client:
        assert client.call(wire.STATUS).pid == new
    # the old daemon, leaving, removed none of the new one's files
    assert daemon_env.paths.socket.exists()
    assert json.loads(daemon_env.paths.info.read_text())["pid"] == new


def test_connection_lost_mid_call_raises_quickly(daemon_env: DaemonEnv) -> None:
    pid = started(daemon_env)

    async def scenario() -> None:
        client = await DaemonClient.connect(daemon_env.root, start=False)
        call = asyncio.create_task(client.call(wire.DEBUG_SLEEP, {"seconds": 60}, timeout=None))
        await asyncio.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(ConnectionLostError):
            await call
        assert time.monotonic() - t0 < 2
        with pytest.raises(ConnectionLostError):
            await client.call(wire.PING)
        await client.close()

    run(scenario())
    kill_hard(pid)


def test_call_timeout_is_typed_and_cancels(daemon_env: DaemonEnv) -> None:
    started(daemon_env)

    async def scenario() -> None:
        async with await DaemonClient.connect(daemon_env.root, start=False) as client:
            with pytest.raises(RequestTimeoutError):
                await client.call(wire.DEBUG_SLEEP, {"seconds": 30}, timeout=0.3)
            await asyncio.sleep(0.2)
            assert (await client.call(wire.STATUS)).requests_in_flight == 0

    run(scenario())


def test_cancel_slow_handler(daemon_env: DaemonEnv) -> None:
    started(daemon_env)

    async def scenario() -> None:
        async with await DaemonClient.connect(daemon_env.root, start=False) as client:
            stream = client.stream(wire.DEBUG_SLEEP, wire.SleepParams(seconds=30, ticks=300))
            t0 = time.monotonic()
            events = 0
            with pytest.raises(RequestCancelledError) as info:
                async with stream:
                    async for event in stream:
                        assert event.event == wire.DEBUG_TICK
                        assert event.id == stream.request_id
                        events += 1
                        if events == 2:
                            await stream.cancel()
            assert time.monotonic() - t0 < 3
            assert "cancelled" in info.value.message
            assert (await client.call(wire.STATUS)).requests_in_flight == 0
            # The connection is still fine.
            assert (await client.call(wire.PING, {"echo": "x"})).echo == "x"

    run(scenario())


def test_stream_delivers_events_then_result(daemon_env: DaemonEnv) -> None:
    started(daemon_env)
    seen: list[wire.Event] = []
    with SyncDaemonClient(daemon_env.root, start=False) as client:
        result = client.stream(wire.DEBUG_SLEEP, {"seconds": 0.2, "ticks": 5}, seen.append)
    assert [e.payload["n"] for e in seen] == [0, 1, 2, 3, 4]
    assert result.slept_s >= 0.19


def test_protocol_mismatch_is_clear(daemon_env: DaemonEnv) -> None:
    started(daemon_env)
    with pytest.raises(ProtocolMismatchError) as info:
        run(DaemonClient.connect(daemon_env.root, start=False, protocol=wire.PROTOCOL_VERSION + 1))
    assert "protocol mismatch" in info.value.message
    assert info.value.hint == "restart the daemon: maestro daemon stop && maestro daemon start"
    with SyncDaemonClient(daemon_env.root, start=False) as client:
        assert client.call(wire.PING).echo == ""


def test_errors_keep_the_connection(daemon_env: DaemonEnv) -> None:
    started(daemon_env)
    raw = RawClient(daemon_env.paths.socket)
    assert raw.hello()["type"] == "hello_reply"
    raw.send_frame({"type": "request", "id": 1, "method": "nope", "params": {}})
    reply = raw.recv()
    assert reply["id"] == 1
    assert reply["error"]["code"] == UnknownMethodError.code
    raw.send_frame({"type": "request", "id": 2, "method": "debug.sleep", "params": {"seconds": -1}})
    assert raw.recv()["error"]["code"] == InvalidParamsError.code
    raw.send_frame({"type": "request", "id": 3, "method": "ping", "params": {}})
    assert raw.recv()["result"]["echo"] == ""
    raw.close()


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(struct.pack(">I", 3) + b"\xc1\xc1\xc1", id="invalid-msgpack"),
        pytest.param(encode_frame({"type": "bogus"}), id="unknown-envelope"),
        pytest.param(struct.pack(">I", 2) + b"\x92\x01", id="array-not-map"),
        pytest.param(struct.pack(">I", 5) + b"\xdf\xff\xff\xff\xff", id="map-bomb"),
        pytest.param(struct.pack(">I", 0xFFFFFFFF) + b"x" * 10, id="oversized-length"),
        pytest.param(struct.pack(">I", 64 * 1024 * 1024), id="64MiB-length"),
    ],
)
def test_malformed_frame_closes_only_that_connection(daemon_env: DaemonEnv, payload: bytes) -> None:
    started(daemon_env)
    with SyncDaemonClient(daemon_env.root, start=False) as good:
        bad = RawClient(daemon_env.paths.socket)
        assert bad.hello()["type"] == "hello_reply"
        bad.send(payload)
        reply = bad.recv()
        assert reply["type"] == "response"
        assert reply["id"] == 0
        assert reply["error"]["code"] == "protocol_error"
        if struct.unpack(">I", payload[:4])[0] > 16 * 1024 * 1024:
            assert "exceeds the limit" in reply["error"]["message"]
        assert bad.at_eof()
        bad.close()
        assert good.call(wire.PING, {"echo": "ok"}).echo == "ok"
        assert good.call(wire.STATUS).connections == 1


def test_first_frame_must_be_hello(daemon_env: DaemonEnv) -> None:
    started(daemon_env)
    raw = RawClient(daemon_env.paths.socket)
    raw.send_frame({"type": "request", "id": 1, "method": "status", "params": {}})
    reply = raw.recv()
    assert reply["error"]["code"] == "protocol_error"
    assert "hello" in reply["error"]["message"]
    assert raw.at_eof()
    raw.close()


def test_oversized_frame_before_handshake(daemon_env: DaemonEnv) -> None:
    started(daemon_env)
    raw = RawClient(daemon_env.paths.socket)
    raw.send(struct.pack(">I", 2**31))
    reply = raw.recv()
    assert "exceeds the limit" in reply["error"]["message"]
    assert raw.at_eof()
    raw.close()


def test_ext_types_are_rejected(daemon_env: DaemonEnv) -> None:
    started(daemon_env)
    raw = RawClient(daemon_env.paths.socket)
    raw.hello()
    body = msgpack.packb(
        {"type": "request", "id": 1, "method": "ping", "params": {"x": msgpack.ExtType(1, b"ab")}}
    )
    raw.send(struct.pack(">I", len(body)) + body)
    assert raw.recv()["error"]["code"] == "protocol_error"
    assert raw.at_eof()
    raw.close()


def test_idle_shutdown(daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAESTRO_DAEMON_IDLE", "1")
    pid = started(daemon_env)
    with SyncDaemonClient(daemon_env.root, start=False) as client:
        assert client.call(wire.STATUS).idle_timeout_s == 1.0
        time.sleep(1.5)  # a connected client keeps it alive
        assert client.call(wire.PING).echo == ""
    assert daemon_env.wait_stopped(10)
    assert not daemon_env.paths.socket.exists()
    assert "idle for 1s" in daemon_env.paths.log.read_text()
    deadline = time.monotonic() + 5  # the lock goes a moment before the process exits
    while pid in daemon_processes(daemon_env.root):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_sigterm_is_graceful(daemon_env: DaemonEnv) -> None:
    pid = started(daemon_env)

    async def scenario() -> None:
        async with await DaemonClient.connect(daemon_env.root, start=False) as client:
            call = asyncio.create_task(client.call(wire.DEBUG_SLEEP, {"seconds": 30}))
            await asyncio.sleep(0.3)
            os.kill(pid, signal.SIGTERM)
            with pytest.raises(ConnectionLostError) as info:  # retryable, not "cancelled"
                await call
            assert info.value.code in {"daemon_stopping", "connection_lost"}

    run(scenario())
    assert daemon_env.wait_stopped(10)
    assert not daemon_env.paths.socket.exists()
    assert not daemon_env.paths.info.exists()
    assert "SIGTERM" in daemon_env.paths.log.read_text()


def test_long_state_dir_falls_back_to_a_short_socket_dir(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_state = daemon_env.base / ("s" * 60) / ("t" * 60)
    runtime = daemon_env.base / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("MAESTRO_STATE_DIR", str(long_state))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    pid = started(daemon_env)
    paths = daemon_env.paths
    assert paths.socket.is_relative_to(runtime)
    assert len(os.fsencode(paths.socket)) <= 107
    assert stat.S_IMODE(paths.socket.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(paths.socket.stat().st_mode) == 0o600
    assert json.loads(paths.info.read_text())["socket"] == str(paths.socket)
    with SyncDaemonClient(daemon_env.root, start=False) as client:
        assert client.call(wire.STATUS).socket_path == str(paths.socket)
    assert stop_daemon(daemon_env.root) == pid
    assert not paths.socket.exists()
