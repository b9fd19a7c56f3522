"""Bulk upload pacing: bodies of the levels below interactive are read through one token bucket
per replica (the rest waits in TCP buffers), interactive ones at once; a paced upload is not
"too slow". In-process app on loopback over a real LMDB store."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from coord_helpers import Env, served, sha
from pydantic import ValidationError

from maestro.coordinator.app import STATE
from maestro.coordinator.hardening import BytePacer
from maestro.coordinator.settings import Settings

MIB = 1 << 20


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    settings = Settings(
        data_dir=tmp_path / "coord",
        max_blob_bytes=2 * MIB,
        bulk_upload_bytes_per_s=MIB,
        # paced time must not count: 1.5 MiB read in ~1 s would be far below this otherwise
        min_upload_bytes_per_s=4 * MIB,
        upload_grace_s=0.2,
        tenants={"alpha": {"priority": "ci"}, "beta": {"priority": "interactive"}},
    )
    async with served(settings, ["alpha", "beta"]) as env:
        yield env


async def _upload(env: Env, tenant: str, data: bytes) -> tuple[int, float]:
    headers = await env.auth(tenant)
    started = time.monotonic()
    resp = await env.client.put(f"/{tenant}/cas/{sha(data)}", data=data, headers=headers)
    return resp.status, time.monotonic() - started


async def test_ci_uploads_are_paced_and_interactive_ones_are_not(env: Env) -> None:
    blob = os.urandom(3 * MIB // 2)
    status, fast = await _upload(env, "beta", blob)
    assert status == 200 and fast < 0.6
    # 1.5 MiB at 1 MiB/s after a 256 KiB burst (the last chunk is not waited for): ~1 s
    status, paced = await _upload(env, "alpha", os.urandom(3 * MIB // 2))
    assert status == 200, "a paced upload was cut as too slow"
    assert paced >= 0.8, paced
    # two at once share the one bucket
    both = await asyncio.gather(*(_upload(env, "alpha", os.urandom(MIB)) for _ in range(2)))
    assert [s for s, _ in both] == [200, 200]
    assert max(t for _, t in both) >= 1.2


async def test_the_bucket_holds_readers_together_to_its_rate() -> None:
    now = [0.0]
    pacer = BytePacer(1000, burst=500, clock=lambda: now[0])
    assert await pacer.take(500) == 0.0  # the burst
    waits = [await pacer.take(100) for _ in range(3)]  # no time passes: debt accumulates
    assert waits == pytest.approx([0.1, 0.2, 0.3])
    now[0] = 10.0  # refilled, capped at the burst
    assert await pacer.take(500) == 0.0
    assert await pacer.take(1) > 0


@pytest.fixture
async def idle_env(tmp_path: Path) -> AsyncIterator[Env]:
    settings = Settings(
        data_dir=tmp_path / "coord",
        max_blob_bytes=2 * MIB,
        bulk_upload_bytes_per_s=MIB,
        bulk_upload_pace_idle_s=30.0,
        tenants={"alpha": {"priority": "ci"}, "beta": {"priority": "interactive"}},
    )
    async with served(settings, ["alpha", "beta"]) as env:
        yield env


async def test_with_an_idle_window_bulk_uploads_are_paced_only_after_interactive_requests(
    idle_env: Env,
) -> None:
    pacer = idle_env.client.app[STATE].bulk_pacer
    assert pacer is not None
    # no interactive request yet: a CI upload runs at full speed
    assert (await _upload(idle_env, "alpha", os.urandom(3 * MIB // 2)))[0] == 200
    assert pacer.paced_s == 0.0
    # an interactive read reaches the cache: the next CI upload waits for the bucket
    headers = await idle_env.auth("beta")
    resp = await idle_env.client.get(f"/beta/cas/{sha(b'absent')}", headers=headers)
    assert resp.status == 404
    assert (await _upload(idle_env, "alpha", os.urandom(3 * MIB // 2)))[0] == 200
    assert pacer.paced_s > 0.0


def test_an_idle_window_without_a_rate_is_refused_with_the_setting_it_needs(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValidationError, match="needs bulk_upload_bytes_per_s"):
        Settings(data_dir=tmp_path, bulk_upload_pace_idle_s=1.0)
