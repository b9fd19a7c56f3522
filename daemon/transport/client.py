"""Client of the workspace daemon: asyncio ``DaemonClient`` and a blocking ``SyncDaemonClient``.

Every wait is bounded or tied to the connection: if the daemon dies mid-call the reader sees EOF
and every pending call fails with ConnectionLostError instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar, overload

from pydantic import BaseModel, ValidationError

from maestro.daemon.lifecycle import DaemonPaths, recorded_socket, start_daemon
from maestro.daemon.transport.framing import (
    MAX_FRAME,
    MAX_REPLY_FRAME,
    FrameDecoder,
    encode_frame,
)
from maestro.errors import (
    ConnectionLostError,
    DaemonNotRunningError,
    InvalidParamsError,
    MaestroError,
    ProtocolError,
    ProtocolMismatchError,
    RequestTimeoutError,
    UnknownMethodError,
)
from maestro.tasks import cancel_and_wait
from maestro.wire import (
    CONNECTION_ERROR_ID,
    METHODS,
    PROTOCOL_VERSION,
    PROVIDE_ENV,
    RESTART_HINT,
    RUN_ENV_WANTED,
    SUBSCRIBE,
    Cancel,
    Event,
    HelloReply,
    MethodSpec,
    P,
    ProvideEnvParams,
    R,
    Request,
    Response,
    SubscribeParams,
    WireModel,
    dump_frame,
    error_from_info,
    hello,
    parse_frame,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 10.0


class _Default:
    """Sentinel: use the client's default timeout (None means wait as long as the connection)."""


DEFAULT = _Default()
Timeout = float | None | _Default

_Item = Event | Response | MaestroError


def _resolve(method: MethodSpec[Any, Any] | str) -> MethodSpec[Any, Any]:
    if isinstance(method, MethodSpec):
        return method
    spec = METHODS.get(method)
    if spec is None:
        raise UnknownMethodError(f"unknown method {method!r}", hint="declare it in maestro.wire")
    return spec


def _params(spec: MethodSpec[Any, Any], params: BaseModel | Mapping[str, Any] | None) -> Any:
    if params is None:
        params = {}
    if isinstance(params, spec.params):
        return params.model_dump(mode="json")
    raw = params.model_dump(mode="json") if isinstance(params, BaseModel) else dict(params)
    try:
        return spec.params.model_validate(raw).model_dump(mode="json")
    except ValidationError as exc:
        raise InvalidParamsError(f"invalid params for {spec.name}: {exc.errors()[:3]}") from None


def _result(spec: MethodSpec[Any, R], response: Response) -> R:
    if response.error is not None:
        raise error_from_info(response.error)
    try:
        return spec.result.model_validate(response.result)
    except ValidationError as exc:
        raise ProtocolError(
            f"the daemon's result for {spec.name} does not match the contract: {exc.errors()[:1]}",
            hint=RESTART_HINT,
        ) from None


class DaemonClient:
    """One connection to a workspace daemon; safe for many concurrent calls."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        info: HelloReply,
        *,
        default_timeout: float | None = DEFAULT_TIMEOUT_S,
        max_frame: int = MAX_FRAME,
        max_reply_frame: int = MAX_REPLY_FRAME,
        decoder: FrameDecoder | None = None,
    ) -> None:
        self.info = info
        self.default_timeout = default_timeout
        self._reader = reader
        self._writer = writer
        self._max_frame = max_frame
        self._decoder = decoder or FrameDecoder(max_frame=max_reply_frame)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Queue[_Item]] = {}
        self._events: asyncio.Queue[Event | MaestroError] = asyncio.Queue(10_000)
        self._send_lock = asyncio.Lock()
        self._closed: MaestroError | None = None
        self._reader_task = asyncio.create_task(self._read_loop(), name="daemon-client-reader")

    # --- connecting ------------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        root: Path,
        *,
        start: bool = True,
        client: str = "",
        timeout: float = CONNECT_TIMEOUT_S,
        default_timeout: float | None = DEFAULT_TIMEOUT_S,
        protocol: int = PROTOCOL_VERSION,
    ) -> DaemonClient:
        """Connect to the daemon of ``root``, starting it first if needed (unless start=False)."""
        paths = DaemonPaths.for_root(root)

        async def connect() -> DaemonClient:
            return await cls.connect_socket(
                recorded_socket(paths),  # read again: a started daemon records its socket
                client=client,
                timeout=timeout,
                default_timeout=default_timeout,
                protocol=protocol,
            )

        try:
            return await connect()
        except DaemonNotRunningError:
            if not start:
                raise
        await asyncio.to_thread(start_daemon, paths.root)
        return await connect()

    @classmethod
    async def connect_socket(
        cls,
        path: Path,
        *,
        client: str = "",
        timeout: float = CONNECT_TIMEOUT_S,
        default_timeout: float | None = DEFAULT_TIMEOUT_S,
        protocol: int = PROTOCOL_VERSION,
        max_frame: int = MAX_FRAME,
        max_reply_frame: int = MAX_REPLY_FRAME,
    ) -> DaemonClient:
        """Connect and handshake on an explicit socket path."""
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(str(path))
        except (FileNotFoundError, ConnectionRefusedError, TimeoutError) as exc:
            raise DaemonNotRunningError(
                f"no daemon is listening on {path} ({type(exc).__name__})",
                hint="start it: maestro daemon start",
            ) from None
        except OSError as exc:
            raise DaemonNotRunningError(f"cannot connect to {path}: {exc}") from None
        decoder = FrameDecoder(max_frame=max_reply_frame)
        try:
            writer.write(
                encode_frame(dump_frame(hello(client, protocol=protocol)), max_frame=max_frame)
            )
            async with asyncio.timeout(timeout):
                await writer.drain()
                frame = await _read_one(reader, decoder)
        except TimeoutError:
            writer.close()
            raise RequestTimeoutError(
                f"the daemon on {path} did not answer the handshake within {timeout:g}s",
                hint=RESTART_HINT,
            ) from None
        except MaestroError:
            writer.close()
            raise
        except OSError as exc:
            writer.close()
            raise ConnectionLostError(
                f"the daemon on {path} closed the connection during the handshake: {exc}",
                hint="the daemon only accepts connections from its own user; see its log",
            ) from None
        if isinstance(frame, Response) and frame.error is not None:
            writer.close()
            raise error_from_info(frame.error)
        if not isinstance(frame, HelloReply):
            writer.close()
            raise ProtocolError(f"expected 'hello_reply', got '{frame.type}'", hint=RESTART_HINT)
        if frame.protocol != protocol:
            writer.close()
            raise ProtocolMismatchError(
                f"the daemon (pid {frame.pid}) speaks protocol {frame.protocol}, "
                f"this client speaks {protocol}",
                hint=RESTART_HINT,
            )
        return cls(
            reader,
            writer,
            frame,
            default_timeout=default_timeout,
            max_frame=max_frame,
            max_reply_frame=max_reply_frame,
            decoder=decoder,
        )

    # --- calls -----------------------------------------------------------------------------------

    @overload
    async def call(
        self,
        method: MethodSpec[P, R],
        params: P | Mapping[str, Any] | None = None,
        *,
        timeout: Timeout = DEFAULT,
    ) -> R: ...

    @overload
    async def call(
        self,
        method: str,
        params: BaseModel | Mapping[str, Any] | None = None,
        *,
        timeout: Timeout = DEFAULT,
    ) -> BaseModel: ...

    async def call(
        self,
        method: MethodSpec[Any, Any] | str,
        params: BaseModel | Mapping[str, Any] | None = None,
        *,
        timeout: Timeout = DEFAULT,
    ) -> Any:
        """Send a request and wait for its result (events of a streaming method are dropped)."""
        stream: Stream[Any] = self.stream(method, params, timeout=timeout)
        async with stream:
            async for _ in stream:
                pass
        return stream.result

    def stream(
        self,
        method: MethodSpec[P, R] | str,
        params: P | Mapping[str, Any] | None = None,
        *,
        timeout: Timeout = DEFAULT,
        environ: Mapping[str, str] | None = None,
    ) -> Stream[R]:
        """A request whose events are iterated with ``async for``; then ``.result`` is set.

        Leaving ``async with`` (or breaking out of the loop inside it) cancels the request.
        ``timeout`` bounds the whole request. ``environ``: where the values a run's
        ``run.env_wanted`` names are taken from (its params say ``answers_env``).
        """
        spec = _resolve(method)
        wire_params = _params(spec, params)
        budget = self.default_timeout if isinstance(timeout, _Default) else timeout
        return Stream(self, spec, wire_params, budget, environ)

    async def cancel(self, request_id: int) -> None:
        """Ask the daemon to cancel a request; its call then raises RequestCancelledError."""
        if self._closed is None:
            with contextlib.suppress(MaestroError):
                await self._send(Cancel(id=request_id))

    async def subscribe(self, events: list[str] | None = None) -> list[str]:
        """Receive broadcast events (all by default); read them with ``events()``."""
        result = await self.call(SUBSCRIBE, SubscribeParams(events=events or ["*"]))
        return result.events

    async def next_event(self, *, timeout: float | None = None) -> Event:
        """The next broadcast event; ConnectionLostError once the connection is gone."""
        async with asyncio.timeout(timeout):
            item = await self._events.get()
        if isinstance(item, MaestroError):
            self._events.put_nowait(item)  # keep reporting it
            raise item
        return item

    @property
    def closed(self) -> bool:
        return self._closed is not None

    async def close(self) -> None:
        self._fail(ConnectionLostError("the client closed the connection"))
        self._writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)
        await cancel_and_wait(self._reader_task)

    async def __aenter__(self) -> DaemonClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- internals -------------------------------------------------------------------------------

    def _open(self) -> tuple[int, asyncio.Queue[_Item]]:
        if self._closed is not None:
            raise ConnectionLostError(self._closed.message, hint=self._closed.hint)
        rid = next(self._ids)
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._pending[rid] = queue
        return rid, queue

    def _forget(self, rid: int) -> None:
        self._pending.pop(rid, None)

    async def _send(self, frame: WireModel) -> None:
        data = encode_frame(dump_frame(frame), max_frame=self._max_frame)
        if self._closed is not None:
            raise ConnectionLostError(self._closed.message, hint=self._closed.hint)
        async with self._send_lock:
            try:
                self._writer.write(data)
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    await self._writer.drain()
            except (OSError, TimeoutError) as exc:
                lost = ConnectionLostError(f"cannot write to the daemon: {exc}", hint=RESTART_HINT)
                self._fail(lost)
                raise lost from None

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._reader.read(2**16)
                if not data:
                    self._decoder.eof()
                    self._fail(ConnectionLostError("the daemon closed the connection"))
                    return
                for obj in self._decoder.feed(data):
                    self._deliver(parse_frame(obj))
        except ProtocolError as exc:
            self._fail(
                ConnectionLostError(
                    f"the daemon sent an invalid frame: {exc.message}", hint=RESTART_HINT
                )
            )
        except OSError as exc:
            self._fail(ConnectionLostError(f"connection to the daemon lost: {exc}"))
        finally:
            self._writer.close()

    def _deliver(self, frame: Any) -> None:
        if isinstance(frame, Response):
            if frame.id == CONNECTION_ERROR_ID and frame.error is not None:
                exc = error_from_info(frame.error)
                self._fail(exc)
                return
            queue = self._pending.get(frame.id)
            if queue is not None:
                queue.put_nowait(frame)
        elif isinstance(frame, Event):
            if frame.id is None:
                try:
                    self._events.put_nowait(frame)
                except asyncio.QueueFull:
                    log.warning("dropping broadcast event %s: nobody reads events()", frame.event)
            else:
                queue = self._pending.get(frame.id)
                if queue is not None:
                    queue.put_nowait(frame)
        else:
            log.warning("ignoring unexpected '%s' frame from the daemon", frame.type)

    def _fail(self, exc: MaestroError) -> None:
        if self._closed is not None:
            return
        self._closed = exc
        for queue in self._pending.values():
            queue.put_nowait(exc)
        with contextlib.suppress(asyncio.QueueFull):
            self._events.put_nowait(exc)


async def _read_one(reader: asyncio.StreamReader, decoder: FrameDecoder) -> Any:
    while True:
        data = await reader.read(2**16)
        if not data:
            raise ConnectionLostError(
                "the daemon closed the connection during the handshake", hint=RESTART_HINT
            )
        frames = decoder.feed(data)
        if frames:
            if len(frames) > 1:
                raise ProtocolError("the daemon sent frames before the hello reply")
            return parse_frame(frames[0])


class Stream(Generic[R]):
    """One in-flight request: ``async for event in stream`` then ``stream.result``."""

    def __init__(
        self,
        client: DaemonClient,
        spec: MethodSpec[Any, R],
        params: dict[str, Any],
        timeout: float | None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._client = client
        self._spec = spec
        self._params = params
        self._timeout = timeout
        self._environ = environ
        self._deadline: float | None = None
        self.request_id = 0
        self._queue: asyncio.Queue[_Item] | None = None
        self._done = False
        self._result: R | None = None

    @property
    def result(self) -> R:
        if self._result is None:
            raise RuntimeError("the stream has not finished (iterate it to the end first)")
        return self._result

    @property
    def done(self) -> bool:
        return self._done

    async def start(self) -> None:
        if self._queue is not None:
            return
        rid, queue = self._client._open()
        self.request_id, self._queue = rid, queue
        loop = asyncio.get_running_loop()
        self._deadline = None if self._timeout is None else loop.time() + self._timeout
        try:
            await self._client._send(Request(id=rid, method=self._spec.name, params=self._params))
        except BaseException:
            self._finish()
            raise

    def _finish(self) -> None:
        self._done = True
        self._client._forget(self.request_id)

    async def cancel(self) -> None:
        if self._queue is not None and not self._done:
            await self._client.cancel(self.request_id)

    def __aiter__(self) -> Stream[R]:
        return self

    async def __anext__(self) -> Event:
        if self._done:
            raise StopAsyncIteration
        await self.start()
        assert self._queue is not None
        try:
            async with asyncio.timeout_at(self._deadline):
                item = await self._queue.get()
        except TimeoutError:
            await self.cancel()
            self._finish()
            raise RequestTimeoutError(
                f"{self._spec.name} did not finish within {self._timeout:g}s",
                hint="the daemon may be overloaded; see `maestro daemon status` and its log",
            ) from None
        except asyncio.CancelledError:
            await asyncio.shield(self.cancel())
            self._finish()
            raise
        if isinstance(item, Event):
            if item.event == RUN_ENV_WANTED and self._environ is not None:
                await self._give_env(item.payload.get("names"))
            return item
        self._finish()
        if isinstance(item, MaestroError):
            raise item
        self._result = _result(self._spec, item)
        raise StopAsyncIteration

    async def _give_env(self, names: object) -> None:
        """Answer ``run.env_wanted``: the values of the names asked that ``environ`` has."""
        assert self._environ is not None
        wanted = [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
        given = {n: self._environ[n] for n in wanted if n in self._environ}
        await self._client.call(PROVIDE_ENV, ProvideEnvParams(run=self.request_id, env=given))

    async def __aenter__(self) -> Stream[R]:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            with contextlib.suppress(MaestroError):
                await self.cancel()
            self._finish()


class SyncDaemonClient:
    """Blocking wrapper for the CLI: one private event loop, one connection."""

    def __init__(
        self,
        root: Path,
        *,
        start: bool = True,
        client: str = "cli",
        timeout: float | None = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._runner = asyncio.Runner()
        try:
            self._client = self._runner.run(
                DaemonClient.connect(
                    root,
                    start=start,
                    client=client,
                    timeout=min(timeout or CONNECT_TIMEOUT_S, CONNECT_TIMEOUT_S),
                    default_timeout=timeout,
                )
            )
        except BaseException:
            self._runner.close()
            raise

    @property
    def info(self) -> HelloReply:
        return self._client.info

    def _run(self, awaitable: Awaitable[T]) -> T:
        """``Runner.run``, with the result kept out of the task: on leaving, the runner compares
        SIGINT handlers through ``signal.getsignal``, which (CPython 3.11) formats the repr of
        its handler, a partial holding the finished task, hence of the task's result: 30 ms
        for a 600-row impacted report."""
        box: list[T] = []

        async def hold() -> None:
            box.append(await awaitable)

        self._runner.run(hold())
        return box[0]

    def call(
        self,
        method: MethodSpec[P, R],
        params: P | Mapping[str, Any] | None = None,
        *,
        timeout: Timeout = DEFAULT,
    ) -> R:
        return self._run(self._client.call(method, params, timeout=timeout))

    def stream(
        self,
        method: MethodSpec[P, R],
        params: P | Mapping[str, Any] | None,
        on_event: Callable[[Event], None],
        *,
        timeout: Timeout = DEFAULT,
        environ: Mapping[str, str] | None = None,
    ) -> R:
        """Run a streaming request, calling ``on_event`` for each event; returns the result."""

        async def run() -> R:
            stream = self._client.stream(method, params, timeout=timeout, environ=environ)
            async with stream:
                async for event in stream:
                    on_event(event)
            return stream.result

        return self._run(run())

    def close(self) -> None:
        try:
            self._runner.run(self._client.close())
        finally:
            self._runner.close()

    def __enter__(self) -> SyncDaemonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
