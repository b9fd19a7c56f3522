"""Request-rate limits per tenant, per API key and global, and the daily upload allowance.

Built on the `limits` library: the per-second burst is a moving window (exact: no two windows
can be stitched into a double burst), sustained rates and the daily upload bytes are sliding
window counters (two counters per key: cheap in Redis, within a few percent of exact). With
`state_backend = "redis"` the counters live in the replicas' Redis, so a tenant's limit is one
limit across every replica (as Envoy's global rate limit service does); embedded, in memory.

`rate_limits = "shadow"` counts and logs what would be refused (metric
`maestro_coordinator_rate_limit_shadow`) and serves it; `"enforce"` refuses it with 429. A limit
store that does not answer lets requests through (counted in `rate_limit_errors`): the cache
must not go down because its limiter did.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import (
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from .admission import FairnessMetrics, Refusal
from .hardening import WarnEvery
from .redis_scripts import Eval, evalsha_all
from .tenancy import TenantPolicy

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from .settings import Settings

log = logging.getLogger(__name__)

SUSTAINED_WINDOW_S = 10
_Check = tuple[str, RateLimiter, RateLimitItem, tuple[str, ...], int]
"""(rule, limiter, limit, identifiers, cost)"""
LEASE_DIVISOR = 20
"""A replica leases at most 1/20 of a shared limit at a time (see `RateLimits._hit_leased`)."""
MAX_MOVING_LEASE = 32
"""A moving window keeps one Redis list entry per hit: leases of it stay small."""
MAX_SLIDING_LEASE = 256
LEASE_WINDOW_FRACTION = 0.25
MAX_LEASES = 10_000


@dataclass(slots=True)
class _Lease:
    left: int
    until: float


Mode = Literal["shadow", "enforce"]

SWEEP_EVERY_S = 1.0


class SweptMemoryStorage(MemoryStorage):
    """The `limits` library's in-memory storage with its expiry sweep made cheap.

    The library starts its sweep as a task at every hit once the previous one finished, and the
    sweep hops to a worker thread for each moving-window key (`asyncio.to_thread` around one
    bisect). Under a steady stream of requests it therefore runs back to back, costing the event
    loop a thread hand-off per key per turn and queueing behind upload hashing in the same pool.
    Here it runs inline, at most once per `SWEEP_EVERY_S`. Hits never depend on it: counters
    expire when read and a moving window compares entry times, so the sweep only frees memory.
    """

    _swept_at = 0.0

    async def _MemoryStorage__schedule_expiry(self) -> None:  # the library's private hook
        now = time.monotonic()
        if now - self._swept_at >= SWEEP_EVERY_S:
            self._swept_at = now
            self.sweep()

    def sweep(self) -> None:
        """Drop expired moving-window entries and counters (no await: atomic on the loop)."""
        now = time.time()
        for key, events in list(self.events.items()):
            lock = self.locks.get(key)
            if lock is not None and lock.locked():
                continue  # being changed: the next sweep takes it
            cutoff = bisect.bisect_left(events, -now, key=lambda event: -event.expiry)
            if cutoff:
                self.events[key] = events[:cutoff]
            else:
                self.events.pop(key, None)
                self.locks.pop(key, None)
        for key, at in list(self.expirations.items()):
            lock = self.locks.get(key)
            if at <= now and not (lock is not None and lock.locked()):
                self.storage.pop(key, None)
                self.expirations.pop(key, None)
                self.locks.pop(key, None)


class RateLimits:
    def __init__(
        self,
        storage: Storage,
        *,
        mode: Mode,
        metrics: FairnessMetrics,
        global_rate_per_s: float | None = None,
        token_rate_per_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.mode = mode
        self.metrics = metrics
        self._moving = MovingWindowRateLimiter(storage)
        self._sliding = SlidingWindowCounterRateLimiter(storage)
        self._global = _sustained(global_rate_per_s) if global_rate_per_s else None
        self._token = _sustained(token_rate_per_s) if token_rate_per_s else None
        self._clock = clock
        self._warn = WarnEvery(log, clock=clock)
        self._concurrent = not isinstance(storage, MemoryStorage)
        """Redis: the checks' round trips overlap."""
        self._leases: dict[str, _Lease] = {}
        """Hits taken from the shared counters and not yet spent, by limit key."""
        self._refused: dict[str, float] = {}
        """Limit key -> until when its hits are refused here without asking Redis again."""
        self._retry_at: dict[str, float] = {}
        """Limit key -> when it has room again, as last asked (enforce mode's advice)."""
        self._pipeline: RedispyBridge | None = None
        """Redis through redis-py: every check of a request in one round trip."""
        if isinstance(storage, RedisStorage) and isinstance(storage.bridge, RedispyBridge):
            self._pipeline = storage.bridge

    @classmethod
    def from_settings(cls, settings: Settings, metrics: FairnessMetrics) -> RateLimits:
        storage: Storage
        if settings.state_backend == "redis" and settings.redis_url:
            storage = RedisStorage(
                "async+" + settings.redis_url,
                implementation="redispy",
                key_prefix=settings.redis_prefix + "limits",
                socket_timeout=2.0,
                socket_connect_timeout=2.0,
                # checks run before admission bounds concurrency: room for a burst of them
                max_connections=1024,
            )
        else:
            storage = SweptMemoryStorage()
        mode: Mode = "enforce" if settings.rate_limits == "enforce" else "shadow"
        return cls(
            storage,
            mode=mode,
            metrics=metrics,
            global_rate_per_s=settings.global_rate_per_s,
            token_rate_per_s=settings.token_rate_per_s,
        )

    async def close(self) -> None:
        if isinstance(self.storage, RedisStorage):
            client = getattr(self.storage, "storage", None)
            close = getattr(client, "aclose", None)
            if close is not None:
                await close()

    def _checks(
        self, tenant: str, key_id: str | None, policy: TenantPolicy, upload_bytes: int
    ) -> list[_Check]:
        checks: list[_Check] = []
        if policy.burst is not None:
            burst: RateLimitItem = RateLimitItemPerSecond(policy.burst, 1, namespace="burst")
            checks.append(("rate.tenant_burst", self._moving, burst, ("t", tenant), 1))
        if policy.rate_per_s is not None:
            checks.append(
                ("rate.tenant", self._sliding, _sustained(policy.rate_per_s), ("t", tenant), 1)
            )
        if self._token is not None and key_id:
            checks.append(("rate.token", self._sliding, self._token, ("k", key_id), 1))
        if self._global is not None:
            checks.append(("rate.global", self._sliding, self._global, ("all",), 1))
        if upload_bytes and policy.upload_bytes_per_day is not None:
            item = RateLimitItemPerDay(policy.upload_bytes_per_day, 1, namespace="upload")
            checks.append(
                ("quota.upload_bytes_per_day", self._sliding, item, ("t", tenant), upload_bytes)
            )
        return checks

    async def check(
        self, tenant: str, key_id: str | None, policy: TenantPolicy, upload_bytes: int = 0
    ) -> list[Refusal]:
        """Count the request against every limit that applies; raise Refusal (enforce mode)
        for the first one exceeded, with the time until it has room again. In shadow mode,
        return what would have been refused (marked ``shadow``), for the policy to record."""
        checks = self._checks(tenant, key_id, policy, upload_bytes)
        shadowed: list[Refusal] = []
        if not checks:
            return shadowed
        try:
            if self._concurrent:
                allowed = await self._hit_leased(checks)
            else:  # in memory nothing suspends: no task per check, no trip through the loop
                allowed = [
                    await limiter.hit(item, *ids, cost=cost)
                    for _, limiter, item, ids, cost in checks
                ]
        except Exception as exc:
            self.metrics.limiter_errors.inc()
            self._warn.warning("rate limit store failed, requests let through: %r", exc)
            return shadowed
        for ok, (rule, limiter, item, ids, _) in zip(allowed, checks, strict=True):
            if ok:
                continue
            if self.mode == "shadow":
                self.metrics.shadow.labels(tenant, rule).inc()
                log.debug("shadow: %s would refuse a request of tenant %s", rule, tenant)
                # the window's length as advice: no extra round trip for a served request
                refusal = Refusal(
                    rule,
                    f"{rule}: limit {item} reached (shadow mode: served)",
                    float(item.get_expiry()),
                    tenant=tenant,
                    priority=policy.priority,
                    limit=str(item),
                )
                refusal.shadow = True
                shadowed.append(refusal)
                continue
            retry = await self._retry_after(limiter, item, ids)
            raise Refusal(
                rule,
                f"{rule}: limit {item} reached",
                retry,
                tenant=tenant,
                priority=policy.priority,
                limit=str(item),
            )
        return shadowed

    async def _hit_leased(self, checks: list[_Check]) -> list[bool]:
        """Shared limits without a round trip per request: a replica takes a **lease** of
        hits (1/`LEASE_DIVISOR` of the limit, capped) in one shared hit of that cost, then spends it
        locally for up to a quarter of the limit's window. The shared counter runs ahead of
        the requests served by at most a lease per replica (a tenant is refused early, never
        late); a lease that is refused is retried as a single hit, so near its limit a
        tenant is counted exactly. A limit that refuses is then refused here, without a round
        trip, for 1/`LEASE_DIVISOR` of its window. Byte allowances (cost > 1) are always hit
        directly."""
        now = time.monotonic()
        allowed: list[bool | None] = []
        asks: list[_Check] = []
        where: list[int] = []
        for i, (rule, limiter, item, ids, cost) in enumerate(checks):
            if cost == 1 and self._refused and self._refused.get(item.key_for(*ids), 0.0) > now:
                allowed.append(False)  # refused moments ago: still no room, no round trip
                continue
            lease = self._leases.get(item.key_for(*ids)) if cost == 1 else None
            if lease is not None and lease.left > 0 and lease.until > now:
                lease.left -= 1
                allowed.append(True)
                continue
            allowed.append(None)
            size = cost
            if cost == 1:
                cap = MAX_MOVING_LEASE if limiter is self._moving else MAX_SLIDING_LEASE
                size = max(1, min(cap, item.amount // LEASE_DIVISOR))
            asks.append((rule, limiter, item, ids, size))
            where.append(i)
        if asks:
            got = await self._hit_many(asks)
            retry = [j for j, ok in enumerate(got) if not ok and asks[j][4] > checks[where[j]][4]]
            if retry:  # near the limit: one hit, not a lease
                again = await self._hit_many([checks[where[j]] for j in retry])
                for j, ok in zip(retry, again, strict=True):
                    got[j] = ok
                    asks[j] = checks[where[j]]
            for j, ok in enumerate(got):
                allowed[where[j]] = ok
                _, _, item, ids, size = asks[j]
                if checks[where[j]][4] != 1:
                    continue
                if ok and size > 1:
                    self._leases[item.key_for(*ids)] = _Lease(
                        size - 1, now + item.get_expiry() * LEASE_WINDOW_FRACTION
                    )
                elif not ok:
                    # a tenant far over a limit would otherwise cost a round trip (two: the
                    # lease, then the single hit) per request; it is refused here for a
                    # 1/LEASE_DIVISOR of the window instead (early, never late, as a lease)
                    self._refused[item.key_for(*ids)] = now + item.get_expiry() / LEASE_DIVISOR
            if len(self._leases) > MAX_LEASES:
                self._leases = {k: v for k, v in self._leases.items() if v.until > now}
            if len(self._refused) > MAX_LEASES:
                self._refused = {k: v for k, v in self._refused.items() if v > now}
        return [bool(ok) for ok in allowed]

    async def _hit_many(self, checks: list[_Check]) -> list[bool]:
        if self._pipeline is not None:
            return await self._hit_pipelined(self._pipeline, checks)
        return list(
            await asyncio.gather(
                *(limiter.hit(item, *ids, cost=cost) for _, limiter, item, ids, cost in checks)
            )
        )

    async def _hit_pipelined(self, bridge: RedispyBridge, checks: list[_Check]) -> list[bool]:
        """The same hits as `limiter.hit` (the `limits` library's own Lua scripts and keys),
        sent as one pipeline of EVALSHA (:func:`evalsha_all`): one round trip to Redis per
        request instead of one per limit, and no task per check."""
        storage = self.storage
        assert isinstance(storage, RedisStorage)
        client = cast("Redis", bridge.get_connection())
        now = time.time()
        commands: list[Eval] = []  # the `limits` library's registered scripts
        for _, limiter, item, ids, cost in checks:
            key = item.key_for(*ids)
            if limiter is self._moving:
                commands.append(
                    (
                        bridge.lua_acquire_moving_window,
                        [bridge.prefixed_key(key)],
                        [now, item.amount, item.get_expiry(), cost],
                    )
                )
            else:
                commands.append(
                    (
                        bridge.lua_acquire_sliding_window,
                        [
                            bridge.prefixed_key(storage._previous_window_key(key)),
                            bridge.prefixed_key(storage._current_window_key(key)),
                        ],
                        [item.amount, item.get_expiry(), cost],
                    )
                )
        return [bool(ok) for ok in await evalsha_all(client, commands)]

    async def _retry_after(
        self, limiter: RateLimiter, item: RateLimitItem, ids: tuple[str, ...]
    ) -> float:
        key = item.key_for(*ids)
        now = time.monotonic()
        known = self._retry_at.get(key)
        if known is not None and self._refused.get(key, 0.0) > now and known > now:
            return max(0.05, known - now)  # advised moments ago: no round trip per refusal
        try:
            stats = await limiter.get_window_stats(item, *ids)
        except Exception:
            return float(item.get_expiry())
        retry = min(float(item.get_expiry()), max(0.05, stats.reset_time - self._clock()))
        if self._concurrent:
            if len(self._retry_at) > MAX_LEASES:
                self._retry_at = {k: v for k, v in self._retry_at.items() if v > now}
            self._retry_at[key] = now + retry
        return retry


def _sustained(rate_per_s: float) -> RateLimitItem:
    amount = max(1, math.ceil(rate_per_s * SUSTAINED_WINDOW_S))
    return RateLimitItemPerSecond(amount, SUSTAINED_WINDOW_S, namespace="rate")
