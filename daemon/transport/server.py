"""Asyncio Unix-socket RPC server: handshake, per-connection dispatch, events, cancellation.

Isolation is the point of most of this code: one client sending garbage, reading slowly or
vanishing mid-stream must never stall or crash the others. Each connection has its own bounded
send queue and writer task; a peer that cannot keep up is dropped rather than buffered without
limit, and a malformed frame closes that connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from maestro import __version__
from maestro.daemon.transport.framing import (
    MAX_FRAME,
    MAX_REPLY_FRAME,
    FrameDecoder,
    encode_frame,
)
from maestro.errors import (
    DaemonBusyError,
    DaemonStoppingError,
    InternalError,
    InvalidParamsError,
    MaestroError,
    ProtocolError,
    ProtocolMismatchError,
    RequestCancelledError,
    UnknownMethodError,
    broken_dependency,
)
from maestro.wire import (
    CONNECTION_ERROR_ID,
    METHODS,
    PROTOCOL_VERSION,
    RESTART_HINT,
    Cancel,
    Dumped,
    ErrorInfo,
    Event,
    Frame,
    Hello,
    HelloReply,
    MethodSpec,
    P,
    R,
    Request,
    Response,
    WireModel,
    dump_frame,
    error_info,
    parse_frame,
)

log = logging.getLogger(__name__)


def installation_stamp() -> tuple[int, int, int] | None:
    """The package file of the Maestro this process imported, as on disk now (inode, mtime,
    size; links followed): None once it is gone."""
    import maestro

    try:
        found = os.stat(maestro.__file__ or "")
    except OSError:
        return None
    return found.st_ino, found.st_mtime_ns, found.st_size


Handler = Callable[[Any, "RequestContext"], Awaitable["BaseModel | Dumped[Any]"]]


@dataclass
class ServerConfig:
    max_frame: int = MAX_FRAME
    """Largest frame a client may send."""
    max_reply_frame: int = MAX_REPLY_FRAME
    """Largest frame the daemon sends (answers and events)."""
    send_queue_frames: int = 1024
    """Frames waiting for one client; overflowing it drops that client."""
    send_timeout_s: float = 30.0
    """How long a write (or a request-tied emit) may wait for a slow client before dropping it."""
    handshake_timeout_s: float = 10.0
    max_in_flight: int = 256
    """Concurrent requests per connection; more get a 'busy' error."""
    check_peer_uid: bool = True


@dataclass(frozen=True)
class PeerCredentials:
    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket | None) -> PeerCredentials | None:
    """SO_PEERCRED of a connected Unix socket (Linux); None where the platform lacks it."""
    opt = getattr(socket, "SO_PEERCRED", None)
    if sock is None or opt is None:
        return None
    fmt = "3i"
    try:
        data = sock.getsockopt(socket.SOL_SOCKET, opt, struct.calcsize(fmt))
    except OSError:
        return None
    pid, uid, gid = struct.unpack(fmt, data)
    return PeerCredentials(pid=pid, uid=uid, gid=gid)


class Dispatcher:
    """Method name -> async handler(params model, context) -> result model."""

    def __init__(self) -> None:
        self._handlers: dict[str, tuple[MethodSpec[Any, Any], Handler]] = {}

    def register(
        self,
        method: MethodSpec[P, R] | str,
        handler: Callable[[P, RequestContext], Awaitable[R | Dumped[R]]],
    ) -> None:
        spec = METHODS.get(method) if isinstance(method, str) else method
        if spec is None:
            raise ValueError(f"method {method!r} is not declared in maestro.wire (register_method)")
        if spec.name in self._handlers:
            raise ValueError(f"method {spec.name!r} already has a handler")
        self._handlers[spec.name] = (spec, handler)

    def lookup(self, name: str) -> tuple[MethodSpec[Any, Any], Handler] | None:
        return self._handlers.get(name)

    def methods(self) -> list[str]:
        return sorted(self._handlers)


class RequestContext:
    """What a handler may do besides returning: stream events to its client, see cancellation."""

    def __init__(self, connection: Connection, request_id: int, method: str) -> None:
        self.connection = connection
        self.request_id = request_id
        self.method = method
        self._cancel = asyncio.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        """Raise CancelledError at a safe point of a handler that runs CPU-bound steps."""
        if self._cancel.is_set():
            raise asyncio.CancelledError

    async def wait_cancelled(self) -> None:
        await self._cancel.wait()

    def _mark_cancelled(self) -> None:
        self._cancel.set()

    async def emit(self, event: str, payload: BaseModel | Mapping[str, Any] | None = None) -> bool:
        """Send an event tied to this request; waits (bounded) for a slow client.

        Returns False if the connection is gone (the handler may stop early).
        """
        frame = Event(event=event, payload=_payload(payload), id=self.request_id)
        return await self.connection.send(frame)


def _payload(payload: BaseModel | Mapping[str, Any] | None) -> dict[str, Any]:
    if payload is None:
        return {}
    if isinstance(payload, BaseModel):
        return payload.model_dump(mode="json")
    return dict(payload)


_connection_ids = itertools.count(1)


@dataclass(eq=False)
class Connection:
    """One client: its writer task, send queue, in-flight requests and subscriptions."""

    writer: asyncio.StreamWriter
    config: ServerConfig
    peer: PeerCredentials | None
    id: int = field(default_factory=lambda: next(_connection_ids))
    client: str = ""
    ready: bool = False
    subscriptions: set[str] = field(default_factory=set)
    tasks: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    contexts: dict[int, RequestContext] = field(default_factory=dict)
    closed: bool = False

    def __post_init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(self.config.send_queue_frames)
        self.writer_task = asyncio.create_task(self._write_loop(), name=f"conn{self.id}-writer")

    def __str__(self) -> str:
        who = f" pid={self.peer.pid}" if self.peer else ""
        return f"conn#{self.id}{who}{' ' + self.client if self.client else ''}"

    def wants(self, event: str) -> bool:
        return self.ready and ("*" in self.subscriptions or event in self.subscriptions)

    def _encode(self, frame: WireModel) -> bytes | None:
        try:
            return encode_frame(dump_frame(frame), max_frame=self.config.max_reply_frame)
        except ProtocolError as exc:
            log.error("%s: cannot send %s frame: %s", self, type(frame).__name__, exc)
            return None

    def send_nowait(self, frame: WireModel | bytes) -> bool:
        """Queue a frame without waiting; a full queue means a stuck client, which is dropped."""
        if self.closed:
            return False
        data = frame if isinstance(frame, bytes) else self._encode(frame)
        if data is None:
            return False
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            self.abort("send queue overflow (client not reading)")
            return False
        return True

    async def send(self, frame: WireModel) -> bool:
        """Queue a frame, waiting up to send_timeout_s for room (backpressure for streams)."""
        if self.closed:
            return False
        data = self._encode(frame)
        if data is None:
            return False
        try:
            async with asyncio.timeout(self.config.send_timeout_s):
                await self.queue.put(data)
        except TimeoutError:
            self.abort("send queue full for too long (client not reading)")
            return False
        return not self.closed

    async def _write_loop(self) -> None:
        try:
            while True:
                data = await self.queue.get()
                if data is None:
                    break
                self.writer.write(data)
                async with asyncio.timeout(self.config.send_timeout_s):
                    await self.writer.drain()
        except TimeoutError:
            self.abort("write timed out (client not reading)")
        except (ConnectionError, OSError) as exc:
            log.debug("%s: write failed: %s", self, exc)
            self.abort("write failed")
        finally:
            with contextlib.suppress(Exception):
                self.writer.close()

    async def close(self, *, flush_timeout: float = 1.0) -> None:
        """Flush queued frames (bounded), then close the socket."""
        if not self.closed:
            self.closed = True
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self.writer_task), flush_timeout)
        self.abort(None)

    def abort(self, reason: str | None) -> None:
        """Drop the client now: cancel its requests, discard its queue, reset the socket."""
        if reason and not self.writer_task.done():
            log.warning("%s: dropping client: %s", self, reason)
        self.closed = True
        for ctx in self.contexts.values():
            ctx._mark_cancelled()
        for task in self.tasks.values():
            task.cancel()
        if not self.writer_task.done():
            self.writer_task.cancel()
        transport = self.writer.transport
        if not transport.is_closing():
            transport.abort()


class RpcServer:
    """Serves a Dispatcher on one Unix socket until ``close``."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        socket_path: Path,
        *,
        root: Path,
        config: ServerConfig | None = None,
        log_path: Path | None = None,
        on_outdated: Callable[[str], None] | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        # the Maestro on disk this process runs: a client met after it was removed or
        # replaced (the venv recreated, Maestro reinstalled) is turned away, and we stop
        self._installed = installation_stamp()
        self.on_outdated = on_outdated
        self.socket_path = socket_path
        self.root = root
        self.config = config or ServerConfig()
        self.log_path = log_path
        self.connections: set[Connection] = set()
        self.last_activity = time.monotonic()
        self._server: asyncio.Server | None = None
        self.stopping = False
        self._socket_ino: int | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    def outdated(self) -> str | None:
        """Why this daemon cannot serve: its Maestro installation was removed or replaced
        since it started (it would hand pytest a plugin that is gone or not its own); None
        while it is the one on disk."""
        now = installation_stamp()
        if now == self._installed:
            return None
        how = "removed" if now is None else "replaced"
        return (
            f"the Maestro installation this daemon (pid {os.getpid()}) runs from was {how}"
            " since it started"
        )

    @property
    def in_flight(self) -> int:
        return sum(len(conn.tasks) for conn in self.connections)

    async def start(self) -> None:
        """Bind (0600 via umask, then chmod) and listen; the caller removed any stale socket."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Bound synchronously so the umask change cannot leak into anything running meanwhile.
            old = os.umask(0o177)
            try:
                sock.bind(os.fspath(self.socket_path))
            finally:
                os.umask(old)
            self.socket_path.chmod(0o600)
            sock.setblocking(False)
            self._server = await asyncio.start_unix_server(self._on_client, sock=sock, limit=2**16)
        except BaseException:
            sock.close()
            raise
        self._socket_ino = self.socket_path.stat().st_ino
        log.info("listening on %s", self.socket_path)

    async def close(self, *, grace_s: float = 2.0) -> None:
        """Stop accepting, cancel in-flight requests, flush and close connections, unlink socket."""
        self.stopping = True  # in-flight requests answer "daemon_stopping": clients retry
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            for ctx in conn.contexts.values():
                ctx._mark_cancelled()
            for task in conn.tasks.values():
                task.cancel()
        tasks = [t for conn in self.connections for t in conn.tasks.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        await asyncio.gather(
            *(conn.close(flush_timeout=grace_s) for conn in list(self.connections)),
            return_exceptions=True,
        )
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=grace_s)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), grace_s)
        self._unlink_socket()

    def _unlink_socket(self) -> None:
        """Remove the socket only if it is still ours (a successor may have bound a new one)."""
        try:
            if self._socket_ino is not None and self.socket_path.stat().st_ino == self._socket_ino:
                self.socket_path.unlink()
        except FileNotFoundError:
            pass

    def broadcast(self, event: str, payload: BaseModel | Mapping[str, Any] | None = None) -> int:
        """Push an event to every subscribed connection without waiting; returns how many."""
        frame = Event(event=event, payload=_payload(payload))
        targets = [conn for conn in self.connections if conn.wants(event)]
        if not targets:
            return 0
        try:
            data = encode_frame(dump_frame(frame), max_frame=self.config.max_reply_frame)
        except ProtocolError as exc:
            log.error("cannot broadcast %s: %s", event, exc)
            return 0
        return sum(conn.send_nowait(data) for conn in targets)

    # --- per connection --------------------------------------------------------------------------

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        peer = peer_credentials(writer.get_extra_info("socket"))
        if self.config.check_peer_uid and peer is not None and peer.uid != os.getuid():
            log.warning("rejecting connection from uid %d (pid %d)", peer.uid, peer.pid)
            writer.transport.abort()
            return
        conn = Connection(writer=writer, config=self.config, peer=peer)
        self.connections.add(conn)
        self.last_activity = time.monotonic()
        log.info("%s: connected (%d open)", conn, len(self.connections))
        try:
            await self._serve(conn, reader)
        except ProtocolError as exc:
            log.warning("%s: protocol error: %s", conn, exc.message)
            conn.send_nowait(Response(id=CONNECTION_ERROR_ID, error=error_info(exc)))
        except (ConnectionError, OSError) as exc:
            log.info("%s: connection error: %s", conn, exc)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("%s: unexpected error", conn)
        finally:
            await conn.close()
            self.connections.discard(conn)
            self.last_activity = time.monotonic()
            log.info("%s: closed (%d open)", conn, len(self.connections))

    async def _frames(self, conn: Connection, reader: asyncio.StreamReader) -> AsyncIterator[Frame]:
        decoder = FrameDecoder(max_frame=self.config.max_frame)
        while not conn.closed:
            data = await reader.read(2**16)
            if not data:
                decoder.eof()
                return
            for obj in decoder.feed(data):
                yield parse_frame(obj)

    async def _serve(self, conn: Connection, reader: asyncio.StreamReader) -> None:
        frames = self._frames(conn, reader)
        try:
            async with asyncio.timeout(self.config.handshake_timeout_s):
                first = await anext(frames, None)
        except TimeoutError:
            raise ProtocolError("no hello within the handshake timeout") from None
        if first is None:
            return
        if not isinstance(first, Hello):
            raise ProtocolError(f"expected a 'hello' frame first, got '{first.type}'")
        if first.protocol != PROTOCOL_VERSION:
            log.warning(
                "%s: protocol mismatch: client %d (maestro %s), daemon %d",
                conn,
                first.protocol,
                first.maestro_version,
                PROTOCOL_VERSION,
            )
            info = ErrorInfo(
                code=ProtocolMismatchError.code,
                message=(
                    f"protocol mismatch: the client speaks version {first.protocol} (maestro "
                    f"{first.maestro_version}), the daemon speaks {PROTOCOL_VERSION} (maestro "
                    f"{__version__}, pid {os.getpid()})"
                ),
                hint=RESTART_HINT,
                data={"daemon_protocol": PROTOCOL_VERSION, "daemon_version": __version__},
            )
            conn.send_nowait(Response(id=CONNECTION_ERROR_ID, error=info))
            return
        if (outdated := self.outdated()) is not None:
            log.warning("%s: %s", conn, outdated)
            info = ErrorInfo(
                code=ProtocolMismatchError.code,
                message=outdated,
                hint="the daemon stops; the next maestro command starts one from this installation",
            )
            conn.send_nowait(Response(id=CONNECTION_ERROR_ID, error=info))
            if self.on_outdated is not None:
                self.on_outdated(outdated)
            return
        conn.client = first.client
        conn.ready = True
        conn.send_nowait(
            HelloReply(
                protocol=PROTOCOL_VERSION,
                maestro_version=__version__,
                root=str(self.root),
                pid=os.getpid(),
            )
        )
        async for frame in frames:
            if isinstance(frame, Request):
                self._start_request(conn, frame)
            elif isinstance(frame, Cancel):
                self._cancel(conn, frame.id)
            else:
                raise ProtocolError(f"unexpected '{frame.type}' frame from a client")

    def _reply_error(self, conn: Connection, request_id: int, exc: MaestroError) -> None:
        conn.send_nowait(Response(id=request_id, error=error_info(exc)))

    def _start_request(self, conn: Connection, request: Request) -> None:
        self.last_activity = time.monotonic()
        if request.id in conn.tasks:
            self._reply_error(
                conn, request.id, ProtocolError(f"request id {request.id} is already in flight")
            )
            return
        if len(conn.tasks) >= self.config.max_in_flight:
            self._reply_error(
                conn,
                request.id,
                DaemonBusyError(
                    f"more than {self.config.max_in_flight} requests in flight on one connection",
                    hint="wait for responses before sending more requests",
                ),
            )
            return
        found = self.dispatcher.lookup(request.method)
        if found is None:
            self._reply_error(
                conn,
                request.id,
                UnknownMethodError(
                    f"unknown method {request.method!r}",
                    hint="methods served: " + ", ".join(self.dispatcher.methods()),
                ),
            )
            return
        spec, handler = found
        try:
            params = spec.params.model_validate(request.params)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<params>'}: {e['msg']}"
                for e in exc.errors()[:5]
            )
            self._reply_error(
                conn, request.id, InvalidParamsError(f"invalid params for {spec.name}: {problems}")
            )
            return
        ctx = RequestContext(conn, request.id, spec.name)
        conn.contexts[request.id] = ctx
        conn.tasks[request.id] = asyncio.create_task(
            self._run(conn, ctx, spec, handler, params), name=f"conn{conn.id}-req{request.id}"
        )

    def _cancel(self, conn: Connection, request_id: int) -> None:
        task = conn.tasks.get(request_id)
        if task is None:
            log.debug("%s: cancel of unknown or finished request %d", conn, request_id)
            return
        conn.contexts[request_id]._mark_cancelled()
        task.cancel()

    async def _run(
        self,
        conn: Connection,
        ctx: RequestContext,
        spec: MethodSpec[Any, Any],
        handler: Handler,
        params: BaseModel,
    ) -> None:
        rid = ctx.request_id
        started = time.monotonic()
        response: Response
        try:
            result = await handler(params, ctx)
            if isinstance(result, Dumped) and result.model is spec.result:
                dumped = result.data
            elif isinstance(result, spec.result):
                # the dump is JSON-mode already: skip re-validating it (see dump_frame);
                # by_alias: report models name fields like `schema` through aliases
                dumped = (
                    result.wire_dump()
                    if isinstance(result, WireModel)
                    else result.model_dump(mode="json", by_alias=True)
                )
            else:
                raise TypeError(
                    f"handler of {spec.name} returned {type(result).__name__}, "
                    f"not {spec.result.__name__}"
                )
            response = Response.model_construct(id=rid, result=dumped, error=None)
        except asyncio.CancelledError:
            stopped: MaestroError = (
                DaemonStoppingError(
                    f"the daemon stopped during request {rid} ({spec.name})",
                    hint="ask again: a new daemon starts and answers",
                )
                if self.stopping
                else RequestCancelledError(f"request {rid} ({spec.name}) was cancelled")
            )
            response = Response(id=rid, error=error_info(stopped))
        except MaestroError as exc:
            response = Response(id=rid, error=error_info(exc))
        except Exception as exc:
            log.exception("%s: %s (request %d) failed", conn, spec.name, rid)
            broken = broken_dependency(exc)  # the user's environment, not a daemon bug
            response = Response(
                id=rid,
                error=error_info(broken if broken is not None else exc, log_path=self._log_hint()),
            )
        finally:
            conn.tasks.pop(rid, None)
            conn.contexts.pop(rid, None)
            self.last_activity = time.monotonic()
        log.debug("%s: %s #%d in %.3fs", conn, spec.name, rid, time.monotonic() - started)
        if not conn.send_nowait(response) and not conn.closed:
            # The result did not fit in a frame: the client must still get an answer.
            conn.send_nowait(
                Response(
                    id=rid,
                    error=error_info(
                        InternalError(f"the result of {spec.name} is too large to send")
                    ),
                )
            )

    def _log_hint(self) -> str | None:
        return str(self.log_path) if self.log_path else None
