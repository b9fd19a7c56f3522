"""A small thread-safe circuit breaker for calls to a remote service.

Kept in-house rather than taken from pybreaker/purgatory: those wrap the call itself, while the
remote mirror asks `allow()` on a caller's thread and reports `success()`/`failure()` later from
its own event loop; it also wants a cooldown that doubles while probes keep failing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

CircuitState = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    """Closed -> open after `threshold` consecutive failures; open -> half-open after a cooldown
    (doubling up to `max_cooldown_s` while probes keep failing); one probe at a time."""

    def __init__(
        self,
        threshold: int = 3,
        cooldown_s: float = 2.0,
        max_cooldown_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.base_cooldown_s = cooldown_s
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state: CircuitState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> CircuitState:
        with self._lock:
            if self._state == "open" and self._clock() >= self._opened_at + self.cooldown_s:
                return "half-open"
            return self._state

    def allow(self) -> bool:
        with self._lock:
            if self._state == "closed":
                return True
            if self._state == "open":
                if self._clock() < self._opened_at + self.cooldown_s:
                    return False
                self._state, self._probing = "half-open", False
            if self._probing:
                return False
            self._probing = True
            return True

    def success(self) -> None:
        with self._lock:
            self._state, self._failures, self._probing = "closed", 0, False
            self.cooldown_s = self.base_cooldown_s

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state == "half-open":
                self.cooldown_s = min(self.cooldown_s * 2, self.max_cooldown_s)
            if self._state == "half-open" or self._failures >= self.threshold:
                self._state, self._opened_at, self._probing = "open", self._clock(), False
