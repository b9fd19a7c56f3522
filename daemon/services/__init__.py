"""The daemon's workspace services, each installed on the DaemonApp by ``app.build_app``: the
shared graph and its queries, test runs over the engine, speculation and telemetry, the
coordinator mirror, and the connected editor's settings."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a service's background task and wait until it has ended, so that nothing it does
    outlives the service; how it ended is moot by then (it logs its own failures)."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
