"""Full garbage collections while the editor is idle, not under a request.

Each memoised hub answer holds hundreds of row objects, and CPython's automatic full collection
walks all of them: pauses long enough to set the slow tail of ``impactedTargets``. The server
turns the automatic full pass off and runs it itself once no message has arrived for ``idle_s``;
under a stream of requests that never pauses it still runs every ``max_gap_s``, so cyclic
garbage is never kept for long. The young generations keep collecting as usual.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

NEVER = 1_000_000_000  # a third-generation threshold the automatic collector never reaches


class IdleCollector:
    def __init__(
        self,
        idle_s: float = 0.5,
        max_gap_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_s = idle_s
        self.max_gap_s = max_gap_s
        self.collections = 0
        self._clock = clock
        self._last_activity = clock()
        self._last_full = clock()
        self._dirty = False
        self._handle: asyncio.TimerHandle | None = None
        self._saved: tuple[int, int, int] | None = None

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self) -> None:
        """Take over full collections (call on the running loop; again is a no-op)."""
        if self._handle is not None:
            return
        self._saved = gc.get_threshold()
        gc.set_threshold(self._saved[0], self._saved[1], NEVER)
        self._handle = asyncio.get_running_loop().call_later(self.idle_s, self._tick)

    def stop(self) -> None:
        """Hand full collections back to the interpreter."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None

    def touch(self) -> None:
        """A message arrived: work (and garbage) is under way; wait for the next pause."""
        self._last_activity = self._clock()
        self._dirty = True

    def _tick(self) -> None:
        now = self._clock()
        idle = now - self._last_activity >= self.idle_s
        if self._dirty and (idle or now - self._last_full >= self.max_gap_s):
            started = time.perf_counter()
            found = gc.collect()
            self._last_full, self._dirty = self._clock(), False
            self.collections += 1
            log.debug(
                "full collection while %s: %d objects in %.1f ms",
                "idle" if idle else "busy",
                found,
                (time.perf_counter() - started) * 1000,
            )
        self._handle = asyncio.get_running_loop().call_later(self.idle_s, self._tick)
