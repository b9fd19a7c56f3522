"""Receiving large bulk upload bodies on threads of their own, off the event loop.

An admitted upload's body is normally received on the event loop: each socket read goes
through the transport, aiohttp's HTTP parser and its stream (two copies of every chunk plus
Python work per chunk). A CI farm keeping hundreds of 1 MiB uploads in flight makes that the
loop's main work, and an interactive read that arrives meanwhile waits behind those callbacks,
and behind the loop's own wait for a CPU on a busy host.

`BulkReceiver` takes such a body over instead: the handler stops the transport reading, takes
what aiohttp had already buffered, and a receiver thread reads the rest straight from the
socket into one preallocated buffer (`recv_into`; the GIL is released for every read and for
hashing), verifying the sha256 as the bytes arrive. The event loop sees one executor hop per
upload instead of a callback per chunk. Receiver threads may run at a lower CPU priority
(`nice`), so that on a saturated host the kernel runs the event loop, which serves interactive
requests, before the bulk bytes.

The price: aiohttp's parser never sees those body bytes, so the connection cannot carry another
request. Its answer says `Connection: close` and the client opens a new connection for its next
upload (one TCP handshake per large upload). Only large bodies (`MIN_BYTES`) of the levels below
`interactive`, on plain TCP, are taken over; anything else is received on the loop as before.
The same deadlines apply: `body_read_timeout_s` between reads, `min_upload_bytes_per_s` after
`upload_grace_s`, and `bulk_upload_bytes_per_s` pacing. A client that goes away mid-body is a
client abort and nothing of its body is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aiohttp import web

from .hardening import ClientAbortedError, SlowUploadError

log = logging.getLogger(__name__)

MIN_BYTES = 256 << 10
"""Smaller bodies arrive in a read or two: receiving them on the loop costs less than a hop."""
POLL_SLICE_S = 0.25
"""How often a waiting receiver checks whether the server is stopping."""
TAKEN_OVER = web.RequestKey("maestro.body_taken_over", bool)
"""Set on a request whose body a receiver thread read: its answer must close the connection."""


@dataclass(frozen=True, slots=True)
class Received:
    body: bytearray | None
    """The whole body (None: asked to drop it)."""
    sha256: bytes | None
    """Its digest, when asked to hash it."""


class BulkReceiver:
    """A pool of receiver threads, optionally `nice` steps below the event loop's priority."""

    def __init__(self, threads: int, *, nice: int = 0) -> None:
        self.nice = nice
        self._pool = ThreadPoolExecutor(
            threads, thread_name_prefix="coord-bulk-recv", initializer=self._lower_priority
        )
        self._stopping = threading.Event()
        self.taken_over = 0
        """Bodies handed to the threads (a metric for benchmarks and tests)."""

    def _lower_priority(self) -> None:
        """`nice` below the thread that started it (the event loop's), whatever that is."""
        if self.nice > 0:
            try:
                tid = threading.get_native_id()
                os.setpriority(
                    os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + self.nice)
                )
            except (OSError, AttributeError) as exc:  # not Linux, or not permitted
                log.warning("bulk receiver threads keep their priority: %s", exc)

    @staticmethod
    def can_take(request: web.Request, length: int) -> bool:
        """A large body on a plain TCP connection whose aiohttp handler we know."""
        transport = request.transport
        return (
            length >= MIN_BYTES
            and transport is not None
            and not transport.is_closing()
            and transport.get_extra_info("sslcontext") is None
            and transport.get_extra_info("socket") is not None
            and hasattr(transport, "pause_reading")
        )

    async def receive(
        self,
        request: web.Request,
        length: int,
        *,
        keep: bool,
        chunk_timeout_s: float,
        min_bytes_per_s: int,
        grace_s: float,
        pace: Callable[[int], float] | None = None,
    ) -> Received | None:
        """The body of `request` (`length` bytes, hashed when kept), read by a thread; None
        when aiohttp already holds all of it (read it as usual: the connection stays open).
        `pace(n)` (thread-safe) says how long to wait after `n` bytes. Raises SlowUploadError
        and ClientAbortedError like `hardening.receive_body`."""
        transport = request.transport
        assert transport is not None
        content = request.content
        if content.is_eof():
            return None  # the whole body is already here: the connection can stay open
        sock = transport.get_extra_info("socket")
        request[TAKEN_OVER] = True
        # What aiohttp already read stays in its stream; a socket read already dispatched in
        # this turn of the loop may still add some, so once more after one turn (the
        # transport paused each time after read_nowait, which may resume it).
        head: list[bytes] = []
        got = 0
        for turn in (0, 1):
            try:
                chunk = content.read_nowait(length - got)
            except Exception as exc:  # the stream's stored error: the client went away
                raise ClientAbortedError(f"client closed the upload: {exc!r}") from None
            transport.pause_reading()
            if chunk:
                head.append(chunk)
                got += len(chunk)
            if turn == 0 and got < length:
                await asyncio.sleep(0)
        # The connection closes after this answer, without waiting for (or draining) the rest
        # of the body: the rest is the thread's. (Marking the stream's end instead would resume
        # the transport, an epoll change and back per upload.)
        request.protocol.close()
        if hasattr(request.protocol, "_lingering_time"):  # aiohttp's RequestHandler
            request.protocol._lingering_time = 0.0
        self.taken_over += 1
        loop = asyncio.get_running_loop()
        received = await loop.run_in_executor(
            self._pool,
            self._read,
            sock.fileno(),
            head,
            length,
            keep,
            chunk_timeout_s,
            min_bytes_per_s,
            grace_s,
            pace,
        )
        return received

    def _read(
        self,
        fd: int,
        head: list[bytes],
        length: int,
        keep: bool,
        chunk_timeout_s: float,
        min_bytes_per_s: int,
        grace_s: float,
        pace: Callable[[int], float] | None,
    ) -> Received:
        body = bytearray(length) if keep else None
        scratch = memoryview(body) if body is not None else memoryview(bytearray(1 << 20))
        digest = hashlib.sha256() if keep else None
        got = 0
        for piece in head:
            if body is not None and digest is not None:
                body[got : got + len(piece)] = piece
                digest.update(piece)
            got += len(piece)
        started = time.monotonic()
        paced = 0.0
        sock = socket.socket(fileno=os.dup(fd))
        try:
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
            last = time.monotonic()
            while got < length:
                if self._stopping.is_set():
                    raise ClientAbortedError("the server is stopping")
                if not poller.poll(POLL_SLICE_S * 1000):
                    if time.monotonic() - last > chunk_timeout_s:
                        raise SlowUploadError(
                            f"no body bytes for {chunk_timeout_s:g} s ({got} of {length} received)",
                            hint="the upload stalled; the connection is closed",
                        )
                    continue
                view = scratch[got:] if body is not None else scratch
                want = min(length - got, len(view))
                try:
                    n = sock.recv_into(view, want)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:
                    raise ClientAbortedError(f"client closed the upload: {exc!r}") from None
                if n == 0:
                    raise ClientAbortedError(
                        f"client closed the upload after {got} of {length} bytes"
                    )
                if digest is not None:
                    digest.update(view[:n])
                got += n
                last = time.monotonic()
                if pace is not None and got < length:
                    wait = pace(n)
                    if wait > 0:
                        time.sleep(wait)
                        paced += wait
                        last = time.monotonic()
                elapsed = last - started - paced
                if min_bytes_per_s and elapsed > grace_s and got / elapsed < min_bytes_per_s:
                    raise SlowUploadError(
                        f"upload at {got / elapsed:.0f} B/s, below the {min_bytes_per_s} B/s "
                        "minimum",
                        hint="the connection is closed; retry over a faster link",
                    )
        finally:
            with contextlib.suppress(OSError):
                sock.close()  # the duplicate only: the transport keeps its own descriptor
        return Received(body, digest.digest() if digest is not None else None)

    def close(self) -> None:
        """Stop waiting receivers (their uploads end as aborted) and the threads."""
        self._stopping.set()
        self._pool.shutdown(wait=True)
