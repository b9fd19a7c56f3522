"""Rate limits shared by two real replicas through one Debian redis-server (and nginx blobs):
a tenant's budget is one budget, whichever replica a request reaches."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from coord_procs import (
    Replica,
    bearer,
    http,
    needs_nginx,
    needs_redis,
    run_nginx,
    run_redis,
    start_coordinator,
    stop,
    token,
)

from maestro.coordinator.auth import new_key
from maestro.coordinator.models import Role
from maestro.coordinator.records import TenantUpdate
from maestro.coordinator.state import RedisState

pytestmark = [needs_redis, needs_nginx, pytest.mark.slow]


async def _tenant(url: str, name: str, **policy: object) -> str:
    state = RedisState.from_url(url)
    try:
        await state.add_tenant(name)
        if policy:
            await state.update_tenant(name, TenantUpdate(policy_changes=policy))
        key = new_key(name, Role.READ_WRITE, "test")
        await state.add_key(key.record)
        return key.plaintext
    finally:
        await state.close()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Replica, Replica]]:
    tmp: Path = tmp_path_factory.mktemp("limits")
    with run_redis(tmp) as redis, run_nginx(tmp) as nginx:
        settings = {
            "state_backend": "redis",
            "redis_url": redis.url,
            "blob_backend": "http",
            "blob_upstream_url": nginx.url,
            "rate_limits": "enforce",
        }
        a = start_coordinator(tmp, "a", settings)
        b = start_coordinator(tmp, "b", settings)
        try:
            yield redis.url, a, b
        finally:
            stop(a.proc)
            stop(b.proc)


def test_a_tenant_rate_is_shared_by_both_replicas(pair: tuple[str, Replica, Replica]) -> None:
    url, a, b = pair
    key = asyncio.run(_tenant(url, "shared", rate_per_s=0.5))  # 5 requests per 10 s
    tokens = {a.base: token(a.base, key), b.base: token(b.base, key)}
    digest = hashlib.sha256(b"none").hexdigest()
    statuses = []
    for i in range(6):
        base = (a, b)[i % 2].base
        status, body, headers = http(
            "GET", f"{base}/shared/cas/{digest}", headers=bearer(tokens[base])
        )
        statuses.append(status)
    assert statuses == [404] * 5 + [429]
    answer = json.loads(body)
    assert answer["rule"] == "rate.tenant" and 0 < answer["retryAfterMs"] <= 10_000
    assert int(headers["Retry-After"]) >= 1
    # another tenant on the same replicas is untouched
    other = asyncio.run(_tenant(url, "bystander"))
    status, _, _ = http("GET", f"{a.base}/bystander/cas/{digest}", headers=bearer(other))
    assert status == 404
