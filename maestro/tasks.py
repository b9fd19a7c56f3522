"""Background tasks of long-lived services (the daemon's, the coordinator's, the LSP server's)."""

from __future__ import annotations

import asyncio
import logging
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
