"""Scale-out with real processes: two `maestro coordinator serve` replicas sharing one Debian
redis-server (keys, revocation, quotas, usage, token secret) and one Debian nginx WebDAV upstream
(blobs), all on loopback. Plus the upstream-corruption fault: detected, never served."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

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

from maestro.coordinator.auth import new_key
from maestro.coordinator.blobs import upstream_path
from maestro.coordinator.models import Role
from maestro.coordinator.records import TenantRecord
from maestro.coordinator.state import RedisState

pytestmark = [needs_redis, needs_nginx, pytest.mark.slow]

QUOTA = 1_000_000


@dataclass
class Cluster:
    redis: Redis
    nginx: Nginx
    a: Replica
    b: Replica
    tenants: dict[str, TenantRecord] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    """tenant name -> its admin (team*) or read-write (other*) key"""


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One Redis, one nginx, two replicas for the module (processes take seconds to start);
    each test gets its own tenants."""
    with run_replicas(tmp_path_factory.mktemp("scaleout")) as r:
        yield Cluster(r.redis, r.nginx, r.a, r.b)


_COUNTER = itertools.count()


@dataclass
class Tenants:
    cluster: Cluster
    team: str
    other: str

    @property
    def a(self) -> Replica:
        return self.cluster.a

    @property
    def b(self) -> Replica:
        return self.cluster.b

    @property
    def admin_key(self) -> str:
        return self.cluster.keys[self.team]

    @property
    def other_key(self) -> str:
        return self.cluster.keys[self.other]


@pytest.fixture
def cluster(servers: Cluster) -> Tenants:
    n = next(_COUNTER)
    team, other = f"team{n}", f"other{n}"
    for name, role, quota in ((team, Role.ADMIN, QUOTA), (other, Role.READ_WRITE, None)):
        # no eviction: the quota tests see a full tenant refused (507), counted across replicas
        record, key = asyncio.run(
            add_tenant(
                servers.redis.url,
                name,
                role,
                "bootstrap",
                quota_bytes=quota,
                policy={"evict": False},
            )
        )
        servers.tenants[name], servers.keys[name] = record, key
    return Tenants(servers, team, other)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _create_key(replica: Replica, tenant: str, admin_token: str, role: str) -> dict[str, str]:
    status, body, _ = http(
        "POST",
        f"{replica.base}/v1/tenants/{tenant}/keys",
        data=json.dumps({"role": role, "label": "ci"}).encode(),
        headers={**bearer(admin_token), "Content-Type": "application/json"},
    )
    assert status == 201, body
    created = json.loads(body)
    return {"api_key": created["api_key"], "key_id": created["key"]["key_id"]}


def test_revocation_through_a_is_refused_by_b_at_once(cluster: Tenants) -> None:
    a, b = cluster.a, cluster.b
    admin_a = token(a.base, cluster.admin_key)  # the token secret is shared through Redis
    key = _create_key(a, cluster.team, admin_a, "read-write")
    tok_b = token(b.base, key["api_key"])
    url_b = f"{b.base}/{cluster.team}/cas/{sha(b'nothing')}"
    assert http("GET", url_b, headers=bearer(tok_b))[0] == 404
    assert http("GET", url_b, headers=bearer(key["api_key"]))[0] == 404
    # B accepts a token minted by A
    assert http("GET", url_b, headers=bearer(token(a.base, key["api_key"])))[0] == 404

    status, body, _ = http(
        "DELETE",
        f"{a.base}/v1/tenants/{cluster.team}/keys/{key['key_id']}",
        headers=bearer(admin_a),
    )
    assert status == 200 and json.loads(body)["revoked_at"], body
    # the very next request on the other replica is refused: token and key alike
    assert http("GET", url_b, headers=bearer(tok_b))[0] == 401
    assert http("GET", url_b, headers=bearer(key["api_key"]))[0] == 401
    status, _, _ = http(
        "POST",
        f"{b.base}/v1/token",
        data=json.dumps({"api_key": key["api_key"]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 401
    # another tenant's admin cannot revoke team's keys (and learns nothing about them)
    other = token(b.base, cluster.other_key)
    status, _, _ = http(
        "DELETE", f"{b.base}/v1/tenants/{cluster.team}/keys/{key['key_id']}", headers=bearer(other)
    )
    assert status == 403


def test_quota_is_counted_across_replicas(cluster: Tenants) -> None:
    a, b = cluster.a, cluster.b
    admin = token(a.base, cluster.admin_key)
    blobs = [os.urandom(300_000) for _ in range(4)]
    statuses = []
    for i, blob in enumerate(blobs):
        replica = a if i % 2 == 0 else b
        statuses.append(
            http(
                "PUT",
                f"{replica.base}/{cluster.team}/cas/{sha(blob)}",
                data=blob,
                headers=bearer(admin),
            )[0]
        )
    assert statuses == [200, 200, 200, 507]  # 3 * 300,000 fit in 1,000,000; the 4th does not
    # a re-upload of a present blob is free, on either replica
    assert (
        http(
            "PUT",
            f"{b.base}/{cluster.team}/cas/{sha(blobs[0])}",
            data=blobs[0],
            headers=bearer(admin),
        )[0]
        == 200
    )
    for replica in (a, b):
        status, body, _ = http(
            "GET", f"{replica.base}/v1/tenants/{cluster.team}", headers=bearer(admin)
        )
        assert status == 200, body
        info = json.loads(body)
        assert info["used_bytes"] == 900_000 and info["cas_entries"] == 3, info
    _, metrics, _ = http("GET", f"{b.base}/metrics")
    assert (
        f'maestro_coordinator_quota_rejections_total{{tenant="{cluster.team}"}} 1.0'.encode()
        in metrics
    )


def test_blob_put_via_a_is_a_hit_via_b(cluster: Tenants) -> None:
    a, b = cluster.a, cluster.b
    admin = token(a.base, cluster.admin_key)
    for size in (10, 70_000):
        blob = os.urandom(size)
        url = f"/{cluster.team}/cas/{sha(blob)}"
        assert http("GET", b.base + url, headers=bearer(admin))[0] == 404
        assert http("PUT", a.base + url, data=blob, headers=bearer(admin))[0] == 200
        status, body, headers = http("GET", b.base + url, headers=bearer(admin))
        assert status == 200 and body == blob
        status, _, headers = http("HEAD", b.base + url, headers=bearer(admin))
        assert status == 200 and int(headers["Content-Length"]) == size
        # the other tenant sees nothing, on either replica, even with the right digest
        other = token(b.base, cluster.other_key)
        assert (
            http("GET", f"{b.base}/{cluster.other}/cas/{sha(blob)}", headers=bearer(other))[0]
            == 404
        )
        assert http("GET", b.base + url, headers=bearer(other))[0] == 403
    # a digest mismatch stores nothing upstream
    files_before = sorted(p for p in cluster.cluster.nginx.root.rglob("*") if p.is_file())
    assert (
        http("PUT", f"{a.base}/{cluster.team}/cas/{sha(b'x')}", data=b"y", headers=bearer(admin))[0]
        == 400
    )
    assert sorted(p for p in cluster.cluster.nginx.root.rglob("*") if p.is_file()) == files_before
    # the upstream never sees a client's digest
    names = {p.name for p in files_before}
    assert names and not any(n == sha(b"x") for n in names)


def _upstream_file(cluster: Cluster, tenant: str, kind: str, digest: str) -> Path:
    rel = upstream_path(cluster.cluster.tenants[tenant], kind, bytes.fromhex(digest))
    return cluster.cluster.nginx.root / "cache" / rel


def test_corrupt_upstream_blob_is_detected_and_never_served(cluster: Tenants) -> None:
    a, b = cluster.a, cluster.b
    admin = token(a.base, cluster.admin_key)
    blob = os.urandom(300_000)  # hashed in the pool
    small = os.urandom(100)  # hashed inline
    for data in (blob, small):
        digest = sha(data)
        assert (
            http("PUT", f"{a.base}/{cluster.team}/cas/{digest}", data=data, headers=bearer(admin))[
                0
            ]
            == 200
        )
        path = _upstream_file(cluster, cluster.team, "cas", digest)
        assert path.read_bytes() == data
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # rot on the upstream's disk
        status, body, _ = http(
            "GET", f"{b.base}/{cluster.team}/cas/{digest}", headers=bearer(admin)
        )
        assert status == 404, body
        assert not path.exists()  # deleted upstream: the next PUT heals it
        assert (
            http("PUT", f"{a.base}/{cluster.team}/cas/{digest}", data=data, headers=bearer(admin))[
                0
            ]
            == 200
        )
        assert (
            http("GET", f"{b.base}/{cluster.team}/cas/{digest}", headers=bearer(admin))[1] == data
        )
    log = b.log.read_text()
    assert "corrupt cas entry" in log and "not served" in log
    _, metrics, _ = http("GET", f"{b.base}/metrics")
    assert (
        f'maestro_coordinator_corrupt_entries_total{{kind="cas",tenant="{cluster.team}"}} 2.0'
    ).encode() in metrics
    # a truncated upstream file (same name, fewer bytes) is refused too
    digest = sha(blob)
    _upstream_file(cluster, cluster.team, "cas", digest).write_bytes(blob[:1000])
    assert http("GET", f"{a.base}/{cluster.team}/cas/{digest}", headers=bearer(admin))[0] == 404


def test_corrupt_upstream_ac_record_is_never_served(cluster: Tenants) -> None:
    # team is validated: make a raw-AC tenant through the shared state
    async def add() -> tuple[TenantRecord, str]:
        state = RedisState.from_url(cluster.cluster.redis.url)
        try:
            tenant = await state.add_tenant("cc", raw_ac=True)
            key = new_key("cc", Role.READ_WRITE)
            await state.add_key(key.record)
            return tenant, key.plaintext
        finally:
            await state.close()

    tenant, key = asyncio.run(add())
    cluster.cluster.tenants["cc"] = tenant
    action = sha(b"action")
    url = f"/cc/ac/{action}"
    assert http("PUT", cluster.a.base + url, data=b"opaque value", headers=bearer(key))[0] == 200
    assert http("GET", cluster.b.base + url, headers=bearer(key))[1] == b"opaque value"
    path = _upstream_file(cluster, "cc", "ac", action)
    path.write_bytes(path.read_bytes()[:-1] + b"X")
    assert http("GET", cluster.b.base + url, headers=bearer(key))[0] == 404
    _, metrics, _ = http("GET", f"{cluster.b.base}/metrics")
    assert b'maestro_coordinator_corrupt_entries_total{kind="ac",tenant="cc"} 1.0' in metrics
