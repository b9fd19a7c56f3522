"""Evaluation metrics (APFD, precision/recall) and the speculation tripwire."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field


def apfd(order: Sequence[str], failing: Collection[str]) -> float | None:
    """Average Percentage of Faults Detected for one run, each failing test as one fault.

    APFD = 1 - (sum of 1-based positions of the failing tests) / (n * m) + 1 / (2n), in (0, 1];
    higher is better (1 - 1/(2n) when every failure comes first). None when nothing fails (APFD is
    undefined) or the order is empty. Failing tests missing from `order` count as found last.
    """
    n, m = len(order), len(failing)
    if n == 0 or m == 0:
        return None
    pos = {t: i + 1 for i, t in enumerate(order)}
    total = sum(pos.get(t, n) for t in failing)
    return 1.0 - total / (n * m) + 1.0 / (2 * n)


@dataclass(frozen=True, slots=True)
class SelectionScore:
    selected: int
    failing: int
    caught: int

    @property
    def precision(self) -> float | None:
        return self.caught / self.selected if self.selected else None

    @property
    def recall(self) -> float | None:
        return self.caught / self.failing if self.failing else None


def selection_score(selected: Collection[str], failing: Collection[str]) -> SelectionScore:
    chosen = set(selected)
    return SelectionScore(len(chosen), len(set(failing)), len(chosen & set(failing)))


def top_fraction(order: Sequence[str], fraction: float) -> list[str]:
    """The first ceil(fraction * n) entries of an ordering."""
    k = math.ceil(fraction * len(order) - 1e-9)
    return list(order[: max(0, min(len(order), k))])


# -- speculation: hit / miss / waste and the tripwire ----------------------------------------------


@dataclass(frozen=True, slots=True)
class SpeculationEvent:
    ts: float
    used: bool  # the result was served to a later explicit request
    cpu_seconds: float


@dataclass
class Tripwire:
    """Throttles speculation when its waste over a sliding window exceeds a threshold.

    Waste = share of speculative CPU-seconds whose results were never used. With fewer than
    `min_events` events in the window the tripwire stays open (not enough evidence). Once
    tripped it stays throttled for `cooldown` seconds, then re-arms on fresh evidence.
    """

    max_waste: float = 0.05
    window_s: float = 3600.0
    min_events: int = 20
    cooldown_s: float = 600.0
    events: deque[SpeculationEvent] = field(default_factory=deque)
    throttled_until: float = 0.0
    reason: str = ""

    def record(self, used: bool, cpu_seconds: float, *, now: float | None = None) -> None:
        t = time.time() if now is None else now
        self.events.append(SpeculationEvent(t, used, max(0.0, cpu_seconds)))
        self._trim(t)
        waste = self.waste(now=t)
        if waste is not None and waste > self.max_waste and len(self.events) >= self.min_events:
            self.throttled_until = t + self.cooldown_s
            self.reason = (
                f"speculation throttled: {waste:.0%} of speculative CPU wasted over the last "
                f"{self.window_s / 60:.0f} min (limit {self.max_waste:.0%}, "
                f"{len(self.events)} runs)"
            )

    def _trim(self, now: float) -> None:
        while self.events and self.events[0].ts < now - self.window_s:
            self.events.popleft()

    def waste(self, *, now: float | None = None) -> float | None:
        self._trim(time.time() if now is None else now)
        total = sum(e.cpu_seconds for e in self.events)
        if not self.events:
            return None
        if total <= 0.0:
            return sum(not e.used for e in self.events) / len(self.events)
        return sum(e.cpu_seconds for e in self.events if not e.used) / total

    def used_share(self, *, now: float | None = None) -> float | None:
        self._trim(time.time() if now is None else now)
        if not self.events:
            return None
        return sum(e.used for e in self.events) / len(self.events)

    def allows(self, *, now: float | None = None) -> bool:
        t = time.time() if now is None else now
        if t < self.throttled_until:
            return False
        if self.reason and t >= self.throttled_until:
            self.reason = ""
            # forget the evidence that tripped it: re-arm on fresh runs only
            self.events.clear()
        return True

    def status(self, *, now: float | None = None) -> dict[str, object]:
        t = time.time() if now is None else now
        return {
            "throttled": t < self.throttled_until,
            "reason": self.reason if t < self.throttled_until else "",
            "waste": self.waste(now=t),
            "used": self.used_share(now=t),
            "events": len(self.events),
        }
