"""A tenant's `max_concurrent` as one quota across every replica (Redis state).

Admission (admission.py) is per replica: each one owns its seats and fair queues, as APF's are
per API server. A tenant's concurrency quota is different: it is what the tenant may run at
once, so two replicas must not each admit `max_concurrent` of its requests. Embedded, the
admission's own per-tenant count is the whole truth; with replicas, `ClusterConcurrency` keeps
the count in Redis:

- ``<prefix>conc:<tenant>`` (hash): seats held, by replica id;
- ``<prefix>conc:<tenant>:lease`` (sorted set): when each replica's holding expires.

Taking seats is one Lua script (drop the holdings of replicas whose lease expired, sum the
rest, grant what fits), so the check and the grant are atomic across replicas. A replica renews
its leases every third of `lease_s` (and re-states its exact count, repairing a release that
was lost); a replica that dies stops renewing, and its seats come back within `lease_s`.
Releases are batched into one pipelined round trip per turn of the event loop, off the
request's path.

**Seats kept (leases of seats, as quota servers grant tokens in batches).** A replica keeps
the seats its requests released (and, while the quota is at most half used, takes 1/20 of it
more, at most 16, with the one it needs), so a tenant's next requests there take a seat with
no round trip, near its quota as far from it. Kept seats are counted in Redis, so in flight
never exceeds the quota; what they can cost is another replica's wait, bounded so:

- a replica refused a seat says so in Redis (``<prefix>conc:<tenant>:want``, a sorted set of
  replicas with a deadline, refreshed while its requests wait);
- every replica holding seats of a tenant reads that every `POLL_S` (one pipelined round trip
  for all its tenants, off the request's path) and, while another replica wants seats, gives
  its kept seats back at once and every released seat too;
- while other replicas want seats, the script grants a replica no more than its fair part of
  the quota (``ceil(limit / replicas wanting)``, counting what it holds), so seats move to the
  waiting replica instead of back to the one that just gave them up;
- kept seats unused for KEEP_SPARES_S go back anyway.

So a seat kept on one replica reaches a request waiting on another within about two polls.

A request that finds the quota full waits in a per-tenant FIFO; one task per waiting tenant
asks for seats again whenever this replica releases one and otherwise every `POLL_S` (a seat
freed on another replica is noticed within that). Redis unreachable: the request is let
through uncounted (as the rate limits do), so the cache does not go down with its limiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from .admission import FairnessMetrics, Refusal
from .hardening import WarnEvery
from .redis_scripts import evalsha_all

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

POLL_S = 0.05
"""Waiting tenants ask Redis for seats at least this often (a seat freed elsewhere), and
replicas holding seats look this often for another replica wanting them."""
WANT_S = 3 * POLL_S
"""A replica's wish for seats is forgotten this long after its last refused ask."""
SPARE_DIVISOR = 20
MAX_SPARES = 16
"""Far from its quota, a replica asks for 1/20 of a tenant's quota (at most 16 seats) more."""
KEEP_SPARES_S = 0.5
"""Kept seats unused this long go back to Redis."""

# KEYS: holdings hash, lease zset, want zset. ARGV: replica, limit, wanted, lease ms, spares
# wanted (given only while the quota stays at most half used), want ms. Returns the seats
# granted, the total held, and how many other replicas want seats.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[4])
for _, r in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  redis.call('HDEL', KEYS[1], r)
  redis.call('ZREM', KEYS[2], r)
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local others = redis.call('ZCARD', KEYS[3])
if redis.call('ZSCORE', KEYS[3], ARGV[1]) then others = others - 1 end
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
local limit = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local grant = math.min(wanted, limit - total)
if others > 0 then
  local mine = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
  grant = math.min(grant, math.ceil(limit / (others + 1)) - mine)
end
local spares = tonumber(ARGV[5])
if grant > 0 and others == 0 and spares > 0 and (total + grant + spares) * 2 <= limit then
  grant = grant + spares
end
if grant > 0 then
  redis.call('HINCRBY', KEYS[1], ARGV[1], grant)
  redis.call('ZADD', KEYS[2], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], lease * 2)
  redis.call('PEXPIRE', KEYS[2], lease * 2)
else
  grant = 0
end
if grant < wanted then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), ARGV[1])
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[6]) * 2)
else
  redis.call('ZREM', KEYS[3], ARGV[1])
end
return {grant, total + grant, others}
"""

# KEYS: want zset. ARGV: replica. How many other replicas want seats of the tenant.
_WANTS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local others = redis.call('ZCARD', KEYS[1])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then others = others - 1 end
return others
"""

# KEYS: holdings hash, lease zset. ARGV: replica, seats released.
_RELEASE = """
local left = redis.call('HINCRBY', KEYS[1], ARGV[1], -tonumber(ARGV[2]))
if left <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return left
"""

# KEYS: holdings hash, lease zset. ARGV: replica, seats held now, lease ms, 1 = the count is
# exact (else only the lease is extended: a release or an acquire is on its way).
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
if ARGV[4] ~= '1' then
  redis.call('ZADD', KEYS[2], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], lease * 2)
  redis.call('PEXPIRE', KEYS[2], lease * 2)
elseif tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[2], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], lease * 2)
  redis.call('PEXPIRE', KEYS[2], lease * 2)
else
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1
"""


@dataclass(eq=False, slots=True)
class ClusterSeat:
    tenant: str
    limit: int
    waited: float
    counted: bool
    """False when Redis could not be asked and the request was let through uncounted."""


@dataclass(eq=False, slots=True)
class _Waiter:
    limit: int
    future: asyncio.Future[bool]


class ClusterConcurrency:
    """Per-tenant concurrent-request quotas shared by the replicas through Redis."""

    def __init__(
        self,
        client: Redis,
        prefix: str,
        *,
        lease_s: float,
        queue_length: int,
        max_wait_s: float,
        metrics: FairnessMetrics,
        replica: str | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        self.r = client
        self.prefix = prefix
        self.lease_ms = max(1, round(lease_s * 1000))
        self.queue_length = queue_length
        self.max_wait_s = max_wait_s
        self.metrics = metrics
        self.replica = replica or uuid.uuid4().hex
        self._clock = clock
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)
        self._wants = client.register_script(_WANTS)
        self.asks = 0
        """Acquire round trips made (what kept seats save)."""
        self.held: Counter[str] = Counter()
        """Seats this replica holds in Redis, by tenant (in use + kept)."""
        self.in_use: Counter[str] = Counter()
        """Seats held by requests in flight here, by tenant."""
        self.contended: set[str] = set()
        """Tenants another replica wants seats of (as of the last ask or look): kept seats go
        back."""
        self._watcher: asyncio.Task[None] | None = None
        self._spare_used: dict[str, float] = {}
        self._sweeping: set[str] = set()
        self._touched: set[str] = set()
        """Tenants whose holding in Redis may be non-zero (renewed until it is zero)."""
        self._pending: Counter[str] = Counter()
        """Acquires on their way to Redis, by tenant (renewal leaves those tenants alone)."""
        self._to_release: Counter[str] = Counter()
        self._flushing: Counter[str] = Counter()
        """Releases sent to Redis and not yet answered, by tenant."""
        self._flush_scheduled = False
        self._waiters: dict[str, deque[_Waiter]] = {}
        self._wakers: dict[str, asyncio.Task[None]] = {}
        self._freed: dict[str, asyncio.Event] = {}
        self._hold_s = 0.05  # moving average of a seat's holding time, for Retry-After advice
        self._tasks: set[asyncio.Task[Any]] = set()
        self._renewer: asyncio.Task[None] | None = None
        self._warn = WarnEvery(log, clock=clock)
        # checked by the background loops too: a cancellation swallowed on its way through a
        # Redis call would otherwise keep a loop, and close() waiting for it, running forever
        self._closing = False

    def _keys(self, tenant: str) -> list[str]:
        base = f"{self.prefix}conc:{tenant}"
        return [base, base + ":lease", base + ":want"]

    def start(self) -> None:
        if self._renewer is None:
            self._renewer = asyncio.create_task(self._renew_forever(), name="conc-lease")

    async def close(self) -> None:
        self._closing = True
        tasks = [t for t in (self._renewer, self._watcher, *self._wakers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        # their CancelledError is their result; a cancellation of close() itself propagates
        await asyncio.gather(*tasks, return_exceptions=True)
        self._renewer = self._watcher = None
        # give the seats back now rather than at lease expiry
        with contextlib.suppress(RedisError, OSError):
            await self._renew_all(release_all=True)

    def waiting(self, tenant: str) -> int:
        return len(self._waiters.get(tenant, ()))

    # -- acquire / release -----------------------------------------------------------------

    async def acquire(
        self, tenant: str, limit: int, priority: str, max_wait_s: float | None = None
    ) -> ClusterSeat:
        """A seat of the tenant's cluster-wide quota, now or after a FIFO wait; raises
        Refusal when its queue is full or no seat frees within the budget."""
        started = self._clock()
        if not self._waiters.get(tenant):
            if self.held[tenant] > self.in_use[tenant]:  # a kept seat: no round trip
                self.in_use[tenant] += 1
                self._spare_used[tenant] = started
                return ClusterSeat(tenant, limit, 0.0, counted=True)
            try:
                granted = await self._ask(tenant, limit, 1, _spares(limit))
            except (RedisError, OSError) as exc:
                self._failed(exc)
                return ClusterSeat(tenant, limit, 0.0, counted=False)
            if granted:
                self.in_use[tenant] += 1
                if granted > 1:
                    self._keep_spares(tenant)
                return ClusterSeat(tenant, limit, 0.0, counted=True)
        queue = self._waiters.setdefault(tenant, deque())
        if len(queue) >= self.queue_length:
            raise self._refusal(tenant, limit, priority, "admission.queue_full", "queue full")
        waiter = _Waiter(limit, asyncio.get_running_loop().create_future())
        queue.append(waiter)
        self._wake(tenant)
        budget = self.max_wait_s if max_wait_s is None else max_wait_s
        try:
            async with asyncio.timeout(budget):
                counted = await asyncio.shield(waiter.future)
        except TimeoutError:
            if waiter.future.done() and not waiter.future.cancelled():
                return ClusterSeat(tenant, limit, self._clock() - started, waiter.future.result())
            self._withdraw(tenant, waiter)
            raise self._refusal(
                tenant,
                limit,
                priority,
                "admission.wait_budget",
                f"no seat of its concurrency quota within {budget:g} s",
            ) from None
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self.release(ClusterSeat(tenant, limit, 0.0, waiter.future.result()), held_s=0.0)
            else:
                self._withdraw(tenant, waiter)
            raise
        return ClusterSeat(tenant, limit, self._clock() - started, counted)

    def release(self, seat: ClusterSeat, held_s: float) -> None:
        """Hand the seat to a request waiting here, or keep it, while no other replica wants
        seats of the tenant; otherwise give it back (one batched round trip, off the
        request's path)."""
        self._hold_s = 0.9 * self._hold_s + 0.1 * held_s
        if not seat.counted:
            return
        tenant = seat.tenant
        self.in_use[tenant] -= 1
        if self.in_use[tenant] <= 0:
            del self.in_use[tenant]
        if tenant in self.contended:
            kept = self.held[tenant] - self.in_use[tenant]
            if kept > 0:
                self._give_back(tenant, kept)
            return
        queue = self._waiters.get(tenant)
        while queue:
            waiter = queue.popleft()
            if not waiter.future.done():
                waiter.future.set_result(True)
                self.in_use[tenant] += 1
                return
        self._spare_used[tenant] = self._clock()
        self._keep_spares(tenant)

    def _give_back(self, tenant: str, seats: int) -> None:
        self.held[tenant] -= seats
        if self.held[tenant] <= 0:
            del self.held[tenant]
        self._to_release[tenant] += seats
        self._schedule_flush()

    def _keep_spares(self, tenant: str) -> None:
        """Give the tenant's spares back once unused for KEEP_SPARES_S."""
        if tenant not in self._sweeping:
            self._sweeping.add(tenant)
            asyncio.get_running_loop().call_later(KEEP_SPARES_S, self._sweep, tenant)

    def _sweep(self, tenant: str) -> None:
        self._sweeping.discard(tenant)
        spare = self.held[tenant] - self.in_use[tenant]
        if spare <= 0:
            return
        idle = self._clock() - self._spare_used.get(tenant, 0.0)
        if idle >= KEEP_SPARES_S:
            self._give_back(tenant, spare)
        else:
            self._sweeping.add(tenant)
            asyncio.get_running_loop().call_later(KEEP_SPARES_S - idle, self._sweep, tenant)

    # -- internals ---------------------------------------------------------------------------

    async def _ask(self, tenant: str, limit: int, wanted: int, spares: int = 0) -> int:
        self.asks += 1
        self._pending[tenant] += 1
        try:
            granted, _total, others = await self._acquire(
                keys=self._keys(tenant),
                args=[self.replica, limit, wanted, self.lease_ms, spares, round(WANT_S * 1000)],
            )
        finally:
            self._pending[tenant] -= 1
            if self._pending[tenant] <= 0:
                del self._pending[tenant]
        granted = int(granted)
        if granted:
            self.held[tenant] += granted
            self._touched.add(tenant)
            if self._watcher is None:
                self._watcher = asyncio.create_task(self._watch_forever(), name="conc-watch")
        self._contend(tenant, int(others) > 0, granted)
        return granted

    def _contend(self, tenant: str, wanted_elsewhere: bool, granted: int = 0) -> None:
        """Another replica wants seats (or no longer does): give back the kept ones (not
        those just `granted`, which the caller hands to its requests)."""
        if not wanted_elsewhere:
            self.contended.discard(tenant)
            return
        self.contended.add(tenant)
        kept = self.held[tenant] - self.in_use[tenant] - granted
        if kept > 0:
            self._give_back(tenant, kept)

    async def _watch_forever(self) -> None:
        """Every POLL_S, for the tenants this replica holds seats of: does another replica
        want some (then kept seats go back)? One pipelined round trip for all of them."""
        while not self._closing:
            await asyncio.sleep(POLL_S)
            tenants = [t for t, n in self.held.items() if n > 0]
            if not tenants:  # the next seat granted starts another
                self.contended.clear()
                self._watcher = None
                return
            try:
                wants = await evalsha_all(
                    self.r, [(self._wants, self._keys(t)[2:], [self.replica]) for t in tenants]
                )
            except (RedisError, OSError) as exc:
                self._failed(exc)
                continue
            for tenant, others in zip(tenants, wants, strict=True):
                self._contend(tenant, int(others) > 0)

    def _schedule_flush(self) -> None:
        """One round trip for every release of this turn of the loop."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._spawn_flush)

    def _spawn_flush(self) -> None:
        task = asyncio.create_task(self._flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._to_release = self._to_release, Counter()
        if not batch:
            return
        self._flushing.update(batch)
        try:
            await evalsha_all(
                self.r,
                [
                    (self._release, self._keys(tenant), [self.replica, count])
                    for tenant, count in batch.items()
                ],
            )
        except (RedisError, OSError) as exc:
            # the next renewal re-states this replica's exact counts
            self._failed(exc)
        finally:
            self._flushing.subtract(batch)
            self._flushing = +self._flushing
        for tenant in batch:
            event = self._freed.get(tenant)
            if event is not None:
                event.set()

    def _wake(self, tenant: str) -> None:
        if tenant not in self._wakers:
            self._freed[tenant] = asyncio.Event()
            self._wakers[tenant] = asyncio.create_task(self._serve(tenant), name="conc-wait")

    async def _serve(self, tenant: str) -> None:
        """Hand seats to the tenant's waiters in arrival order while any wait."""
        queue = self._waiters[tenant]
        event = self._freed[tenant]
        try:
            while queue and not self._closing:
                event.clear()
                try:
                    granted = await self._ask(tenant, queue[0].limit, len(queue))
                except (RedisError, OSError) as exc:
                    self._failed(exc)
                    while queue:  # let them through uncounted, as a failed check does
                        waiter = queue.popleft()
                        if not waiter.future.done():
                            waiter.future.set_result(False)
                    break
                while granted and queue:
                    waiter = queue.popleft()
                    if waiter.future.done():
                        continue
                    waiter.future.set_result(True)
                    self.in_use[tenant] += 1
                    granted -= 1
                if granted:  # the waiters left meanwhile: give the extra seats back
                    self._give_back(tenant, granted)
                if queue:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(POLL_S):
                            await event.wait()
        finally:
            del self._wakers[tenant]
            del self._freed[tenant]
            if not queue:
                self._waiters.pop(tenant, None)

    def _withdraw(self, tenant: str, waiter: _Waiter) -> None:
        queue = self._waiters.get(tenant)
        if queue is not None:
            with contextlib.suppress(ValueError):
                queue.remove(waiter)
        waiter.future.cancel()

    async def _renew_forever(self) -> None:
        every = self.lease_ms / 3000
        while not self._closing:
            await asyncio.sleep(every)
            try:
                await self._renew_all()
            except (RedisError, OSError) as exc:
                self._failed(exc)

    async def _renew_all(self, *, release_all: bool = False) -> None:
        """Extend this replica's leases and re-state its exact counts (repairs a lost
        release); tenants with an acquire on its way are left to the next round."""
        tenants = list(self._touched)
        if not tenants:
            return
        exact: set[str] = set()
        commands: list[tuple[Any, list[str], list[Any]]] = []
        for tenant in tenants:
            if release_all or not (
                tenant in self._pending or tenant in self._flushing or tenant in self._to_release
            ):
                exact.add(tenant)
            held = 0 if release_all else self.held.get(tenant, 0)
            commands.append(
                (
                    self._renew,
                    self._keys(tenant),
                    [self.replica, held, self.lease_ms, 1 if tenant in exact else 0],
                )
            )
        await evalsha_all(self.r, commands)
        for tenant in exact:
            if release_all or not self.held.get(tenant):
                self._touched.discard(tenant)

    def _failed(self, exc: BaseException) -> None:
        self.metrics.limiter_errors.inc()
        self._warn.warning("concurrency quota store failed, requests let through: %r", exc)

    def _refusal(self, tenant: str, limit: int, priority: str, rule: str, what: str) -> Refusal:
        ahead = self.waiting(tenant) + 1
        retry = min(60.0, max(0.05, ahead * self._hold_s / max(1, limit)))
        return Refusal(
            rule,
            f"tenant {tenant}: {what}; {limit} in flight across the replicas, "
            f"{self.waiting(tenant)} waiting here",
            retry,
            tenant=tenant,
            priority=priority,
            limit=f"max_concurrent {limit} across replicas",
        )


def _spares(limit: int) -> int:
    return min(MAX_SPARES, limit // SPARE_DIVISOR)
