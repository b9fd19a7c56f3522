"""A tenant's `max_concurrent` is one quota across replicas sharing Redis: two real replicas
(and, for the mechanics, two quota holders in one process) over a Debian redis-server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import signal
import socket
import time
from collections.abc import Iterator

import pytest
from coord_procs import (
    Replica,
    Replicas,
    add_tenant,
    bearer,
    http,
    needs_nginx,
    needs_redis,
    run_redis,
    run_replicas,
    stop,
)
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from maestro.coordinator.admission import FairnessMetrics, Refusal
from maestro.coordinator.concurrency import KEEP_SPARES_S, ClusterConcurrency

pytestmark = [needs_redis]

LEASE_S = 1.5
WAIT_S = 1.0


# -- the quota itself, two holders in one process ------------------------------------------


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with run_redis(tmp_path_factory.mktemp("redis")) as redis:
        yield redis.url


def _quota(client: Redis, prefix: str, name: str) -> ClusterConcurrency:
    return ClusterConcurrency(
        client,
        prefix,
        lease_s=LEASE_S,
        queue_length=4,
        max_wait_s=WAIT_S,
        metrics=FairnessMetrics(CollectorRegistry()),
        replica=name,
    )


async def test_two_holders_share_one_quota_and_a_dead_ones_seats_come_back(
    redis_url: str,
) -> None:
    client = Redis.from_url(redis_url)
    prefix = f"t{time.time_ns()}:"
    a, b = _quota(client, prefix, "a"), _quota(client, prefix, "b")
    a.start()
    b.start()
    try:
        held = [await a.acquire("acme", 3, "ci"), await b.acquire("acme", 3, "ci")]
        held.append(await b.acquire("acme", 3, "ci"))
        assert all(s.counted for s in held)
        # the fourth waits wherever it arrives; a release on the other holder frees it
        waiting = asyncio.create_task(a.acquire("acme", 3, "ci"))
        await asyncio.sleep(0.2)
        assert not waiting.done() and a.waiting("acme") == 1
        b.release(held.pop(), held_s=0.1)
        seat = await asyncio.wait_for(waiting, 1.0)
        assert seat.counted and seat.waited > 0.1
        # another tenant is not affected
        assert (await b.acquire("other", 1, "ci")).counted
        # the queue is bounded; the budget refuses with advice
        with pytest.raises(Refusal) as refused:
            await a.acquire("acme", 3, "ci")
        assert refused.value.rule == "admission.wait_budget"
        assert "across replicas" in (refused.value.limit or "")
        # b dies without a word: its renewals stop, its one seat of acme is back in a lease
        assert b._renewer is not None
        b._renewer.cancel()
        died = time.monotonic()
        seat = await _acquire_within(a, "acme", 3, LEASE_S + 1.0)
        assert seat.counted
        assert time.monotonic() - died <= LEASE_S + 1.0
    finally:
        await a.close()
        await client.aclose()


async def test_close_ends_even_when_a_redis_call_swallowed_the_cancellation(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica shutting down does not hang: close() cancels its background loops and waits
    for them, and a loop whose cancellation a Redis call swallowed (seen under load: close()
    waited forever on the lease renewer, cancelling but back in its sleep) still ends."""
    client = Redis.from_url(redis_url)
    quota = _quota(client, f"t{time.time_ns()}:", "a")
    renew = ClusterConcurrency._renew_all
    inside = asyncio.Event()
    swallowed: list[bool] = []

    async def swallowing(self: ClusterConcurrency, *, release_all: bool = False) -> None:
        if not release_all and not swallowed:
            inside.set()
            try:
                await asyncio.sleep(30)  # in flight when close() cancels
            except asyncio.CancelledError:
                swallowed.append(True)  # as a library catching it on its way would
        await renew(self, release_all=release_all)

    monkeypatch.setattr(ClusterConcurrency, "_renew_all", swallowing)
    quota.start()
    try:
        assert (await quota.acquire("acme", 3, "ci")).counted
        await asyncio.wait_for(inside.wait(), LEASE_S * 3)  # the renewer is inside a renewal
        renewer = quota._renewer
        assert renewer is not None
        closing = asyncio.ensure_future(quota.close())
        done, _ = await asyncio.wait([closing], timeout=LEASE_S * 3)
        assert closing in done, "close() still waits for its background loops"
        assert swallowed and renewer.done()
    finally:
        await client.aclose()


async def _acquire_within(
    quota: ClusterConcurrency, tenant: str, limit: int, seconds: float
) -> object:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await quota.acquire(tenant, limit, "ci", max_wait_s=0.2)
        except Refusal:
            if time.monotonic() > deadline:
                raise


async def test_renewal_keeps_long_holds_and_restates_a_lost_release(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    prefix = f"r{time.time_ns()}:"
    a = _quota(client, prefix, "a")
    a.start()
    try:
        first = await a.acquire("acme", 2, "ci")
        await a.acquire("acme", 2, "ci")
        await asyncio.sleep(LEASE_S * 1.5)  # held past its first lease: still counted
        with pytest.raises(Refusal):
            await a.acquire("acme", 2, "ci", max_wait_s=0.1)
        # a release whose round trip is lost: the next renewal re-states the count
        a.held["acme"] -= 1
        del first
        await asyncio.sleep(LEASE_S / 3 + 0.3)
        assert (await a.acquire("acme", 2, "ci", max_wait_s=0.5)).counted
    finally:
        await a.close()
        assert await client.hlen(f"{prefix}conc:acme") == 0  # close gave the seats back
        await client.aclose()


async def test_a_release_after_redis_lost_its_scripts_loads_them_and_frees_the_seat(
    redis_url: str,
) -> None:
    client = Redis.from_url(redis_url)
    prefix = f"f{time.time_ns()}:"
    a = _quota(client, prefix, "a")
    a.start()
    try:
        seat = await a.acquire("acme", 1, "ci")
        await client.script_flush()  # a restarted or failed-over Redis has no scripts
        a.release(seat, held_s=0.1)
        deadline = time.monotonic() + 5.0
        while await client.hget(f"{prefix}conc:acme", "a") not in (None, b"0"):
            assert time.monotonic() < deadline, "the seat was never given back"
            await asyncio.sleep(0.02)
        # the release itself went through: only its pipeline loads this script again
        assert await client.script_exists(a._release.sha) == [True]
        assert (await a.acquire("acme", 1, "ci", max_wait_s=0.1)).counted
    finally:
        await a.close()
        await client.aclose()


async def test_spares_skip_round_trips_far_from_the_quota_and_never_exceed_it(
    redis_url: str,
) -> None:
    client = Redis.from_url(redis_url)
    prefix = f"s{time.time_ns()}:"
    a, b = _quota(client, prefix, "a"), _quota(client, prefix, "b")
    a.queue_length = b.queue_length = 64
    try:
        first = await a.acquire("acme", 40, "ci")
        assert a.held["acme"] == 1 + 2 and a.in_use["acme"] == 1  # 1/20 of 40 as spares
        again = [await a.acquire("acme", 40, "ci") for _ in range(2)]
        assert a.held["acme"] == 3  # the spares were used: no new seats asked for
        for seat in again:
            a.release(seat, held_s=0.0)
        assert a.held["acme"] == 3 and a.in_use["acme"] == 1  # kept
        # b fills the quota: a's kept seats count, so b never gets more than the rest; once b
        # is refused, a sees it wanting and gives its kept seats back, which b then takes
        got = []
        while True:
            try:
                got.append(await b.acquire("acme", 40, "ci", max_wait_s=0.3))
            except Refusal:
                break
            total = sum(int(v) for v in await client.hvals(f"{prefix}conc:acme"))
            assert total <= 40
        assert len(got) == 40 - 1 and a.held["acme"] == 1
        with pytest.raises(Refusal):
            await b.acquire("acme", 40, "ci", max_wait_s=0.1)
        a.release(first, held_s=0.0)
    finally:
        await a.close()
        await b.close()
        await client.aclose()


def _count_asks(quota: ClusterConcurrency) -> list[int]:
    """Seats asked of Redis, one entry per round trip."""
    asks: list[int] = []
    ask = quota._ask

    async def counted(tenant: str, limit: int, wanted: int, spares: int = 0) -> int:
        asks.append(wanted)
        return await ask(tenant, limit, wanted, spares)

    quota._ask = counted  # type: ignore[method-assign]
    return asks


async def test_near_the_quota_a_replica_decides_with_the_seats_it_keeps(redis_url: str) -> None:
    """A tenant with 3 of its 4 seats in flight on b: a's requests, one after another, take
    and release the last seat with one round trip in all (before: one each)."""
    client = Redis.from_url(redis_url)
    prefix = f"n{time.time_ns()}:"
    a, b = _quota(client, prefix, "a"), _quota(client, prefix, "b")
    try:
        on_b = [await b.acquire("acme", 4, "ci") for _ in range(3)]
        asks = _count_asks(a)
        for _ in range(50):
            seat = await a.acquire("acme", 4, "ci")
            assert seat.counted
            a.release(seat, held_s=0.001)
        assert asks == [1]
        assert a.held["acme"] == 1 and a.in_use["acme"] == 0
        # the kept seat is counted: b cannot take a fifth one
        with pytest.raises(Refusal):
            await b.acquire("acme", 4, "ci", max_wait_s=0.02)
        # unused, it goes back
        await asyncio.sleep(KEEP_SPARES_S + 0.3)
        assert a.held["acme"] == 0
        for seat in on_b:
            b.release(seat, held_s=0.0)
    finally:
        await a.close()
        await b.close()
        await client.aclose()


async def test_kept_seats_go_to_a_replica_that_waits_for_them(redis_url: str) -> None:
    """a keeps all 4 seats of the quota; requests waiting on b get them (never more than 4 in
    flight), and while both want seats the quota is split between them."""
    client = Redis.from_url(redis_url)
    prefix = f"k{time.time_ns()}:"
    a, b = _quota(client, prefix, "a"), _quota(client, prefix, "b")
    a.queue_length = b.queue_length = 16
    in_flight = 0
    peak = 0
    served = {"a": 0, "b": 0}

    async def one(quota: ClusterConcurrency, name: str, hold_s: float) -> None:
        nonlocal in_flight, peak
        seat = await quota.acquire("acme", 4, "ci", max_wait_s=2.0)
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(hold_s)
        in_flight -= 1
        served[name] += 1
        quota.release(seat, held_s=hold_s)

    try:
        await asyncio.gather(*(one(a, "a", 0.01) for _ in range(4)))
        assert a.held["acme"] == 4 and a.in_use["acme"] == 0  # all kept
        started = time.monotonic()
        await asyncio.gather(*(one(b, "b", 0.0) for _ in range(2)))
        assert time.monotonic() - started < 0.5, "b waited for a's kept seats too long"
        assert a.held["acme"] < 4
        # both busy: each side keeps requests in flight; b is not starved by a's keeping
        served = {"a": 0, "b": 0}

        async def busy(quota: ClusterConcurrency, name: str) -> None:
            until = time.monotonic() + 1.0
            while time.monotonic() < until:
                await asyncio.gather(*(one(quota, name, 0.02) for _ in range(4)))

        await asyncio.gather(busy(a, "a"), busy(b, "b"))
        assert peak <= 4
        assert min(served.values()) >= max(served.values()) / 4, served
    finally:
        await a.close()
        await b.close()
        await client.aclose()


# -- two real replicas ------------------------------------------------------------------------

BODY = b"x" * 100
DIGEST = hashlib.sha256(BODY).hexdigest()
MISSING = hashlib.sha256(b"never stored").hexdigest()


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    with run_replicas(
        tmp_path_factory.mktemp("conc"),
        ("a", "b"),
        max_queue_wait_s=str(WAIT_S),
        concurrency_lease_s=str(LEASE_S),
        body_read_timeout_s="120",
        min_upload_bytes_per_s="0",
    ) as r:
        yield r


def _slow_upload(replica: Replica, key: str) -> socket.socket:
    """A PUT whose body has only begun: its handler holds a seat while it waits for the rest."""
    sock = socket.create_connection(("127.0.0.1", replica.port), timeout=30)
    head = (
        f"PUT /capped/cas/{DIGEST} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    )
    sock.sendall(head.encode() + BODY[:10])
    return sock


def _finish(sock: socket.socket) -> bytes:
    sock.sendall(BODY[10:])
    answer = sock.recv(4096)
    sock.close()
    return answer


def _in_flight(replica: Replica, tenant: str) -> float:
    _, text, _ = http("GET", f"{replica.base}/metrics")
    pattern = rf'maestro_coordinator_tenant_in_flight\{{[^}}]*tenant="{tenant}"[^}}]*\}} (\S+)'
    return sum(float(v) for v in re.findall(pattern, text.decode()))


def _settle(replicas: Replicas, tenant: str, want: float, seconds: float = 5.0) -> float:
    deadline = time.monotonic() + seconds
    while True:
        total = _in_flight(replicas.a, tenant) + _in_flight(replicas.b, tenant)
        if total == want or time.monotonic() > deadline:
            return total
        time.sleep(0.05)


def _get(replica: Replica, key: str) -> tuple[int, dict[str, object], float]:
    started = time.monotonic()
    status, body, _ = http("GET", f"{replica.base}/capped/cas/{MISSING}", headers=bearer(key))
    took = time.monotonic() - started
    return status, (json.loads(body) if status == 429 else {}), took


@needs_nginx
@pytest.mark.slow
def test_max_concurrent_holds_across_replicas_and_a_killed_replicas_seats_return(
    replicas: Replicas,
) -> None:
    _, key = asyncio.run(add_tenant(replicas.redis.url, "capped", policy={"max_concurrent": 2}))
    a, b = replicas.a, replicas.b
    on_a, on_b = _slow_upload(a, key), _slow_upload(b, key)
    assert _settle(replicas, "capped", 2) == 2
    # one in flight on each replica: each is under 2 alone, together they are at the quota
    status, body, took = _get(a, key)
    assert status == 429, "a third request was admitted while 2 were in flight"
    assert body["rule"] == "admission.wait_budget" and "across replicas" in str(body["limit"])
    assert took >= WAIT_S * 0.9
    more = [_slow_upload(b, key), _slow_upload(a, key)]
    time.sleep(0.3)
    assert _settle(replicas, "capped", 2, 0.3) == 2  # never 3 or 4 in flight
    for sock in more:
        sock.close()  # they gave up while waiting
    # a seat freed on A is taken by a request on B
    status_line = _finish(on_a).split(b"\r\n")[0].split()
    assert 200 <= int(status_line[1]) < 300, status_line
    status, _, took = _get(b, key)
    assert status == 404 and took < WAIT_S * 0.9
    # B holds both seats, then is killed: A admits again once B's lease ran out
    second_on_b = _slow_upload(b, key)
    assert _settle(replicas, "capped", 2) == 2
    assert _get(a, key)[0] == 429
    b.proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    b.proc.wait(10)
    while True:
        status, _, _ = _get(a, key)
        if status == 404:
            break
        assert time.monotonic() - killed < LEASE_S + WAIT_S + 2.0, "B's seats never came back"
    assert time.monotonic() - killed <= LEASE_S + WAIT_S + 1.0
    for sock in (on_b, second_on_b):
        sock.close()
    stop(b.proc)
