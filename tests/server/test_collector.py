"""The LSP server's idle collector: full collections wait for a pause, but never for long."""

from __future__ import annotations

import asyncio
import gc

from maestro.server.collector import NEVER, IdleCollector


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_collects_only_once_idle_and_hands_back_the_threshold() -> None:
    before = gc.get_threshold()
    clock = Clock()
    collector = IdleCollector(idle_s=0.01, max_gap_s=60.0, clock=clock)
    collector.start()
    try:
        assert gc.get_threshold()[2] == NEVER
        collector.touch()
        for _ in range(5):  # busy: a message every tick
            await asyncio.sleep(0.02)
            clock.now += 0.001
            collector.touch()
        assert collector.collections == 0
        clock.now += 1.0  # a pause
        await asyncio.sleep(0.05)
        assert collector.collections == 1
        await asyncio.sleep(0.05)  # nothing new arrived: nothing to collect
        assert collector.collections == 1
    finally:
        collector.stop()
    assert gc.get_threshold() == before


async def test_a_stream_without_pauses_still_collects_every_max_gap() -> None:
    clock = Clock()
    collector = IdleCollector(idle_s=0.01, max_gap_s=5.0, clock=clock)
    collector.start()
    try:
        for _ in range(8):
            clock.now += 1.0
            collector.touch()
            await asyncio.sleep(0.02)
        assert collector.collections == 1  # 8 s of traffic, one full pass after 5 s
    finally:
        collector.stop()
