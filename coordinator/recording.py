"""A record of every request body the coordinator receives, for red-team tests.

Enabled only by the typed setting ``record_requests_dir`` (never on by default): each request
with a body becomes one file in that directory (``<n>-<METHOD>-<path>.body``: the body as received,
decompressed when it came zstd-encoded, so a scan reads what was sent). It runs first among the
middlewares, so a request refused later (401, 429, 413) is recorded too; the handlers then read
the same bytes from a fresh stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import zstandard
from aiohttp import web
from aiohttp.streams import StreamReader

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def recording_middleware(
    directory: Path,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    counter = itertools.count()

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.body_exists:
            return await handler(request)
        body = await request.read()
        name = f"{next(counter):06d}-{request.method}-{_UNSAFE.sub('_', request.path)[:80]}.body"
        await asyncio.to_thread(_write, directory / name, body, request.headers)
        # the handlers read the body as a stream: give them the same bytes again
        replay = StreamReader(request.protocol, 2**16, loop=asyncio.get_running_loop())
        replay.feed_data(body)
        replay.feed_eof()
        request._payload = replay  # a test-only hook may reach into the request
        return await handler(request)

    return record


def _write(path: Path, body: bytes, headers: Mapping[str, str]) -> None:
    if headers.get("Content-Encoding", "").strip().lower() == "zstd":
        with contextlib.suppress(zstandard.ZstdError):  # a broken body is recorded as it came
            body = zstandard.ZstdDecompressor().decompressobj().decompress(body)
    path.write_bytes(body)
