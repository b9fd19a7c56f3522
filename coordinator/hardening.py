"""Connection hardening: per-client connection cap, upload deadlines, client aborts.

- **Request head deadline / idle connections**: aiohttp's keep-alive timer starts when a
  connection opens and after each response and is not reset by incoming bytes, so with
  `keepalive_timeout = header_timeout_s` a connection that has not delivered a complete request
  head by then (slowloris: one header byte every few seconds) is closed, as is an idle one.
- **Uploads**: `receive_body` reads a PUT body in chunks with a deadline per chunk
  (`body_read_timeout_s`) and, after `upload_grace_s`, a minimum average rate
  (`min_upload_bytes_per_s`); a trickling upload is answered 408 and its connection closed, so it
  holds neither a seat nor a socket for long.
- **Bulk upload pacing**: upload bodies of the priority levels below `interactive` are read
  through one token bucket per replica. The bytes not yet read wait in the kernel and the
  client (TCP flow control), so a CI farm's admitted uploads cannot keep the event loop busy
  receiving, copying and forwarding them while an interactive request waits for its turn of
  the loop. By default (`LoopSharePacer`, `bulk_loop_share`) the bucket's rate follows the
  loop's busy share while interactive requests come in; `bulk_upload_bytes_per_s` fixes it
  instead. Time spent paced does not count against `min_upload_bytes_per_s`.
- **Connections per client**: `GuardedSite` wraps aiohttp's protocol factory and closes a new
  connection at once when its peer address already holds `max_connections_per_client`.
- **Client aborts**: a body that stops because the peer went away raises `ClientAbortedError`;
  the app counts it as a client abort (status 499 in metrics and the access log), never as a 5xx
  or an unhandled error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web
from aiohttp.web_runner import BaseSite, TCPSite

from maestro.errors import CoordinatorError
from maestro.tasks import cancel_and_wait

if TYPE_CHECKING:
    from prometheus_client import Counter as PromCounter

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
CLIENT_CLOSED = 499
"""The status recorded for a request whose client went away (nginx's convention)."""


@dataclass(slots=True)
class WarnEvery:
    """A warning written at most once every ``every_s`` seconds of ``clock``; the ones between
    are dropped (a store that fails, or a client over its cap, would write one per request)."""

    logger: logging.Logger
    every_s: float = 10.0
    clock: Callable[[], float] = time.monotonic
    _last: float = field(default=0.0, init=False)

    def warning(self, msg: str, *args: object) -> None:
        now = self.clock()
        if now - self._last > self.every_s:
            self._last = now
            self.logger.warning(msg, *args)


class SlowUploadError(CoordinatorError):
    """The body arrived slower than the configured minimum (HTTP 408, connection closed)."""

    code = "upload_too_slow"


class ClientAbortedError(CoordinatorError):
    """The client closed the connection before sending the whole body."""

    code = "client_aborted"


def is_client_abort(exc: BaseException) -> bool:
    """The peer went away mid-request (aiohttp's reset errors subclass ConnectionResetError)."""
    return isinstance(exc, ClientAbortedError | ConnectionResetError | BrokenPipeError)


class BytePacer:
    """A token bucket over body bytes, shared by the uploads it paces: each read takes its
    chunk's bytes and, when the bucket is in debt, waits its share of the debt (so the readers
    together stay at `bytes_per_s`, after a burst of `burst` bytes). With `idle` (a predicate:
    no request the pacing protects is being served), nothing is paced while it holds and the
    bucket stays full, so bulk uploads run at full speed when no one is waiting behind them."""

    def __init__(
        self,
        bytes_per_s: int,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        idle: Callable[[], bool] | None = None,
    ) -> None:
        self.rate = float(bytes_per_s)
        self.burst = float(burst if burst is not None else max(CHUNK, bytes_per_s // 10))
        self._tokens = self.burst
        self._clock = clock
        self._at = clock()
        self._idle = idle
        self._lock = threading.Lock()
        self.paced_s = 0.0
        """Total time readers waited (a metric for benchmarks and tests)."""

    def reserve(self, n: int) -> float:
        """Count `n` bytes read; how long the reader must wait now (0: the bucket is not in
        debt). Thread-safe: receiver threads (bulk_receive.py) share the bucket with the loop."""
        with self._lock:
            now = self._clock()
            if self._idle is not None and self._idle():
                self._tokens = self.burst
                self._at = now
                return 0.0
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate) - n
            self._at = now
            if self._tokens >= 0:
                return 0.0
            wait = -self._tokens / self.rate
            self.paced_s += wait
            return wait

    async def take(self, n: int) -> float:
        """Count `n` bytes read; wait while the bucket is in debt; the time waited."""
        wait = self.reserve(n)
        if wait > 0:
            await asyncio.sleep(wait)
        return wait


class LoopSharePacer(BytePacer):
    """Bulk body pacing whose rate follows the event loop's busy share (no rate to configure).

    Every `TICK_S` the loop thread's CPU time over the wall time since the last tick gives the
    share of the loop that was busy. While requests of the protected level keep coming (not
    `idle()`), a share above `target` cuts the rate in proportion (at most by half per tick),
    and a share at or below it raises the rate by a tenth, between `min_rate` (bulk uploads
    always progress) and `max_rate` (at which nothing is paced; also while idle).
    Why a share and not seats: on one event loop, even a single admitted bulk upload keeps the
    loop busy as long as its bytes arrive; a loop that never sleeps is no longer woken at once
    by the operating system when an interactive request arrives, and that request waits behind
    whatever else wants the host's CPU. Keeping the loop below `target` busy leaves it free for
    requests as they come."""

    TICK_S = 0.02

    def __init__(
        self,
        target: float,
        *,
        min_rate: int = 8 << 20,
        max_rate: int = 1 << 30,
        idle: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.thread_time,
    ) -> None:
        super().__init__(max_rate, burst=CHUNK, clock=clock, idle=idle)
        self.target = target
        self.min_rate = float(min_rate)
        self.max_rate = float(max_rate)
        self.cpu = cpu
        """The loop thread's CPU time so far (seconds)."""
        self._task: asyncio.Task[None] | None = None
        self._last: tuple[float, float] | None = None
        self.busy = 0.0
        """The loop's busy share over the last tick."""

    def reserve(self, n: int) -> float:
        if self.rate >= self.max_rate:  # the loop has room: not paced, not even a timer
            return 0.0
        return super().reserve(n)

    def observe(self, busy: float) -> None:
        """Adjust the rate to the loop's busy share over the last tick."""
        self.busy = busy
        if self._idle is not None and self._idle():
            self.rate = self.max_rate  # as unpaced as the idle bucket itself
            return
        if busy > self.target:
            self.rate = max(self.min_rate, self.rate * max(0.5, self.target / busy))
        else:
            self.rate = min(self.max_rate, self.rate * 1.1)

    def tick(self) -> None:
        """Sample the loop thread's CPU time (call on the loop thread) and observe the share."""
        now, cpu = self._clock(), self.cpu()
        if self._last is not None:
            wall = now - self._last[0]
            if wall > 0:
                self.observe(min(1.0, (cpu - self._last[1]) / wall))
        self._last = (now, cpu)

    def start(self) -> None:
        """Sample the serving loop every TICK_S (call on that loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            self.tick()
            await asyncio.sleep(self.TICK_S)


class BulkYield:
    """Backpressure from short requests onto bulk upload bodies: while any short request (no
    body, or a small one) is being served, upload bodies of the levels below `interactive`
    are not read, each for at most `max_wait_s` per chunk. Their bytes wait in the kernel and
    the client (TCP flow control), so a short request's turns of the event loop are not
    shared with receiving someone's 1 MiB uploads. The bound keeps a steady stream of short
    requests from starving an admitted upload: it still gets a chunk per `max_wait_s`."""

    def __init__(self, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s
        self.short = 0
        """Short requests in flight."""
        self._clear = asyncio.Event()
        self._clear.set()
        self.yielded_s = 0.0
        """Total time bulk readers waited (a metric for benchmarks and tests)."""

    def enter(self) -> None:
        self.short += 1
        if self.short == 1:
            self._clear.clear()

    def leave(self) -> None:
        self.short -= 1
        if self.short == 0:
            self._clear.set()

    async def wait(self) -> float:
        """Return once no short request is in flight, or after `max_wait_s`; the time waited."""
        if not self.short:
            return 0.0
        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.max_wait_s):
                await self._clear.wait()
        waited = time.monotonic() - started
        self.yielded_s += waited
        return waited


async def receive_body(
    request: web.Request,
    length: int,
    sink: Callable[[bytes], object] | None,
    *,
    chunk_timeout_s: float,
    min_bytes_per_s: int,
    grace_s: float,
    clock: Callable[[], float] = time.monotonic,
    pace: Callable[[int], Awaitable[float]] | None = None,
    before: Callable[[], Awaitable[float]] | None = None,
) -> int:
    """Up to `length` bytes of the body, each chunk handed to `sink` as it arrives (None: a
    body the server already holds, dropped); the number received (fewer when the client sent
    less and closed). `pace` (a `BytePacer.take`) is awaited after each chunk, `before` (a
    `BulkYield.wait`) before each; time spent in either does not count against the minimum
    rate."""
    from aiohttp import ClientPayloadError

    received = 0
    started = clock()
    paced = 0.0
    content = request.content
    loop = asyncio.get_running_loop()
    try:
        # one timer per body, moved forward after each chunk (a timeout context per chunk
        # cost a timer handle and a task lookup per 64-256 KiB)
        async with asyncio.timeout(chunk_timeout_s) as deadline:
            while received < length:
                if before is not None:
                    deadline.reschedule(None)
                    paced += await before()
                    deadline.reschedule(loop.time() + chunk_timeout_s)
                # whatever one socket read delivered, as it was buffered: `read(n)` joins
                # buffered pieces up to n into a new bytes object, a copy per chunk
                chunk, _ = await content.readchunk()
                if not chunk:
                    break
                if sink is not None:
                    sink(chunk)
                received += len(chunk)
                if pace is not None and received < length:
                    deadline.reschedule(None)  # time paced is not the client's stall
                    paced += await pace(len(chunk))
                elapsed = clock() - started - paced
                if min_bytes_per_s and elapsed > grace_s and received / elapsed < min_bytes_per_s:
                    raise SlowUploadError(
                        f"upload at {received / elapsed:.0f} B/s, below the "
                        f"{min_bytes_per_s} B/s minimum",
                        hint="the connection is closed; retry over a faster link",
                    )
                deadline.reschedule(loop.time() + chunk_timeout_s)
    except TimeoutError:
        raise SlowUploadError(
            f"no body bytes for {chunk_timeout_s:g} s ({received} of {length} received)",
            hint="the upload stalled; the connection is closed",
        ) from None
    except (ClientPayloadError, ConnectionError) as exc:
        raise ClientAbortedError(f"client closed the upload: {exc}") from None
    if received < length and (request.transport is None or request.transport.is_closing()):
        raise ClientAbortedError(f"client closed the upload after {received} of {length} bytes")
    return received


class _Guarded(asyncio.Protocol):
    """Delegates to aiohttp's RequestHandler once the peer is under its connection cap."""

    __slots__ = ("_guard", "_inner", "_peer", "_started")

    def __init__(self, guard: ConnectionGuard, inner: Any) -> None:
        self._guard = guard
        self._inner = inner
        self._peer: str | None = None
        self._started = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._peer = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if not self._guard.admit(self._peer):
            self._peer = None
            cast(asyncio.Transport, transport).abort()
            return
        self._started = True
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._peer is not None:
            self._guard.release(self._peer)
        if self._started:
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._started:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._started:
            result: bool | None = self._inner.eof_received()
            return result
        return None

    def pause_writing(self) -> None:
        if self._started:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._started:
            self._inner.resume_writing()


class ConnectionGuard:
    """Counts open connections per peer address; refuses those over the cap."""

    def __init__(
        self, factory: Callable[[], Any], max_per_client: int, refused: PromCounter | None = None
    ) -> None:
        self._factory = factory
        self.max_per_client = max_per_client
        self.open: Counter[str] = Counter()
        self._refused = refused
        self._warn = WarnEvery(log)

    def __call__(self) -> asyncio.Protocol:
        return _Guarded(self, self._factory())

    def admit(self, peer: str) -> bool:
        if self.open[peer] >= self.max_per_client:
            if self._refused is not None:
                self._refused.inc()
            self._warn.warning(
                "client %s holds %d connections (the cap): new ones are closed",
                peer,
                self.open[peer],
            )
            return False
        self.open[peer] += 1
        return True

    def release(self, peer: str) -> None:
        self.open[peer] -= 1
        if self.open[peer] <= 0:
            del self.open[peer]


class GuardedSite(TCPSite):
    """A TCP site whose connections go through a ConnectionGuard."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        *,
        max_per_client: int,
        refused: PromCounter | None = None,
        backlog: int = 1024,
    ) -> None:
        super().__init__(runner, host, port, reuse_address=True, backlog=backlog)
        self._max_per_client = max_per_client
        self._refused = refused
        self.guard: ConnectionGuard | None = None

    async def start(self) -> None:
        await BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self.guard = ConnectionGuard(server, self._max_per_client, self._refused)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.guard, self._host, self._port, backlog=self._backlog, reuse_address=True
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
