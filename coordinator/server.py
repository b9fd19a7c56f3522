"""Running the app: bind, announce the address as one JSON line on stdout, serve until signalled."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import sys

from aiohttp import web

from maestro.redaction import RedactingFormatter, Redactor

from .app import RUNNER_KWARGS, STATE, create_app
from .hardening import GuardedSite
from .settings import Settings

log = logging.getLogger(__name__)


def configure_logging(level: str, settings: Settings | None = None) -> None:
    """Plain messages on stderr, redacted; access-log lines are already JSON objects.

    aiohttp's own loggers go through the same handler (on the root logger): its parser errors
    quote the offending request line or header, credentials included."""
    redactor = Redactor.from_environ(os.environ)
    if settings is not None:
        for kid, key in settings.token_keys.items():
            redactor.add_known(key.get_secret_value(), kind=f"token-key-{kid}")
        if settings.token_secret is not None:
            redactor.add_known(settings.token_secret.get_secret_value(), kind="token-key")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(message)s", redactor=redactor))
    ours = logging.getLogger("maestro")
    ours.handlers[:] = [handler]
    ours.setLevel(level.upper())
    ours.propagate = False
    root = logging.getLogger()
    root.handlers[:] = [handler]


def tune_collector(young_threshold: int) -> bool:
    """Freeze what the start made (modules, the app, its routes and models live as long as the
    process: no collection needs to traverse them again) and collect the youngest generation
    every `young_threshold` allocations, so that a request's objects mostly die before a
    collection instead of being promoted to the generations whose full collections traverse
    every held connection. False (threshold 0): left as the interpreter set it."""
    if not young_threshold:
        return False
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, oldest)
    return True


async def serve(settings: Settings) -> None:
    app = create_app(settings)
    # aiohttp's own access log is off: ours is structured and never contains headers.
    runner = web.AppRunner(
        app,
        handle_signals=False,
        keepalive_timeout=settings.header_timeout_s,
        # A refused or cut upload's unread body is drained this long (so the client reads the
        # answer), not aiohttp's 10 s: a trickling client would keep its socket that long.
        lingering_time=1.0,
        **RUNNER_KWARGS,
    )
    await runner.setup()
    site = GuardedSite(
        runner,
        settings.host,
        settings.port,
        max_per_client=settings.max_connections_per_client,
        refused=app[STATE].metrics.connections_refused,
    )
    await site.start()
    tune_collector(settings.gc_young_threshold)
    stop_timing_gc = app[STATE].metrics.watch_gc()
    port = int(runner.addresses[0][1]) if runner.addresses else settings.port
    # The harness (and tests) read the bound port from this line: --port 0 picks any free one.
    sys.stdout.write(json.dumps({"event": "listening", "host": settings.host, "port": port}) + "\n")
    sys.stdout.flush()
    log.info(
        "coordinator listening on http://%s:%d (data %s)", settings.host, port, settings.data_dir
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("coordinator shutting down")
        await runner.cleanup()
        stop_timing_gc()


def run(settings: Settings) -> None:
    configure_logging(settings.log_level, settings)
    asyncio.run(serve(settings))
