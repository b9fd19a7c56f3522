"""LRU eviction under quota on replicas: two real `maestro coordinator serve` replicas with
`upstream_eviction` (the default), Debian's redis-server (recency, sizes, usage) and nginx (the blob
upstream) on loopback. A tenant at its quota loses its least recently used entries, whichever
replica wrote or read them, instead of getting 507."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from coord_procs import (
    Nginx,
    Redis,
    Replica,
    add_tenant,
    bearer,
    http,
    needs_nginx,
    needs_redis,
    run_replicas,
    token,
)

from maestro.coordinator.blobs import upstream_path
from maestro.coordinator.models import Role
from maestro.coordinator.records import TenantRecord

pytestmark = [needs_redis, needs_nginx]

QUOTA = 1_000_000
BLOB = 300_000
FLUSH_S = 1.0  # eviction.FLUSH_EVERY_S: how stale another replica's view of recency may be


@dataclass
class Cluster:
    redis: Redis
    nginx: Nginx
    a: Replica
    b: Replica


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("evictreplicas")
    with run_replicas(tmp) as r:  # upstream_eviction is on by default
        yield Cluster(r.redis, r.nginx, r.a, r.b)


_COUNTER = itertools.count()


async def _tenant(url: str, name: str, **policy: Any) -> tuple[TenantRecord, str]:
    return await add_tenant(url, name, Role.ADMIN, "bootstrap", quota_bytes=QUOTA, policy=policy)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _put(replica: Replica, tenant: str, tok: str, blob: bytes) -> int:
    url = f"{replica.base}/{tenant}/cas/{_sha(blob)}"
    return http("PUT", url, data=blob, headers=bearer(tok))[0]


def _get(replica: Replica, tenant: str, tok: str, blob: bytes) -> int:
    status, body, _ = http("GET", f"{replica.base}/{tenant}/cas/{_sha(blob)}", headers=bearer(tok))
    assert status != 200 or body == blob
    return status


def _usage(replica: Replica, tenant: str, tok: str) -> dict[str, Any]:
    status, body, _ = http("GET", f"{replica.base}/v1/tenants/{tenant}", headers=bearer(tok))
    assert status == 200, body
    result: dict[str, Any] = json.loads(body)
    return result


def _upstream_file(cluster: Cluster, tenant: TenantRecord, blob: bytes) -> Path:
    return cluster.nginx.root / "cache" / upstream_path(tenant, "cas", bytes.fromhex(_sha(blob)))


def _evicted_bytes(replica: Replica, tenant: str) -> float:
    _, body, _ = http("GET", f"{replica.base}/metrics")
    for line in body.decode().splitlines():
        if line.startswith("maestro_coordinator_evicted_bytes_total{") and f'"{tenant}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_full_tenant_loses_its_least_recently_used_entries_across_replicas(
    cluster: Cluster,
) -> None:
    name = f"team{next(_COUNTER)}"
    tenant, key = asyncio.run(_tenant(cluster.redis.url, name))
    a, b = cluster.a, cluster.b
    tok = token(a.base, key)
    blobs = [os.urandom(BLOB) for _ in range(5)]
    # three fit (900,000 of 1,000,000); written through both replicas
    assert [_put(r, name, tok, blob) for r, blob in zip((a, b, a), blobs[:3], strict=True)] == [
        200
    ] * 3
    # blob 0, the oldest write, is read through B: now blob 1 is the least recently used
    assert _get(b, name, tok, blobs[0]) == 200
    time.sleep(FLUSH_S + 0.5)  # B's note of that read reaches Redis
    # the fourth needs room: A evicts blob 1 (not blob 0, read more recently through B)
    assert _put(a, name, tok, blobs[3]) == 200
    assert _get(a, name, tok, blobs[1]) == 404
    assert _get(b, name, tok, blobs[1]) == 404
    assert not _upstream_file(cluster, tenant, blobs[1]).exists()  # deleted upstream too
    for blob in (blobs[2], blobs[3], blobs[0]):  # read in this order: blob 2 is now the oldest
        assert _get(b, name, tok, blob) == 200
    usage = _usage(b, name, tok)
    assert usage["used_bytes"] == 3 * BLOB and usage["cas_entries"] == 3, usage
    assert _evicted_bytes(a, name) == BLOB
    # and again through B, whose own reads count at once

    assert _put(b, name, tok, blobs[4]) == 200
    assert _get(a, name, tok, blobs[2]) == 404
    assert _usage(a, name, tok)["used_bytes"] == 3 * BLOB


def test_no_eviction_when_the_policy_says_so_or_the_entry_cannot_fit(cluster: Cluster) -> None:
    name = f"keep{next(_COUNTER)}"
    _, key = asyncio.run(_tenant(cluster.redis.url, name, evict=False))
    a, b = cluster.a, cluster.b
    tok = token(b.base, key)
    blobs = [os.urandom(BLOB) for _ in range(4)]
    assert [_put(a, name, tok, blob) for blob in blobs[:3]] == [200] * 3
    assert _put(b, name, tok, blobs[3]) == 507
    assert all(_get(a, name, tok, blob) == 200 for blob in blobs[:3])

    name = f"small{next(_COUNTER)}"
    _, key = asyncio.run(_tenant(cluster.redis.url, name))
    tok = token(a.base, key)
    assert _put(a, name, tok, blobs[0]) == 200
    too_big = os.urandom(QUOTA + 1)
    status, body, _ = http(
        "PUT", f"{a.base}/{name}/cas/{_sha(too_big)}", data=too_big, headers=bearer(tok)
    )
    assert status == 507, body
    assert _get(b, name, tok, blobs[0]) == 200  # nothing was evicted for it
