"""What receiving upload bodies costs the event loop: a blob the tenant already holds is read and
dropped (not kept, hashed or written again), and bulk bodies wait while interactive requests are
served (`BulkYield`), at most `bulk_yield_max_s` per chunk. In-process app on loopback over a
real LMDB store."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import zstandard
from coord_helpers import Env, served, sha
from coord_procs import needs_nginx, run_nginx

import maestro.coordinator.app as app_module
from maestro.coordinator import hardening
from maestro.coordinator.app import STATE
from maestro.coordinator.blobs import HttpBlobs
from maestro.coordinator.settings import Settings
from maestro.coordinator.state import LmdbState
from maestro.coordinator.store import Store

MIB = 1 << 20


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    settings = Settings(
        data_dir=tmp_path / "coord",
        max_blob_bytes=2 * MIB,
        bulk_yield_max_s=0.05,
        tenants={"alpha": {"priority": "ci"}, "beta": {"priority": "interactive"}},
    )
    async with served(settings, ["alpha", "beta"]) as env:
        yield env


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the upload bodies the app hashed."""
    sizes: list[int] = []
    real = app_module.sha256_of

    async def counting(data: bytes | memoryview, executor: Any) -> bytes:
        sizes.append(len(data))
        return await real(data, executor)

    monkeypatch.setattr(app_module, "sha256_of", counting)
    return sizes


async def test_a_held_blob_uploaded_again_is_read_but_not_hashed_or_stored(
    env: Env, hashed: list[int]
) -> None:
    blob = os.urandom(MIB)
    digest = sha(blob)
    headers = await env.auth("alpha")
    resp = await env.client.put(f"/alpha/cas/{digest}", data=blob, headers=headers)
    assert resp.status == 200 and hashed == [MIB]
    alpha = env.store.get_tenant("alpha")
    assert alpha is not None
    usage = env.store.usage(alpha)
    for _ in range(3):  # on one keep-alive connection: each body read to its end
        resp = await env.client.put(f"/alpha/cas/{digest}", data=blob, headers=headers)
        assert resp.status == 200
    assert hashed == [MIB], "a blob already held was hashed again"
    # compressed, with the size announced: also not decoded or hashed
    packed = zstandard.ZstdCompressor().compress(blob)
    resp = await env.client.put(
        f"/alpha/cas/{digest}",
        data=packed,
        headers={**headers, "Content-Encoding": "zstd", "X-Digest-SizeBytes": str(MIB)},
    )
    assert resp.status == 200 and hashed == [MIB]
    assert env.store.usage(alpha) == usage
    resp = await env.client.get(f"/alpha/cas/{digest}", headers=headers)
    assert resp.status == 200 and await resp.read() == blob


async def test_an_upload_of_another_size_is_verified_as_before(env: Env, hashed: list[int]) -> None:
    blob = os.urandom(MIB)
    headers = await env.auth("alpha")
    resp = await env.client.put(f"/alpha/cas/{sha(blob)}", data=blob, headers=headers)
    assert resp.status == 200
    # the held size differs from this body's: read, hashed, refused
    resp = await env.client.put(f"/alpha/cas/{sha(blob)}", data=blob[:-1], headers=headers)
    assert resp.status == 400 and (await resp.json())["error"] == "digest_mismatch"
    assert hashed == [MIB, MIB - 1]
    # an announced size that contradicts the body is refused, held blob or not
    resp = await env.client.put(
        f"/alpha/cas/{sha(blob)}",
        data=blob,
        headers={**headers, "X-Digest-SizeBytes": str(MIB + 1)},
    )
    assert resp.status == 400 and (await resp.json())["error"] == "size_mismatch"


async def test_interactive_reads_hold_bulk_bodies_back(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    coordinator = env.client.server.app[STATE]
    bulk = coordinator.gate.bulk
    assert bulk is not None, "bulk_yield_max_s is set: bulk bodies can be held back"
    blob = os.urandom(4096)
    headers = {t: await env.auth(t) for t in ("alpha", "beta")}
    for tenant in ("alpha", "beta"):
        resp = await env.client.put(
            f"/{tenant}/cas/{sha(blob)}", data=blob, headers=headers[tenant]
        )
        assert resp.status == 200
    seen: dict[str, int] = {}
    real = coordinator.blobs.get_cas

    async def get_cas(tenant: Any, key: bytes) -> bytes | None:
        seen[tenant.name] = bulk.short
        return await real(tenant, key)

    monkeypatch.setattr(coordinator.blobs, "get_cas", get_cas)
    for tenant in ("alpha", "beta"):
        resp = await env.client.get(f"/{tenant}/cas/{sha(blob)}", headers=headers[tenant])
        assert resp.status == 200
    # an interactive read holds bulk bodies back while served; a ci read (a CI farm's reads
    # queued behind its own uploads) does not
    assert seen == {"alpha": 0, "beta": 1}
    assert bulk.short == 0


async def test_a_held_back_reader_resumes_when_the_short_requests_end() -> None:
    bulk = hardening.BulkYield(max_wait_s=30.0)
    assert await bulk.wait() == 0.0  # nothing in flight: no wait at all
    bulk.enter()
    bulk.enter()
    waiting = asyncio.create_task(bulk.wait())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()
    bulk.leave()
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done(), "resumed while a short request was still in flight"
    bulk.leave()
    await asyncio.wait_for(waiting, 5)


async def test_a_held_back_reader_is_not_starved() -> None:
    bulk = hardening.BulkYield(max_wait_s=0.01)
    bulk.enter()  # never left: a steady stream of short requests
    waited = await asyncio.wait_for(bulk.wait(), 5)
    assert waited >= 0.01
    assert bulk.yielded_s == waited


@needs_nginx
async def test_an_upstream_upload_asks_for_presence_once(tmp_path: Path) -> None:
    """A replica asks the upstream whether it holds the blob before reading the body (to drop
    a re-upload's body); storing a new blob then reuses that answer instead of asking again."""
    store = Store(tmp_path / "store")
    state = LmdbState(store)
    pool = ThreadPoolExecutor(2)
    with run_nginx(tmp_path) as nginx:
        blobs = HttpBlobs(nginx.url, state, pool)
        try:
            tenant = await state.add_tenant("alpha")
            asked: list[str] = []
            real = blobs._size

            async def size(url: str) -> int | None:
                asked.append(url)
                return await real(url)

            blobs._size = size  # type: ignore[method-assign]
            blob = os.urandom(4096)
            key = bytes.fromhex(sha(blob))
            held = await blobs.cas_size(tenant, key)
            assert held is None and len(asked) == 1
            assert await blobs.put_cas(tenant, key, blob, held) is True
            assert len(asked) == 1, "the upstream was asked for presence twice"
            assert await blobs.get_cas(tenant, key) == blob
            # without an answer at hand, put_cas asks itself (and finds it)
            assert await blobs.put_cas(tenant, key, blob) is False
            assert len(asked) == 2
        finally:
            await blobs.close()
            pool.shutdown()
            store.close()
