"""Background tasks of long-lived services (the daemon's, the coordinator's, the LSP server's)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait until it has ended, so that nothing it does outlives
    the service that closes. A failure it ended with is logged, not raised: the rest of the
    close still runs. The caller's own cancellation is not swallowed."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except Exception:
        log.warning("background task %s ended with an error", task.get_name(), exc_info=True)


async def first_of(*waits: Awaitable[Any]) -> None:
    """Wait until the first of ``waits`` is done; the rest are cancelled (also when the caller
    is)."""
    futures = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in futures:
            future.cancel()


async def run_every(
    every_s: float, work: Callable[[], object], what: str, *, first_s: float = 5.0
) -> None:
    """Run blocking ``work`` in a worker thread soon after the start (within ``first_s``), then
    every ``every_s``, until cancelled. A failed round is logged and the next one still comes:
    a background chore never takes its service down."""
    delay = min(every_s, first_s)
    while True:
        await asyncio.sleep(delay)
        delay = every_s
        try:
            await asyncio.to_thread(work)
        except Exception:
            log.exception("%s failed", what)
