"""Rate-limit checks in Redis take one round trip per request (a pipeline of the `limits`
library's own scripts) and decide exactly as the per-limit calls do; a real redis-server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from coord_procs import needs_redis, run_redis
from limits.aio.storage import RedisStorage
from prometheus_client import CollectorRegistry
from redis.asyncio.connection import Connection

from maestro.coordinator.admission import FairnessMetrics, Refusal
from maestro.coordinator.limits import RateLimits
from maestro.coordinator.tenancy import TenantPolicy

pytestmark = [needs_redis]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with run_redis(tmp_path_factory.mktemp("redis")) as redis:
        yield redis.url


def _limits(url: str, prefix: str, *, pipelined: bool = True) -> RateLimits:
    storage = RedisStorage("async+" + url, implementation="redispy", key_prefix=prefix)
    limits = RateLimits(
        storage,
        mode="enforce",
        metrics=FairnessMetrics(CollectorRegistry()),
        global_rate_per_s=2.0,
        token_rate_per_s=1.5,
    )
    if not pipelined:
        limits._pipeline = None  # the per-limit calls, as before
    return limits


async def _decisions(limits: RateLimits, policy: TenantPolicy) -> list[str]:
    out = []
    for i in range(30):
        try:
            await limits.check("acme", f"k{i % 2}", policy, upload_bytes=300 * (i % 3))
            out.append("ok")
        except Refusal as refusal:
            out.append(refusal.rule)
    return out


async def test_pipelined_checks_decide_like_one_call_per_limit(redis_url: str) -> None:
    policy = TenantPolicy(burst=12, rate_per_s=2.5, upload_bytes_per_day=3000)
    suffix = str(time.time_ns())
    pipelined = _limits(redis_url, "p" + suffix)
    separate = _limits(redis_url, "s" + suffix, pipelined=False)
    try:
        assert pipelined._pipeline is not None
        got, want = await _decisions(pipelined, policy), await _decisions(separate, policy)
    finally:
        await pipelined.close()
        await separate.close()
    assert got == want
    assert "ok" in got and len(set(got)) > 2, got  # several limits took part


async def test_a_decision_is_one_round_trip(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = _limits(redis_url, "rt" + str(time.time_ns()))
    policy = TenantPolicy(burst=1000, rate_per_s=1000.0, upload_bytes_per_day=10**9)
    sends: list[int] = []
    original = Connection.send_packed_command

    async def counted(self: Connection, command: Any, check_health: bool = True) -> None:
        sends.append(1)
        await original(self, command, check_health)

    try:
        await limits.check("acme", "k", policy, upload_bytes=10)  # loads the scripts once
        monkeypatch.setattr(Connection, "send_packed_command", counted)
        await limits.check("acme", "k", policy, upload_bytes=10)  # five limits
    finally:
        await limits.close()
    assert len(sends) == 1  # was one per limit (five)


async def test_scripts_flushed_from_redis_are_reloaded_without_counting_twice(
    redis_url: str,
) -> None:
    import redis.asyncio

    limits = _limits(redis_url, "fl" + str(time.time_ns()))
    policy = TenantPolicy(burst=3, rate_per_s=100.0)
    admin = redis.asyncio.Redis.from_url(redis_url)
    try:
        await limits.check("acme", "k", policy)
        await admin.script_flush()  # a restarted or failed-over Redis has no scripts
        await limits.check("acme", "k", policy)
        await limits.check("acme", "k", policy)
        with pytest.raises(Refusal) as refused:
            await limits.check("acme", "k", policy)
        assert refused.value.rule == "rate.tenant_burst"
    finally:
        await admin.aclose()
        await limits.close()


async def test_a_lease_serves_later_requests_without_a_round_trip(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = _limits(redis_url, "ls" + str(time.time_ns()))
    limits._global = limits._token = None
    policy = TenantPolicy(burst=200, rate_per_s=100.0)  # leases of 10 and 50 hits
    sends: list[int] = []
    original = Connection.send_packed_command

    async def counted(self: Connection, command: Any, check_health: bool = True) -> None:
        sends.append(1)
        await original(self, command, check_health)

    try:
        await limits.check("acme", "k", policy)  # loads the scripts, takes the leases
        monkeypatch.setattr(Connection, "send_packed_command", counted)
        for _ in range(9):
            await limits.check("acme", "k", policy)
        assert sends == []  # before: one round trip per request
        await limits.check("acme", "k", policy)  # the burst lease is spent: a new one
        assert len(sends) == 1
    finally:
        await limits.close()


async def test_two_replicas_leasing_one_limit_never_pass_it(redis_url: str) -> None:
    prefix = "two" + str(time.time_ns())
    replicas = [_limits(redis_url, prefix), _limits(redis_url, prefix)]
    policy = TenantPolicy(burst=40)  # leases of 2
    served = 0
    try:
        for limits in replicas:
            limits._global = limits._token = None
        for i in range(60):
            try:
                await replicas[i % 2].check("acme", "k", policy)
                served += 1
            except Refusal:
                pass
    finally:
        for limits in replicas:
            await limits.close()
    # early by at most a lease per replica, never late
    assert 40 - 2 * 1 <= served <= 40


async def test_a_tenant_over_its_limit_is_refused_without_a_round_trip_per_request(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = _limits(redis_url, "over" + str(time.time_ns()))
    limits._global = limits._token = None
    # 20 per 10 s, leases of 1: every hit asks Redis until refused; then refused here for 0.5 s
    policy = TenantPolicy(rate_per_s=2.0)
    sends: list[int] = []
    original = Connection.send_packed_command

    async def counted(self: Connection, command: Any, check_health: bool = True) -> None:
        sends.append(1)
        await original(self, command, check_health)

    try:
        for _ in range(20):
            await limits.check("acme", "k", policy)
        monkeypatch.setattr(Connection, "send_packed_command", counted)
        with pytest.raises(Refusal) as first:
            await limits.check("acme", "k", policy)
        asked = len(sends)
        assert asked >= 1
        for _ in range(30):  # a CI farm far over its limit, within 1/20 of the window
            with pytest.raises(Refusal) as again:
                await limits.check("acme", "k", policy)
            assert again.value.rule == "rate.tenant"
            assert 0 < again.value.retry_after_s <= first.value.retry_after_s
        assert len(sends) == asked  # before: one or two round trips per refused request
    finally:
        await limits.close()
