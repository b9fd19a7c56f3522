"""Per-tenant LRU eviction under the storage quota (real app on loopback, real LMDB)."""

from __future__ import annotations

from coord_helpers import Env, sha

from maestro.coordinator.records import TenantUpdate


async def test_full_tenant_evicts_its_least_recently_used_entries(env: Env) -> None:
    env.store.update_tenant("alpha", TenantUpdate(quota_bytes=10_000))
    headers = await env.auth("alpha")
    blobs = [bytes([i]) * 3000 for i in range(1, 5)]
    for blob in blobs[:3]:
        assert (
            await env.client.put(f"/alpha/cas/{sha(blob)}", data=blob, headers=headers)
        ).status == 200
    # blob 1 is used again: blob 2 becomes the least recently used
    assert (await env.client.get(f"/alpha/cas/{sha(blobs[0])}", headers=headers)).status == 200
    resp = await env.client.put(f"/alpha/cas/{sha(blobs[3])}", data=blobs[3], headers=headers)
    assert resp.status == 200, await resp.text()
    present = [
        (await env.client.head(f"/alpha/cas/{sha(b)}", headers=headers)).status for b in blobs
    ]
    assert present == [200, 404, 200, 200]
    assert env.store.usage(env.store.get_tenant("alpha")).bytes <= 10_000  # type: ignore[arg-type]
    metrics = await (await env.client.get("/metrics")).text()
    assert 'maestro_coordinator_evicted_bytes_total{tenant="alpha"} 3000.0' in metrics
    # other tenants are never evicted for alpha
    beta = await env.auth("beta")
    assert (
        await env.client.put(f"/beta/cas/{sha(blobs[1])}", data=blobs[1], headers=beta)
    ).status == 200


async def test_eviction_off_keeps_the_507(env: Env) -> None:
    env.store.update_tenant(
        "alpha", TenantUpdate(quota_bytes=5_000, policy_changes={"evict": False})
    )
    headers = await env.auth("alpha")
    first, second = b"a" * 3000, b"b" * 3000
    assert (
        await env.client.put(f"/alpha/cas/{sha(first)}", data=first, headers=headers)
    ).status == 200
    resp = await env.client.put(f"/alpha/cas/{sha(second)}", data=second, headers=headers)
    assert resp.status == 507 and (await resp.json())["error"] == "quota_exceeded"


async def test_a_blob_larger_than_the_quota_is_refused_without_evicting(env: Env) -> None:
    env.store.update_tenant("alpha", TenantUpdate(quota_bytes=4_000))
    headers = await env.auth("alpha")
    small, huge = b"s" * 1000, b"h" * 5000
    assert (
        await env.client.put(f"/alpha/cas/{sha(small)}", data=small, headers=headers)
    ).status == 200
    resp = await env.client.put(f"/alpha/cas/{sha(huge)}", data=huge, headers=headers)
    assert resp.status == 507
    assert (await env.client.head(f"/alpha/cas/{sha(small)}", headers=headers)).status == 200
