"""Admission control in front of the cache routes: priority levels and fair per-tenant queues.

Modelled on Kubernetes API Priority and Fairness (APF):

- Each priority class (tenancy.py) is a **priority level** owning an assured share of the
  replica's `concurrency` seats. A level never takes another's seats, so a CI farm in `ci` cannot
  slow the `interactive` readers however much it sends.
- A request that finds no free seat in its level waits in one of the level's queues. **Shuffle
  sharding**: the tenant is dealt `queue_hand_size` of the level's `queues_per_level` queues (a
  hash of its name) and joins the shortest, so a heavy tenant fills few queues and a light one
  almost always finds one of its own nearly empty.
- Free seats are handed out by **deficit round robin** over the non-empty queues (cost: one seat
  plus one per MiB of body, scaled by the head tenant's `weight`), after first serving any tenant
  holding fewer seats than its `min_share` of the level. `max_concurrent` caps a tenant's seats.
- While a tenant has requests waiting, the seats it holds are integrated over that time
  (`queued_seconds`, `queued_seat_seconds`): its share *while it wanted more*, the measure to
  read against `min_share` (the seats held at any instant fall to 0 for a tenant whose
  requests finish quickly, without its having waited for any).
- Queues are **bounded** (`queue_length`) and waits have a **budget** (`max_queue_wait_s`); a
  request that cannot be admitted is refused with **429**, `Retry-After`, and a JSON body with
  `retryAfterMs`, the `rule` that refused it and a `remediation`.

Seats and queues are per replica (as APF's are per API server); rate limits (limits.py) and,
with replicas, a tenant's `max_concurrent` (concurrency.py) are shared through Redis.
Everything runs on the event loop: no locks, O(hand size + queues) per decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
import math
import re
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as PromCounter
from pydantic import BaseModel, Field

from maestro.tasks import cancel_and_wait

from .bodies import json_reply
from .hardening import BulkYield
from .tenancy import DEFAULT_SHARES, PRIORITY_CLASSES, PolicyResolver, TenantPolicy

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from .auth import Principal
    from .concurrency import ClusterConcurrency, ClusterSeat
    from .limits import RateLimits
    from .settings import Settings

log = logging.getLogger(__name__)

MIB = 1 << 20
QUANTUM = 1.0
WAIT_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
CHECK_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
)  # fmt: skip

REMEDIATIONS: dict[str, str] = {
    "admission.queue_full": "the tenant's queues at its priority level are full: retry after "
    "the advised delay, send fewer requests at once, or ask an operator for a higher priority "
    "or weight (maestro coordinator tenant set NAME --priority/--weight)",
    "admission.wait_budget": "no seat freed within the wait budget: retry after the advised "
    "delay; sustained, ask an operator for a larger share (--weight, --min-share)",
    "rate.tenant": "the tenant's sustained request rate is used up: retry after the advised "
    "delay, or ask an operator to raise it (maestro coordinator tenant set NAME --rate N)",
    "rate.tenant_burst": "the tenant's per-second burst is used up: spread the requests, or "
    "ask an operator to raise it (--burst N)",
    "rate.token": "this API key's request rate is used up: spread the work over time or over "
    "keys the operator grants",
    "rate.global": "the coordinator as a whole is at its configured request rate: retry later",
    "quota.upload_bytes_per_day": "the tenant uploaded its daily byte allowance: uploads resume "
    "as the rolling day frees it (--upload-per-day raises it)",
}


class Refusal(Exception):
    """A request that will not be served now; rendered as 429 by `Gate`."""

    def __init__(
        self,
        rule: str,
        message: str,
        retry_after_s: float,
        *,
        tenant: str,
        priority: str | None = None,
        limit: str | None = None,
    ) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.retry_after_s = max(0.001, retry_after_s)
        self.tenant = tenant
        self.priority = priority
        self.limit = limit
        self.shadow = False
        """A limit in shadow mode would refuse: the request is served anyway."""
        # the request refused, filled in by `Gate` for the policy's input
        self.method = ""
        self.path = ""
        self.role = ""
        self.upload_bytes = 0
        self.in_flight = 0
        self.execution_id = ""


@dataclass(frozen=True, slots=True)
class Explanation:
    """What a policy engine says about a refusal (fills `rule` and `remediation`)."""

    rule: str
    remediation: str
    decision_id: str | None = None
    """The policy decision record kept for this refusal (explain API: ``decisionId``)."""


Explainer = Callable[[Refusal], "Explanation | Awaitable[Explanation | None] | None"]
"""Hook for the policy engine: given a refusal, its own rule name and remediation (and the id
of the decision it recorded), or None to keep the built-in ones. May be a coroutine function."""


class RefusalBody(BaseModel):
    """The 429 body. `retryAfterMs` is camel-cased as in the wire formats of other services
    (Envoy, gRPC retry info), so clients written against those read it as is."""

    error: str = "too_many_requests"
    message: str
    hint: str | None = None
    retryAfterMs: int = Field(ge=0)
    rule: str
    remediation: str
    tenant: str
    priority: str | None = None
    limit: str | None = None
    decisionId: str | None = None


async def explain(refusal: Refusal, explainer: Explainer | None) -> Explanation | None:
    if explainer is None:
        return None
    try:
        explained = explainer(refusal)
        if inspect.isawaitable(explained):
            explained = await explained
    except Exception:  # a broken explanation must not turn a 429 into a 500
        log.exception("the refusal explainer failed; using the built-in rule")
        return None
    return explained


def refusal_response(refusal: Refusal, explained: Explanation | None = None) -> web.Response:
    rule = refusal.rule
    remediation = REMEDIATIONS.get(rule, "retry after the advised delay")
    decision_id = None
    if explained is not None:
        rule, remediation = explained.rule, explained.remediation
        decision_id = explained.decision_id
    retry_ms = max(1, math.ceil(refusal.retry_after_s * 1000))
    body = RefusalBody(
        message=refusal.message,
        hint=f"retry after {retry_ms} ms",
        retryAfterMs=retry_ms,
        rule=rule,
        remediation=remediation,
        tenant=refusal.tenant,
        priority=refusal.priority,
        limit=refusal.limit,
        decisionId=decision_id,
    )
    return json_reply(
        body, 429, headers={"Retry-After": str(max(1, math.ceil(refusal.retry_after_s)))}
    )


class FairnessMetrics:
    """Per tenant and priority level (tenants are authenticated names: a closed set)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("priority", "tenant")
        prefix = "maestro_coordinator_"
        self.wait = Histogram(
            prefix + "queue_wait_seconds",
            "Time a request waited for a seat (0 when admitted at once).",
            labels,
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            prefix + "tenant_in_flight", "Seats held.", labels, registry=registry
        )
        self.queued = Gauge(
            prefix + "tenant_queued", "Requests waiting.", labels, registry=registry
        )
        self.admitted = PromCounter(
            prefix + "admitted", "Requests admitted.", labels, registry=registry
        )
        self.rejected = PromCounter(
            prefix + "rejected",
            "Requests refused with 429, by rule.",
            (*labels, "rule"),
            registry=registry,
        )
        self.shadow = PromCounter(
            prefix + "rate_limit_shadow",
            "Requests a limit would have refused (rate_limits = shadow), by rule.",
            ("tenant", "rule"),
            registry=registry,
        )
        self.seat_seconds = PromCounter(
            prefix + "seat_seconds",
            "Seat time used (the share of the level a tenant got).",
            labels,
            registry=registry,
        )
        self.queued_s = PromCounter(
            prefix + "queued_seconds",
            "Time the tenant had requests waiting for a seat in the level.",
            labels,
            registry=registry,
        )
        self.queued_seat_s = PromCounter(
            prefix + "queued_seat_seconds",
            "Seats held integrated over the time the tenant had requests waiting: divided by "
            "queued_seconds and the level's seats, its share while it wanted more (against "
            "min_share).",
            labels,
            registry=registry,
        )
        self.min_share = Gauge(
            prefix + "tenant_min_share",
            "The tenant's configured min_share of its level (0-1), as of when it last had "
            "requests waiting.",
            labels,
            registry=registry,
        )
        self.seats = Gauge(
            prefix + "level_seats", "Assured seats of a priority level.", ("priority",),
            registry=registry,
        )  # fmt: skip
        self.check = Histogram(
            prefix + "admission_check_seconds",
            "Time to decide (rate limits + admission), queue wait excluded.",
            buckets=CHECK_BUCKETS,
            registry=registry,
        )
        self.gated = Histogram(
            prefix + "gated_request_seconds",
            "Time from the gate to the handler's answer, queue wait included, by priority "
            "(what a tenant's request costs inside the server; the client sees this plus the "
            "event loop lag before the gate).",
            ("priority",),
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.loop_lag = Histogram(
            prefix + "event_loop_lag_seconds",
            "How late the event loop runs a timer (sampled every 20 ms): the wait any request "
            "has before the server even reads it, when the loop or the host's CPU is saturated.",
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.overdraft = PromCounter(
            prefix + "rate_limit_overdraft",
            "Requests served on a replica's credit that the shared limit then had no room for "
            "(counted in it anyway): the over-admission of background lease renewal, by rule.",
            ("rule",),
            registry=registry,
        )
        self.limiter_errors = PromCounter(
            prefix + "rate_limit_errors",
            "Limit checks that failed (storage unreachable) and were let through.",
            registry=registry,
        )


@dataclass(eq=False, slots=True)
class Seat:
    level: str
    tenant: str
    started: float
    waited: float


@dataclass(eq=False, slots=True)
class _Waiter:
    tenant: str
    policy: TenantPolicy
    cost: float
    queued_at: float
    future: asyncio.Future[Seat]


@dataclass(eq=False, slots=True)
class _Queue:
    waiters: deque[_Waiter] = field(default_factory=deque)
    deficit: float = 0.0
    active: bool = False


@dataclass(eq=False, slots=True)
class _Backlog:
    """One tenant's waiting requests in a level, and the seats it held while they waited."""

    policy: TenantPolicy
    queued: int = 0
    since: float = 0.0
    queued_s: float = 0.0
    seat_s: float = 0.0


@dataclass(eq=False)
class _Level:
    name: str
    seats: int
    queues: list[_Queue]
    ring: deque[_Queue] = field(default_factory=deque)
    in_flight: int = 0
    queued: int = 0
    by_tenant: Counter[str] = field(default_factory=Counter)
    backlog: dict[str, _Backlog] = field(default_factory=dict)
    waiting: dict[str, _Backlog] = field(default_factory=dict)
    """The backlogs with requests waiting now (the minimum-share pass looks only at these)."""
    service_s: float = 0.05  # moving average of seat holding time, for Retry-After advice


def deal(tenant: str, queues: int, hand: int) -> list[int]:
    """The tenant's hand: `hand` distinct queue indices from a hash of its name (APF deals
    from one big integer the same way)."""
    hand = min(hand, queues)
    number = int.from_bytes(hashlib.sha256(tenant.encode()).digest(), "big")
    picked: list[int] = []
    remaining = list(range(queues))
    for _ in range(hand):
        number, index = divmod(number, len(remaining))
        picked.append(remaining.pop(index))
    return picked


class Admission:
    """Seats per priority level, fair queues within a level."""

    def __init__(
        self,
        *,
        concurrency: int,
        shares: Mapping[str, int],
        queues_per_level: int,
        hand_size: int,
        queue_length: int,
        max_wait_s: float,
        metrics: FairnessMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        merged = {name: shares.get(name, DEFAULT_SHARES[name]) for name in PRIORITY_CLASSES}
        total = sum(merged.values())
        self.levels: dict[str, _Level] = {
            name: _Level(
                name,
                max(1, round(concurrency * share / total)),
                [_Queue() for _ in range(queues_per_level)],
            )
            for name, share in merged.items()
        }
        self.hand_size = hand_size
        self.queue_length = queue_length
        self.max_wait_s = max_wait_s
        self.metrics = metrics
        self._clock = clock
        self._hands: dict[str, list[int]] = {}
        if metrics is not None:
            for level in self.levels.values():
                metrics.seats.labels(level.name).set(level.seats)

    # -- public --------------------------------------------------------------------------------

    async def acquire(
        self, tenant: str, policy: TenantPolicy, cost: float = 1.0, max_wait_s: float | None = None
    ) -> Seat:
        """A seat in the tenant's level, now or after a fair wait (`max_wait_s`, default the
        configured budget); raises Refusal."""
        budget = self.max_wait_s if max_wait_s is None else max_wait_s
        level = self.levels[policy.priority]
        now = self._clock()
        if (
            not level.queued
            and level.in_flight < level.seats
            and self._may_start(level, tenant, policy)
        ):
            return self._start(level, tenant, policy, now, 0.0)
        queue = self._shortest(level, tenant)
        if len(queue.waiters) >= self.queue_length:
            raise self._refusal(level, tenant, "admission.queue_full", "queue full")
        waiter = _Waiter(tenant, policy, cost, now, asyncio.get_running_loop().create_future())
        queue.waiters.append(waiter)
        level.queued += 1
        self._backlog(level, tenant, policy, now, +1)
        if not queue.active:
            queue.active = True
            level.ring.append(queue)
        self._gauge_queued(level, tenant, +1)
        self._dispatch(level)
        future = waiter.future
        try:
            async with asyncio.timeout(budget):
                seat = await asyncio.shield(future)
            # the wait as the request saw it: until this task ran again, not until dispatch
            seat.waited = self._clock() - now
            return seat
        except TimeoutError:
            if future.done() and not future.cancelled():
                return future.result()
            self._withdraw(level, queue, waiter)
            raise self._refusal(
                level, tenant, "admission.wait_budget", f"no seat within {budget:g} s"
            ) from None
        except asyncio.CancelledError:  # the client went away while waiting
            if future.done() and not future.cancelled():
                self.release(future.result())
            else:
                self._withdraw(level, queue, waiter)
            raise

    def release(self, seat: Seat) -> None:
        level = self.levels[seat.level]
        now = self._clock()
        if seat.tenant in level.backlog:
            self._account(level, seat.tenant, now)
        level.in_flight -= 1
        level.by_tenant[seat.tenant] -= 1
        if level.by_tenant[seat.tenant] <= 0:
            del level.by_tenant[seat.tenant]
        held = max(0.0, now - seat.started)
        level.service_s = 0.9 * level.service_s + 0.1 * held
        if self.metrics is not None:
            self.metrics.in_flight.labels(seat.level, seat.tenant).dec()
            self.metrics.seat_seconds.labels(seat.level, seat.tenant).inc(held)
        self._dispatch(level)

    def snapshot(self) -> dict[str, Any]:
        """Levels, seats, in-flight and queued requests per tenant (the dashboard page)."""
        out: dict[str, Any] = {}
        for level in self.levels.values():
            queued: Counter[str] = Counter()
            for queue in level.ring:
                queued.update(w.tenant for w in queue.waiters)
            out[level.name] = {
                "seats": level.seats,
                "in_flight": level.in_flight,
                "queued": level.queued,
                "tenants_in_flight": dict(level.by_tenant),
                "tenants_queued": dict(queued),
            }
        return out

    def shares_while_queued(self) -> dict[str, dict[str, dict[str, float]]]:
        """Per level and tenant that ever waited: the time it had requests waiting, the share
        of the level's seats it held meanwhile, and its configured `min_share`."""
        now = self._clock()
        out: dict[str, dict[str, dict[str, float]]] = {}
        for level in self.levels.values():
            for tenant, backlog in level.backlog.items():
                self._account(level, tenant, now)
                if backlog.queued_s <= 0:
                    continue
                out.setdefault(level.name, {})[tenant] = {
                    "queued_s": backlog.queued_s,
                    "share": backlog.seat_s / (backlog.queued_s * level.seats),
                    "min_share": backlog.policy.min_share,
                }
        return out

    # -- internals -----------------------------------------------------------------------------

    def _account(self, level: _Level, tenant: str, now: float) -> None:
        """Add the time since the last change to the tenant's waiting time and seat time
        (called before its waiting requests or its seats change)."""
        backlog = level.backlog[tenant]
        if not backlog.queued:
            return
        span = max(0.0, now - backlog.since)
        held = level.by_tenant.get(tenant, 0) * span
        backlog.queued_s += span
        backlog.seat_s += held
        backlog.since = now
        if self.metrics is not None and span:
            self.metrics.queued_s.labels(level.name, tenant).inc(span)
            self.metrics.queued_seat_s.labels(level.name, tenant).inc(held)

    def _backlog(
        self, level: _Level, tenant: str, policy: TenantPolicy, now: float, delta: int
    ) -> None:
        backlog = level.backlog.get(tenant)
        if backlog is None:
            backlog = level.backlog[tenant] = _Backlog(policy, since=now)
        self._account(level, tenant, now)
        if not backlog.queued:
            backlog.since = now
        backlog.policy = policy
        backlog.queued += delta
        if delta > 0 and self.metrics is not None:
            self.metrics.min_share.labels(level.name, tenant).set(policy.min_share)
        if backlog.queued:
            level.waiting[tenant] = backlog
        else:
            level.waiting.pop(tenant, None)

    def _may_start(self, level: _Level, tenant: str, policy: TenantPolicy) -> bool:
        cap = policy.max_concurrent
        return cap is None or level.by_tenant[tenant] < cap

    def _start(
        self, level: _Level, tenant: str, policy: TenantPolicy, queued_at: float, waited: float
    ) -> Seat:
        level.in_flight += 1
        level.by_tenant[tenant] += 1
        if self.metrics is not None:
            self.metrics.admitted.labels(level.name, tenant).inc()
            self.metrics.in_flight.labels(level.name, tenant).inc()
            self.metrics.wait.labels(level.name, tenant).observe(waited)
        return Seat(level.name, tenant, self._clock(), waited)

    def _shortest(self, level: _Level, tenant: str) -> _Queue:
        hand = self._hands.get(tenant)
        if hand is None:
            hand = self._hands[tenant] = deal(tenant, len(level.queues), self.hand_size)
        return min((level.queues[i] for i in hand), key=lambda q: len(q.waiters))

    def _gauge_queued(self, level: _Level, tenant: str, delta: int) -> None:
        if self.metrics is not None:
            self.metrics.queued.labels(level.name, tenant).inc(delta)

    def _withdraw(self, level: _Level, queue: _Queue, waiter: _Waiter) -> None:
        try:
            queue.waiters.remove(waiter)
        except ValueError:
            return
        level.queued -= 1
        self._backlog(level, waiter.tenant, waiter.policy, self._clock(), -1)
        self._gauge_queued(level, waiter.tenant, -1)
        if not queue.waiters:
            self._deactivate(level, queue)
        waiter.future.cancel()

    def _deactivate(self, level: _Level, queue: _Queue) -> None:
        queue.deficit = 0.0
        queue.active = False
        with contextlib.suppress(ValueError):
            level.ring.remove(queue)

    def _dispatch(self, level: _Level) -> None:
        while level.queued and level.in_flight < level.seats:
            picked = self._next(level)
            if picked is None:
                return  # every head tenant is at its max_concurrent
            queue, waiter = picked
            if queue.waiters[0] is waiter:
                queue.waiters.popleft()
            else:  # a tenant below its minimum share, from behind others in a shared queue
                queue.waiters.remove(waiter)
            level.queued -= 1
            now = self._clock()
            self._backlog(level, waiter.tenant, waiter.policy, now, -1)
            self._gauge_queued(level, waiter.tenant, -1)
            if not queue.waiters:
                self._deactivate(level, queue)
            waiter.future.set_result(
                self._start(
                    level, waiter.tenant, waiter.policy, waiter.queued_at, now - waiter.queued_at
                )
            )

    def _next(self, level: _Level) -> tuple[_Queue, _Waiter] | None:
        ring = level.ring
        below = self._below_floor(level)
        if below is not None:
            return below
        blocked = 0
        # Deficit round robin: a queue at the front of the ring gets a quantum per turn and
        # serves while its deficit covers the head's cost; bounded because quanta accumulate.
        for _ in range(len(ring) * 64 + 64):
            if not ring or blocked >= len(ring):
                return None
            queue = ring[0]
            head = queue.waiters[0]
            if not self._may_start(level, head.tenant, head.policy):
                ring.rotate(-1)
                blocked += 1
                continue
            if queue.deficit >= head.cost:
                queue.deficit -= head.cost
                following = queue.waiters[1] if len(queue.waiters) > 1 else None
                if following is not None and queue.deficit < following.cost:
                    ring.rotate(-1)  # its turn is over
                return queue, head
            queue.deficit += QUANTUM * head.policy.weight
            if queue.deficit < head.cost:
                ring.rotate(-1)
        return None

    def _below_floor(self, level: _Level) -> tuple[_Queue, _Waiter] | None:
        """Minimum shares first: the longest-waiting request of a tenant holding fewer than its
        guaranteed seats goes ahead, wherever it waits. Shuffle sharding lets tenants share a
        queue, so such a request may sit behind another tenant's, not at a queue's head."""
        best: tuple[_Queue, _Waiter] | None = None
        for tenant, backlog in level.waiting.items():
            floor = backlog.policy.min_seats(level.seats)
            if (
                not floor
                or level.by_tenant[tenant] >= floor
                or not self._may_start(level, tenant, backlog.policy)
            ):
                continue
            for index in self._hands.get(tenant, ()):
                queue = level.queues[index]
                for waiter in queue.waiters:
                    if waiter.tenant == tenant:
                        if best is None or waiter.queued_at < best[1].queued_at:
                            best = (queue, waiter)
                        break
        return best

    def _refusal(self, level: _Level, tenant: str, rule: str, what: str) -> Refusal:
        # Advice: the time for the level to work through what is queued ahead of a retry.
        ahead = level.queued + 1
        retry = min(60.0, max(0.05, ahead * level.service_s / level.seats))
        return Refusal(
            rule,
            f"priority level {level.name}: {what}; {level.in_flight} in flight, "
            f"{level.queued} queued",
            retry,
            tenant=tenant,
            priority=level.name,
            limit=f"{level.seats} seats",
        )


PRE_ADMISSION_SLOTS = 4
"""Requests of one credential authenticated and rate-checked at once (see `CredentialSlots`)."""


class CredentialSlots:
    """At most `per_credential` requests carrying the same credential in the work done before
    admission can decide (authentication, rate limits); the rest wait, which costs nothing.

    Admission bounds what a tenant runs, but only once its request is authenticated: a tenant
    sending hundreds of requests at once (a CI farm's burst) would otherwise have every one
    verified back to back in one turn of the event loop, and a light tenant's request that
    arrives meanwhile waits behind all of them. The gate releases a slot on the loop's next
    turn, so at most `per_credential` requests of one credential are checked per turn even when
    the checks never yield. Keyed by the credential as sent, so a caller
    can only queue behind its own requests: a forged or unknown credential shares nothing
    with a real one (requests without one share the empty key)."""

    def __init__(self, per_credential: int = PRE_ADMISSION_SLOTS) -> None:
        self.per_credential = per_credential
        self._held: dict[str, int] = {}
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}

    def holders(self, key: str) -> int:
        return self._held.get(key, 0)

    async def acquire(self, key: str) -> None:
        held = self._held.get(key, 0)
        if held < self.per_credential and key not in self._waiting:
            self._held[key] = held + 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, deque()).append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(key)  # the slot was handed over as the waiter went away
            else:
                waiters = self._waiting.get(key)
                if waiters is not None:
                    with contextlib.suppress(ValueError):
                        waiters.remove(future)
                    if not waiters:
                        del self._waiting[key]
            raise

    def release(self, key: str) -> None:
        """Hand the slot to the next waiter of the same credential, else free it."""
        waiters = self._waiting.get(key)
        while waiters:
            future = waiters.popleft()
            if not waiters:
                del self._waiting[key]
            if not future.done():
                future.set_result(None)
                return
        held = self._held.get(key, 0) - 1
        if held > 0:
            self._held[key] = held
        else:
            self._held.pop(key, None)


SHORT_BODY_BYTES = 64 * 1024
HOLDS_BULK_BACK = "interactive"
"""Bulk upload bodies wait (`BulkYield`) while a request of this level with at most
SHORT_BODY_BYTES of body is in flight (the lower levels' own short requests, such as a CI
farm's burst of reads queued behind its uploads, do not hold its uploads back)."""
DRAIN_LIMIT = 64 * 1024
"""A refused upload larger than this is not drained: its connection closes after the 429."""


def _close_without_draining(request: web.Request, response: web.Response) -> None:
    """Answer, then close, without reading the refused body first. aiohttp otherwise drains an
    unread body for its lingering time so the client reads the answer; a tenant that re-sends
    refused 1 MiB uploads at once would make the server read (and discard) them all, which is
    the very load the refusal is meant to shed. A client still sending may see a reset instead
    of the 429; it retries later either way."""
    response.force_close()
    protocol = request.protocol
    if hasattr(protocol, "_lingering_time"):  # aiohttp's RequestHandler (no public setter)
        protocol._lingering_time = 0.0


class Gate:
    """The aiohttp middleware: authenticate, rate-limit, admit, serve, release."""

    def __init__(
        self,
        *,
        admission: Admission | None,
        limits: RateLimits | None,
        resolve: PolicyResolver,
        principal: Callable[[web.Request], Awaitable[Principal | None]],
        metrics: FairnessMetrics,
        routes: frozenset[str],
        slots: CredentialSlots | None = None,
        quota: ClusterConcurrency | None = None,
        bulk: BulkYield | None = None,
    ) -> None:
        self.admission = admission
        self.bulk = bulk
        """Bulk upload bodies wait while short requests are served (None: they never do)."""
        self.quota = quota
        """Replicas: tenants' `max_concurrent` counted across all of them."""
        self.slots = slots or CredentialSlots()
        self.limits = limits
        self.resolve = resolve
        self._principal = principal
        self.metrics = metrics
        # aiohttp's canonical form drops the regex of `{name:regex}` parts.
        self.routes = frozenset(re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route) for route in routes)
        self.explainer: Explainer | None = None
        """Set by the policy engine to explain refusals with its own rules."""
        self._shadow_tasks: set[asyncio.Task[Explanation | None]] = set()
        self._lag_probe: asyncio.Task[None] | None = None
        self._shadow_last: dict[tuple[str, str], float] = {}
        """(tenant, rule) -> when its last shadow refusal was recorded."""
        self.interactive_at = -math.inf
        """When (time.monotonic) an interactive request last entered or left the gate."""

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        registry: CollectorRegistry,
        principal: Callable[[web.Request], Awaitable[Principal | None]],
        routes: frozenset[str],
        redis: Redis | None = None,
    ) -> Gate:
        from .concurrency import ClusterConcurrency
        from .limits import RateLimits

        metrics = FairnessMetrics(registry)
        admission = (
            Admission(
                concurrency=settings.concurrency,
                shares=settings.priority_shares,
                queues_per_level=settings.queues_per_level,
                hand_size=settings.queue_hand_size,
                queue_length=settings.queue_length,
                max_wait_s=settings.max_queue_wait_s,
                metrics=metrics,
            )
            if settings.fairness
            else None
        )
        limits = (
            RateLimits.from_settings(settings, metrics) if settings.rate_limits != "off" else None
        )
        quota = (
            ClusterConcurrency(
                redis,
                settings.redis_prefix,
                lease_s=settings.concurrency_lease_s,
                queue_length=settings.queue_length,
                max_wait_s=settings.max_queue_wait_s,
                metrics=metrics,
            )
            if settings.fairness and redis is not None
            else None
        )
        return cls(
            quota=quota,
            admission=admission,
            limits=limits,
            resolve=PolicyResolver(settings.tenants, settings.default_tenant_policy),
            principal=principal,
            metrics=metrics,
            routes=routes,
            bulk=(
                BulkYield(settings.bulk_yield_max_s)
                if settings.fairness and settings.bulk_yield_max_s > 0
                else None
            ),
        )

    def start(self) -> None:
        """Start sampling the event loop's lag (call on the serving loop)."""
        if self._lag_probe is None:
            self._lag_probe = asyncio.create_task(self._probe_lag())
        if self.quota is not None:
            self.quota.start()

    def interactive_quiet(self, for_s: float) -> bool:
        """No interactive request has entered or left the gate for `for_s` seconds."""
        return time.monotonic() - self.interactive_at > for_s

    async def _probe_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LAG_PROBE_EVERY_S
            await asyncio.sleep(LAG_PROBE_EVERY_S)
            self.metrics.loop_lag.observe(max(0.0, loop.time() - due))

    async def close(self) -> None:
        await cancel_and_wait(self._lag_probe)
        self._lag_probe = None
        if self.quota is not None:
            await self.quota.close()
        if self.limits is not None:
            await self.limits.close()

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if resource is None or resource.canonical not in self.routes:
            return await handler(request)
        if self.admission is None and self.limits is None:
            return await handler(request)
        try:
            return await self._gated(request, handler)
        finally:
            if request.get(HOLDS_BULK_KEY) and self.bulk is not None:
                self.bulk.leave()

    async def _gated(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        entered = time.perf_counter()
        credential = request.headers.get("Authorization", "")
        refused: Refusal | None = None
        await self.slots.acquire(credential)
        try:
            principal = await self._principal(request)
            if principal is not None:
                started = time.perf_counter()
                policy = self.resolve(principal.tenant)
                request[PRIORITY_KEY] = policy.priority
                if policy.priority == HOLDS_BULK_BACK:
                    self.interactive_at = time.monotonic()
                if (
                    self.bulk is not None
                    and policy.priority == HOLDS_BULK_BACK
                    and (request.content_length or 0) <= SHORT_BODY_BYTES
                ):
                    self.bulk.enter()  # left by `middleware` once answered
                    request[HOLDS_BULK_KEY] = True
                upload = (request.content_length or 0) if request.method == "PUT" else 0
                if self.limits is not None:
                    try:
                        shadowed = await self.limits.check(
                            principal.tenant.name, principal.key_id, policy, upload
                        )
                    except Refusal as refusal:
                        refused = refusal
                    else:
                        if shadowed and self.explainer is not None:
                            self._explain_shadow(shadowed, request, principal, upload)
        finally:
            # held into the loop's next turn: checks that never yield (a token's signature is
            # CPU work) then run `per_credential` per turn, not a whole burst in one
            asyncio.get_running_loop().call_soon(self.slots.release, credential)
        if principal is None:  # the handler answers 401/403 with its own message
            return await handler(request)
        if refused is not None:
            return await self._refuse(refused, request, principal, policy, upload)
        shared: ClusterSeat | None = None
        waited = 0.0
        if self.quota is not None and policy.max_concurrent is not None:
            try:
                shared = await self.quota.acquire(
                    principal.tenant.name, policy.max_concurrent, policy.priority
                )
            except Refusal as refusal:
                return await self._refuse(refusal, request, principal, policy, upload)
            waited = shared.waited
        seat: Seat | None = None
        try:
            if self.admission is not None:
                try:
                    seat = await self.admission.acquire(
                        principal.tenant.name,
                        policy,
                        1.0 + upload / MIB,
                        # one wait budget for the quota and the level together
                        max(0.001, self.admission.max_wait_s - waited) if waited else None,
                    )
                except Refusal as refusal:
                    return await self._refuse(refusal, request, principal, policy, upload)
                waited += seat.waited
            self.metrics.check.observe(time.perf_counter() - started - waited)
            return await handler(request)
        finally:
            if seat is not None and self.admission is not None:
                self.admission.release(seat)
            if shared is not None and self.quota is not None:
                self.quota.release(shared, time.perf_counter() - started - waited)
            self.metrics.gated.labels(policy.priority).observe(time.perf_counter() - entered)
            if policy.priority == HOLDS_BULK_BACK:
                self.interactive_at = time.monotonic()

    async def _refuse(
        self,
        refusal: Refusal,
        request: web.Request,
        principal: Principal,
        policy: TenantPolicy,
        upload: int,
    ) -> web.Response:
        self.metrics.rejected.labels(policy.priority, refusal.tenant, refusal.rule).inc()
        _describe(refusal, request, principal, upload, self.admission)
        response = refusal_response(refusal, await explain(refusal, self.explainer))
        if upload > DRAIN_LIMIT:
            _close_without_draining(request, response)
        return response

    def _explain_shadow(
        self, refusals: list[Refusal], request: web.Request, principal: Principal, upload: int
    ) -> None:
        """Record what shadow-mode limits would have refused, off the request's path (the
        request is served at once). Sampled: one record per tenant and rule per
        SHADOW_RECORD_EVERY_S (the metric counts them all), so a tenant far over a limit it is
        not yet held to does not load the executor with decisions."""
        now = time.monotonic()
        for refusal in refusals:
            key = (refusal.tenant, refusal.rule)
            if len(self._shadow_tasks) >= MAX_SHADOW_PENDING:
                return
            if now - self._shadow_last.get(key, -math.inf) < SHADOW_RECORD_EVERY_S:
                continue
            self._shadow_last[key] = now
            _describe(refusal, request, principal, upload, self.admission)
            task = asyncio.create_task(explain(refusal, self.explainer))
            self._shadow_tasks.add(task)
            task.add_done_callback(self._shadow_tasks.discard)


PRIORITY_KEY = web.RequestKey("maestro.priority", str)
HOLDS_BULK_KEY = web.RequestKey("maestro.holds_bulk", bool)
"""The request's priority level, set by the gate (upload pacing reads it)."""
LAG_PROBE_EVERY_S = 0.02
MAX_SHADOW_PENDING = 64
SHADOW_RECORD_EVERY_S = 1.0
EXECUTION_HEADER = "X-Maestro-Execution-Id"
"""A client's run id, kept in the refusal's decision record (explain by executionId)."""


def _describe(
    refusal: Refusal,
    request: web.Request,
    principal: Principal,
    upload: int,
    admission: Admission | None,
) -> None:
    refusal.method = request.method
    refusal.path = request.path
    refusal.role = str(principal.role)
    refusal.upload_bytes = upload
    refusal.execution_id = request.headers.get(EXECUTION_HEADER, "")[:128]
    if admission is not None:
        refusal.in_flight = sum(lv.by_tenant[refusal.tenant] for lv in admission.levels.values())
