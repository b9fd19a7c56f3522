"""Bulk bodies paced to the event loop's busy share, by default: while interactive requests come
in and the loop is busier than `bulk_loop_share`, upload bodies of the levels below interactive
are read more slowly (never below 8 MiB/s); idle, or with a quiet loop, at full speed.
In-process app on loopback over a real LMDB store."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from coord_helpers import Env, served, sha

from maestro.coordinator.app import STATE
from maestro.coordinator.hardening import LoopSharePacer
from maestro.coordinator.settings import Settings

MIB = 1 << 20


def test_the_rate_follows_the_loops_busy_share() -> None:
    idle = [False]
    pacer = LoopSharePacer(0.5, min_rate=MIB, max_rate=64 * MIB, idle=lambda: idle[0])
    pacer.observe(1.0)  # twice the target: halved
    assert pacer.rate == 32 * MIB
    pacer.observe(0.8)  # in proportion to the excess
    assert pacer.rate == pytest.approx(20 * MIB)
    for _ in range(20):
        pacer.observe(1.0)
    assert pacer.rate == MIB  # never below the floor: bulk uploads still progress
    pacer.observe(0.3)  # room on the loop: up by a tenth
    assert pacer.rate == pytest.approx(1.1 * MIB)
    for _ in range(100):
        pacer.observe(0.1)
    assert pacer.rate == 64 * MIB  # at the top nothing is paced
    assert pacer.reserve(32 * MIB) == 0.0
    pacer.observe(1.0)
    assert pacer.reserve(32 * MIB) > 0.0
    idle[0] = True  # no interactive request: full speed, whatever the share
    pacer.observe(1.0)
    assert pacer.rate == 64 * MIB


def test_the_share_is_the_loop_threads_cpu_time_over_wall_time() -> None:
    wall, cpu = [0.0], [0.0]
    pacer = LoopSharePacer(
        0.5, min_rate=MIB, max_rate=64 * MIB, clock=lambda: wall[0], cpu=lambda: cpu[0]
    )
    pacer.tick()  # the first sample only starts the measure
    assert pacer.rate == 64 * MIB
    wall[0], cpu[0] = 0.02, 0.015
    pacer.tick()
    assert pacer.busy == pytest.approx(0.75)
    assert pacer.rate == pytest.approx(64 * MIB * 0.5 / 0.75)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    settings = Settings(  # the defaults: nothing about pacing configured
        data_dir=tmp_path / "coord",
        max_blob_bytes=4 * MIB,
        tenants={"alpha": {"priority": "ci"}, "beta": {"priority": "interactive"}},
    )
    async with served(settings, ["alpha", "beta"]) as env:
        yield env


def _sample(text: str, name: str) -> float:
    (value,) = [line.split()[1] for line in text.splitlines() if line.startswith(name + " ")]
    return float(value)


async def _upload(env: Env, tenant: str, data: bytes) -> int:
    headers = await env.auth(tenant)
    resp = await env.client.put(f"/{tenant}/cas/{sha(data)}", data=data, headers=headers)
    return resp.status


async def test_by_default_ci_uploads_yield_to_interactive_requests_on_a_busy_loop(env: Env) -> None:
    pacer = env.client.app[STATE].bulk_pacer
    assert isinstance(pacer, LoopSharePacer), "bulk bodies are not paced by default"
    pacer.cpu = time.monotonic  # the loop reads as busy all the time
    # no interactive request yet: the share is not acted on, a CI upload runs at full speed
    await asyncio.sleep(0.3)
    assert (await _upload(env, "alpha", os.urandom(2 * MIB))) == 200
    assert pacer.paced_s == 0.0
    # a developer's read reaches the cache: on a loop this busy, CI bodies slow to the floor
    headers = await env.auth("beta")
    assert (await env.client.get(f"/beta/cas/{sha(b'x')}", headers=headers)).status == 404
    await asyncio.sleep(0.3)  # ~15 samples: halved each time, down to 8 MiB/s
    assert pacer.rate == 8 * MIB
    blob = os.urandom(2 * MIB)
    started = time.monotonic()
    assert (await _upload(env, "alpha", blob)) == 200, "a paced upload was cut as too slow"
    assert time.monotonic() - started >= 0.15  # 2 MiB at 8 MiB/s after a 256 KiB burst
    assert pacer.paced_s > 0.0
    stored = await env.client.get(f"/alpha/cas/{sha(blob)}", headers=await env.auth("alpha"))
    assert stored.status == 200 and await stored.read() == blob
    # what an operator sees: the pacer's rate at its floor, the time bulk readers waited, the
    # loop's busy share it follows
    text = await (await env.client.get("/metrics")).text()
    assert _sample(text, "maestro_coordinator_bulk_pace_bytes_per_second") == 8 * MIB
    assert _sample(text, "maestro_coordinator_event_loop_busy_share") > 0.9
    assert _sample(text, "maestro_coordinator_bulk_paced_seconds") > 0.0
    # an interactive upload is never paced
    paced = pacer.paced_s
    assert (await _upload(env, "beta", os.urandom(2 * MIB))) == 200
    assert pacer.paced_s == paced


async def test_a_quiet_loop_keeps_ci_uploads_at_full_speed(env: Env) -> None:
    pacer = env.client.app[STATE].bulk_pacer
    assert isinstance(pacer, LoopSharePacer)
    pacer.cpu = lambda: 0.0  # the loop reads as idle
    headers = await env.auth("beta")
    assert (await env.client.get(f"/beta/cas/{sha(b'x')}", headers=headers)).status == 404
    await asyncio.sleep(0.1)
    assert (await _upload(env, "alpha", os.urandom(2 * MIB))) == 200
    assert pacer.paced_s == 0.0


async def test_a_share_of_zero_turns_it_off(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "coord", bulk_loop_share=0)
    async with served(settings, ["alpha"]) as env:
        assert env.client.app[STATE].bulk_pacer is None
