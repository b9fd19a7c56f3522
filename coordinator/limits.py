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
import contextlib
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


REFILL_WAIT_S = 0.25
"""A request that finds its replica's lease and credit both spent waits at most this long for
the reservation in flight (then it is let through, as when the store fails)."""
FORCE_LIMIT = 1 << 31
"""The limit passed to the `limits` scripts to count hits already served, whatever the count."""


@dataclass(slots=True, eq=False)
class _Lease:
    left: int
    until: float
    size: int = 1
    owed: int = 0
    """Hits served on credit since the last reservation: the next one counts them too."""
    sending: int = 0
    """Hits served on credit that the reservation in flight counts."""
    refill: asyncio.Task[None] | None = None
    """The reservation in flight (at most one per limit key)."""


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
        self._refills: set[asyncio.Task[None]] = set()
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
        for task in list(self._refills):
            task.cancel()
        await asyncio.gather(*self._refills, return_exceptions=True)
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
        hits (1/`LEASE_DIVISOR` of the limit, capped) in one shared hit of that cost, then spends
        it locally for up to a quarter of the limit's window.

        A lease of more than one hit (limits of at least 2 `LEASE_DIVISOR`, through the
        pipeline) is renewed **in the background**: once half of it is spent, one reservation
        per limit key is sent while requests go on spending the rest, and a request that finds
        it spent before the answer is served **on credit**, counted by the next reservation.
        A reservation Redis refuses is retried as a single hit; refused again, the hits served
        on credit are counted anyway (the shared counter then holds every request served, so
        the tenant is refused until its window has room for them) and the limit is refused here
        for 1/`LEASE_DIVISOR` of its window. When that time is up, the next request is refused
        while one reservation asks again in the background. So a request of such a limit does
        not await Redis: it may be refused a lease's worth early, and served at most one lease
        per replica late (the credit, `_Lease.owed`). Only a replica that serves a lease and
        its credit within one round trip makes the next requests wait for the reservation in
        flight (one for all of them, at most `REFILL_WAIT_S`); in shadow mode the credit has
        no bound (every request is served anyway) and nothing waits.

        Limits under 2 `LEASE_DIVISOR` (leases of one hit) and byte allowances (cost > 1)
        are counted exactly, one awaited shared hit per request, as is a lease taken without
        the pipeline."""
        now = time.monotonic()
        allowed: list[bool | None] = []
        asks: list[_Check] = []
        where: list[int] = []
        waits: list[int] = []
        for i, check in enumerate(checks):
            _, limiter, item, ids, cost = check
            key = item.key_for(*ids)
            if cost == 1 and self._refused and self._refused.get(key, 0.0) > now:
                allowed.append(False)  # refused moments ago: still no room, no round trip
                continue
            size = cost
            if cost == 1:
                cap = MAX_MOVING_LEASE if limiter is self._moving else MAX_SLIDING_LEASE
                size = max(1, min(cap, item.amount // LEASE_DIVISOR))
            if cost == 1 and size > 1 and self._pipeline is not None:
                spent = self._spend(key, check, size, now)
                allowed.append(spent)
                if spent is None:
                    waits.append(i)
                continue
            lease = self._leases.get(key) if cost == 1 else None
            if lease is not None and lease.left > 0 and lease.until > now:
                lease.left -= 1
                allowed.append(True)
                continue
            allowed.append(None)
            asks.append((check[0], limiter, item, ids, size))
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
                        size - 1, now + item.get_expiry() * LEASE_WINDOW_FRACTION, size
                    )
                elif not ok:
                    # a tenant far over a limit would otherwise cost a round trip (two: the
                    # lease, then the single hit) per request; it is refused here for a
                    # 1/LEASE_DIVISOR of the window instead (early, never late, as a lease)
                    self._refused[item.key_for(*ids)] = now + item.get_expiry() / LEASE_DIVISOR
        for i in waits:  # credit spent too: wait (bounded) for the reservation in flight
            allowed[i] = await self._wait_for_lease(checks[i])
        if len(self._leases) > MAX_LEASES:
            self._leases = {
                k: v for k, v in self._leases.items() if v.until > now or v.refill or v.owed
            }
        if len(self._refused) > MAX_LEASES:
            self._refused = {k: v for k, v in self._refused.items() if v > now}
        return [bool(ok) for ok in allowed]

    async def _wait_for_lease(self, check: _Check) -> bool:
        """Decide once the reservations in flight answer, for at most `REFILL_WAIT_S`; past
        that the request is let through (as when the store fails) but still counted, by the
        next reservation."""
        item = check[2]
        key = item.key_for(*check[3])
        deadline = time.monotonic() + REFILL_WAIT_S
        while True:
            lease = self._leases.get(key)
            if lease is None or lease.refill is None:
                spent = self._spend(key, check, lease.size if lease else 2, time.monotonic())
                return True if spent is None else spent
            left = deadline - time.monotonic()
            if left <= 0:
                lease.owed += 1
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(lease.refill), left)
            spent = self._spend(key, check, lease.size, time.monotonic())
            if spent is not None:
                return spent

    def _spend(self, key: str, check: _Check, size: int, now: float) -> bool | None:
        """One hit of a renewed-in-the-background lease, decided here: True (a leased hit or
        credit), False (refused: the limit had no room at the last ask), None (lease and
        credit spent, a reservation on its way: wait for it)."""
        item = check[2]
        lease = self._leases.get(key)
        if lease is None:
            lease = self._leases[key] = _Lease(0, 0.0, size)
        lease.size = size
        refused_until = self._refused.get(key)
        if refused_until is not None:  # refused, and 1/LEASE_DIVISOR of the window is up
            if now - refused_until < item.get_expiry() / LEASE_DIVISOR:
                # still pressing on: refused (early, never late) while one reservation asks
                if lease.refill is None:
                    self._start_refill(key, check, lease)
                return False
            del self._refused[key]  # quiet since: asked again as a new limit would be
        if lease.left > 0 and lease.until > now:
            lease.left -= 1
            if lease.left <= size // 2 and lease.refill is None:
                self._start_refill(key, check, lease)
            return True
        if lease.owed + lease.sending < size or self.mode == "shadow":  # shadow: served anyway
            lease.owed += 1
            if lease.refill is None:
                self._start_refill(key, check, lease)
            return True
        return None if lease.refill is not None else True

    def _start_refill(self, key: str, check: _Check, lease: _Lease) -> None:
        task = asyncio.get_running_loop().create_task(self._refill(key, check, lease))
        lease.refill = task
        self._refills.add(task)
        task.add_done_callback(self._refills.discard)

    async def _refill(self, key: str, check: _Check, lease: _Lease) -> None:
        """Reserve the next lease plus the hits served on credit, in the background."""
        rule, limiter, item, ids, _ = check
        owed, lease.owed = lease.owed, 0
        lease.sending = owed
        try:
            size = lease.size
            got = size
            (ok,) = await self._hit_many([(rule, limiter, item, ids, size + owed)])
            if not ok:  # near the limit: one hit (held for the next request) and the credit
                got = 1
                (ok,) = await self._hit_many([(rule, limiter, item, ids, 1 + owed)])
            if not ok:
                got = 0
                if owed:  # served already: counted, so the window makes room for them
                    await self._hit_many([(rule, limiter, item, ids, owed)], force=True)
                    self.metrics.overdraft.labels(rule).inc(owed)
            now = time.monotonic()
            if got:
                kept = lease.left if lease.until > now else 0
                lease.left = kept + got
                lease.until = now + item.get_expiry() * LEASE_WINDOW_FRACTION
                self._refused.pop(key, None)
            else:
                lease.left = 0
                self._refused[key] = now + item.get_expiry() / LEASE_DIVISOR
                if self.mode == "enforce":  # the advice for the refusals that follow
                    await self._ask_retry(limiter, item, ids)
        except Exception as exc:  # the store failed: what was served on credit is let go
            self.metrics.limiter_errors.inc()
            log.debug("rate limit reservation failed, requests let through: %r", exc)
        finally:
            lease.refill = None
            lease.sending = 0
        if lease.owed and (lease.left > 0 or key not in self._refused):
            self._start_refill(key, check, lease)  # credit taken meanwhile: count it now

    async def _hit_many(self, checks: list[_Check], *, force: bool = False) -> list[bool]:
        if self._pipeline is not None:
            return await self._hit_pipelined(self._pipeline, checks, force=force)
        return list(
            await asyncio.gather(
                *(limiter.hit(item, *ids, cost=cost) for _, limiter, item, ids, cost in checks)
            )
        )

    async def _hit_pipelined(
        self, bridge: RedispyBridge, checks: list[_Check], *, force: bool = False
    ) -> list[bool]:
        """The same hits as `limiter.hit` (the `limits` library's own Lua scripts and keys),
        sent as one pipeline of EVALSHA (:func:`evalsha_all`): one round trip to Redis per
        request instead of one per limit, and no task per check. `force`: counted whatever
        the count (hits already served), by passing the scripts a limit nothing reaches."""
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
                        [now, FORCE_LIMIT if force else item.amount, item.get_expiry(), cost],
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
                        [FORCE_LIMIT if force else item.amount, item.get_expiry(), cost],
                    )
                )
        return [bool(ok) for ok in await evalsha_all(client, commands)]

    async def _retry_after(
        self, limiter: RateLimiter, item: RateLimitItem, ids: tuple[str, ...]
    ) -> float:
        key = item.key_for(*ids)
        now = time.monotonic()
        known = self._retry_at.get(key)
        lease = self._leases.get(key)
        if lease is not None and lease.size > 1 and self._pipeline is not None:
            # decided here (reservations in the background): the advice their refusal read,
            # else the time until the next one asks
            if known is not None and known > now:
                return max(0.05, known - now)
            return max(0.05, item.get_expiry() / LEASE_DIVISOR)
        if known is not None and self._refused.get(key, 0.0) > now and known > now:
            return max(0.05, known - now)  # advised moments ago: no round trip per refusal
        return await self._ask_retry(limiter, item, ids)

    async def _ask_retry(
        self, limiter: RateLimiter, item: RateLimitItem, ids: tuple[str, ...]
    ) -> float:
        """When the limit has room again, as Redis says (kept for the refusals that follow)."""
        now = time.monotonic()
        try:
            stats = await limiter.get_window_stats(item, *ids)
        except Exception:
            return float(item.get_expiry())
        retry = min(float(item.get_expiry()), max(0.05, stats.reset_time - self._clock()))
        if self._concurrent:
            if len(self._retry_at) > MAX_LEASES:
                self._retry_at = {k: v for k, v in self._retry_at.items() if v > now}
            self._retry_at[item.key_for(*ids)] = now + retry
        return retry


def _sustained(rate_per_s: float) -> RateLimitItem:
    amount = max(1, math.ceil(rate_per_s * SUSTAINED_WINDOW_S))
    return RateLimitItemPerSecond(amount, SUSTAINED_WINDOW_S, namespace="rate")
