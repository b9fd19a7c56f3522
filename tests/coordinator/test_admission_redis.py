"""Rate-limit checks in Redis take one round trip per request (a pipeline of the `limits`
library's own scripts) and decide exactly as the per-limit calls do; leases of large limits are
renewed in the background, so those decisions never wait for Redis; a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
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


def _without_waiting(check: Coroutine[Any, Any, Any]) -> bool:
    """Run one decision to its end in a single step: True if it never suspended (waited for
    nothing, Redis included), False if it had to wait (then it is dropped)."""
    try:
        check.send(None)
    except StopIteration:
        return True
    except Refusal:
        return True
    check.close()
    return False


async def _settled(*replicas: RateLimits) -> None:
    """Until no background lease reservation is on its way."""
    for _ in range(100):
        pending = [t for limits in replicas for t in getattr(limits, "_refills", ())]
        if not pending:
            return
        await asyncio.gather(*pending, return_exceptions=True)


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
        await _settled(limits)  # the leases of burst and rate, reserved in the background
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
        await limits.check("acme", "k", policy)  # on credit; the leases are reserved meanwhile
        await _settled(limits)
        monkeypatch.setattr(Connection, "send_packed_command", counted)
        for _ in range(4):
            await limits.check("acme", "k", policy)
        await _settled(limits)
        assert sends == []  # before: one round trip per request
        await limits.check("acme", "k", policy)  # half the burst lease spent: the next one
        await _settled(limits)
        assert len(sends) == 1
    finally:
        await limits.close()


async def test_two_replicas_leasing_one_limit_pass_it_by_at_most_a_lease_each(
    redis_url: str,
) -> None:
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
    # early by at most a lease per replica; late by at most a lease of credit per replica
    assert 40 - 2 * 2 <= served <= 40 + 2 * 2


async def _hammer(
    replicas: list[RateLimits], tenant: str, policy: TenantPolicy, n: int, pause_s: float
) -> tuple[int, int, int]:
    """`n` decisions alternating between the replicas, each run in one step (see
    `_without_waiting`), the loop running the reservations every fifth: served, refused,
    waited."""
    served = refused = waited = 0
    for i in range(n):
        check = replicas[i % 2].check(tenant, "k", policy)
        try:
            check.send(None)
        except StopIteration:
            served += 1
        except Refusal:
            refused += 1
        else:
            check.close()
            waited += 1
        if i % 5 == 0:
            await asyncio.sleep(pause_s)
    return served, refused, waited


async def _counted(limits: RateLimits, tenant: str, policy: TenantPolicy) -> int:
    storage = limits.storage
    assert isinstance(storage, RedisStorage)
    item = limits._checks(tenant, None, policy, 0)[0][2]
    previous, _, current, _ = await storage.get_sliding_window(item.key_for("t", tenant), 10)
    return int(previous + current)


@pytest.mark.parametrize("mode", ["enforce", "shadow"])
async def test_decisions_do_not_wait_for_a_slow_redis_and_every_served_hit_is_counted(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """Two replicas, a Redis answering 20 ms late (a loaded host): a tenant well within large
    limits and a tenant far over its limit are decided without waiting for Redis; the
    replicas serve the limit late by at most a lease of credit each, and the shared counter
    holds every request served."""
    prefix = f"slow{mode}{time.time_ns()}"
    replicas = [_limits(redis_url, prefix), _limits(redis_url, prefix)]
    for limits in replicas:
        limits._global = limits._token = None
        limits.mode = "enforce" if mode == "enforce" else "shadow"
    roomy = TenantPolicy(burst=20_000, rate_per_s=1000.0)  # leases of 32 and 256
    tight = TenantPolicy(rate_per_s=40.0)  # 400 per 10 s, leases of 20
    original = Connection.send_packed_command

    async def slow(self: Connection, command: Any, check_health: bool = True) -> None:
        await asyncio.sleep(0.02)
        await original(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", slow)
    try:
        for limits in replicas:  # the scripts loaded, the first leases taken
            await limits.check("acme", "k", roomy)
        await _settled(*replicas)
        _, _, roomy_waited = await _hammer(replicas, "acme", roomy, 600, 0.002)
        # the tight tenant reaches its limit (here a request may wait while a replica
        # outruns its lease and credit within one round trip, enforce mode only) ...
        served = 0
        for i in range(500):
            try:
                await replicas[i % 2].check("busy", "k", tight)
                served += 1
            except Refusal:
                pass
        await _settled(*replicas)
        # ... and far over it (0.7 s: past the 0.5 s each refusal holds) nothing waits
        more, refused, waited = await _hammer(replicas, "busy", tight, 1000, 0.003)
        shadowed = sum(
            limits.metrics.shadow.labels("busy", "rate.tenant")._value.get() for limits in replicas
        )
        served += more
        await _settled(*replicas)
        counted = await _counted(replicas[0], "busy", tight)
    finally:
        for limits in replicas:
            await limits.close()
    assert roomy_waited == 0 and waited == 0
    if mode == "shadow":  # served anyway; each one counted or recorded as a would-be refusal
        assert served == 500 + 1000 and refused == 0
        assert counted >= 400 and served <= counted + shadowed and shadowed > 500
        return
    assert refused > 900
    # late by at most a lease of credit per replica; every hit served is counted, plus the
    # hits leased and not spent yet (at most a lease per replica)
    assert 400 - 2 * 20 <= served <= 400 + 2 * 20
    assert served <= counted <= served + 2 * 20
