"""Rate limits shared by two real replicas through one Debian redis-server (and nginx blobs):
a tenant's budget is one budget, whichever replica a request reaches."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator

import pytest
from coord_procs import (
    Replica,
    add_tenant,
    bearer,
    http,
    needs_nginx,
    needs_redis,
    run_replicas,
    token,
)

pytestmark = [needs_redis, needs_nginx, pytest.mark.slow]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Replica, Replica]]:
    with run_replicas(tmp_path_factory.mktemp("limits"), ("a", "b"), rate_limits="enforce") as r:
        yield r.redis.url, r.a, r.b


def test_a_tenant_rate_is_shared_by_both_replicas(pair: tuple[str, Replica, Replica]) -> None:
    url, a, b = pair
    _, key = asyncio.run(add_tenant(url, "shared", policy={"rate_per_s": 0.5}))  # 5 per 10 s
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
    _, other = asyncio.run(add_tenant(url, "bystander"))
    status, _, _ = http("GET", f"{a.base}/bystander/cas/{digest}", headers=bearer(other))
    assert status == 404
