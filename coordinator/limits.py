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
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import (
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from .admission import FairnessMetrics, Refusal
from .tenancy import TenantPolicy

if TYPE_CHECKING:
    from .settings import Settings

log = logging.getLogger(__name__)

SUSTAINED_WINDOW_S = 10
Mode = Literal["shadow", "enforce"]


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
        self._warned = 0.0
        self._concurrent = not isinstance(storage, MemoryStorage)
        """Redis: the checks' round trips overlap."""

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
            storage = MemoryStorage()
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
    ) -> list[tuple[str, RateLimiter, RateLimitItem, tuple[str, ...], int]]:
        checks: list[tuple[str, RateLimiter, RateLimitItem, tuple[str, ...], int]] = []
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
                allowed = await asyncio.gather(
                    *(limiter.hit(item, *ids, cost=cost) for _, limiter, item, ids, cost in checks)
                )
            else:  # in memory nothing suspends: no task per check, no trip through the loop
                allowed = [
                    await limiter.hit(item, *ids, cost=cost)
                    for _, limiter, item, ids, cost in checks
                ]
        except Exception as exc:
            self.metrics.limiter_errors.inc()
            now = self._clock()
            if now - self._warned > 10:
                self._warned = now
                log.warning("rate limit store failed, requests let through: %r", exc)
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

    async def _retry_after(
        self, limiter: RateLimiter, item: RateLimitItem, ids: tuple[str, ...]
    ) -> float:
        try:
            stats = await limiter.get_window_stats(item, *ids)
        except Exception:
            return float(item.get_expiry())
        return min(float(item.get_expiry()), max(0.05, stats.reset_time - self._clock()))


def _sustained(rate_per_s: float) -> RateLimitItem:
    amount = max(1, math.ceil(rate_per_s * SUSTAINED_WINDOW_S))
    return RateLimitItemPerSecond(amount, SUSTAINED_WINDOW_S, namespace="rate")
