"""Admission and rate limits: 429 + Retry-After + retryAfterMs, shadow vs enforce, fair queues,
minimum shares, the policy hook; a real app on loopback over a real LMDB store."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from coord_helpers import Clock, Env, sha
from prometheus_client import CollectorRegistry, generate_latest

from maestro.coordinator.admission import (
    Admission,
    Explanation,
    FairnessMetrics,
    Refusal,
    deal,
)
from maestro.coordinator.app import RUNNER_KWARGS, STATE, create_app
from maestro.coordinator.records import TenantUpdate
from maestro.coordinator.settings import Settings
from maestro.coordinator.store import Store
from maestro.coordinator.tenancy import TenantPolicy

EnvFactory = Callable[..., Any]


@pytest.fixture
async def make_env(tmp_path: Path) -> AsyncIterator[EnvFactory]:
    """An app with the given settings over a store with tenants alpha and beta."""
    opened: list[tuple[TestClient, Store]] = []  # type: ignore[type-arg]

    async def make(**overrides: Any) -> Env:
        settings = Settings(
            data_dir=tmp_path / f"coord{len(opened)}",
            max_blob_bytes=2 << 20,
            **{"metrics_public": True, **overrides},  # per-tenant series without a token
        )
        store = Store(settings.data_dir / "store")
        store.add_tenant("alpha")
        store.add_tenant("beta")
        clock = Clock()
        app = create_app(settings, store=store, clock=clock)
        server = TestServer(app)
        await server.start_server(**RUNNER_KWARGS)
        client = TestClient(server)
        await client.start_server()
        opened.append((client, store))
        return Env(client, store, clock)

    yield make
    for client, store in opened:
        await client.close()
        store.close()


async def test_burst_enforced_answers_429_with_retry_advice(make_env: EnvFactory) -> None:
    env = await make_env(rate_limits="enforce", tenants={"alpha": {"burst": 3}})
    headers = await env.auth("alpha")
    url = f"/alpha/cas/{sha(b'x')}"
    statuses = [(await env.client.get(url, headers=headers)).status for _ in range(3)]
    assert statuses == [404, 404, 404]
    resp = await env.client.get(url, headers=headers)
    assert resp.status == 429
    body = await resp.json()
    assert body["rule"] == "rate.tenant_burst"
    assert 0 < body["retryAfterMs"] <= 1000
    assert int(resp.headers["Retry-After"]) == 1
    assert body["remediation"] and body["tenant"] == "alpha"
    # another tenant is not limited by alpha's burst
    other = await env.auth("beta")
    assert (await env.client.get(f"/beta/cas/{sha(b'x')}", headers=other)).status == 404
    await asyncio.sleep(body["retryAfterMs"] / 1000 + 0.05)
    assert (await env.client.get(url, headers=headers)).status == 404


async def test_shadow_mode_serves_and_counts(make_env: EnvFactory) -> None:
    env = await make_env(rate_limits="shadow", tenants={"alpha": {"burst": 2}})
    headers = await env.auth("alpha")
    url = f"/alpha/cas/{sha(b'x')}"
    statuses = [(await env.client.get(url, headers=headers)).status for _ in range(6)]
    assert statuses == [404] * 6
    metrics = await (await env.client.get("/metrics")).text()
    line = next(
        ln
        for ln in metrics.splitlines()
        if ln.startswith("maestro_coordinator_rate_limit_shadow_total{") and 'tenant="alpha"' in ln
    )
    assert float(line.split()[-1]) == 4.0


async def test_stored_policy_wins_and_upload_allowance(make_env: EnvFactory) -> None:
    env = await make_env(rate_limits="enforce")
    env.store.update_tenant(
        "alpha", TenantUpdate(policy_changes={"upload_bytes_per_day": 3000, "priority": "ci"})
    )
    headers = await env.auth("alpha")
    blob = b"u" * 1000
    for i in range(3):
        data = blob[:-1] + bytes([i])
        resp = await env.client.put(f"/alpha/cas/{sha(data)}", data=data, headers=headers)
        assert resp.status == 200
    data = blob[:-1] + b"\xff"
    resp = await env.client.put(f"/alpha/cas/{sha(data)}", data=data, headers=headers)
    assert resp.status == 429
    body = await resp.json()
    assert body["rule"] == "quota.upload_bytes_per_day" and body["priority"] == "ci"
    # reads are not uploads
    assert (await env.client.get(f"/alpha/cas/{sha(data)}", headers=headers)).status == 404


async def test_policy_engine_explains_refusals(make_env: EnvFactory) -> None:
    env = await make_env(rate_limits="enforce", tenants={"alpha": {"burst": 1}})
    seen: list[Refusal] = []

    def explain(refusal: Refusal) -> Explanation:
        seen.append(refusal)
        return Explanation("team.ci_burst", "CI jobs share one burst; stagger them")

    env.client.app[STATE].gate.explainer = explain
    headers = await env.auth("alpha")
    url = f"/alpha/cas/{sha(b'x')}"
    await env.client.get(url, headers=headers)
    resp = await env.client.get(url, headers=headers)
    body = await resp.json()
    assert resp.status == 429 and seen[0].rule == "rate.tenant_burst"
    assert body["rule"] == "team.ci_burst" and body["remediation"].startswith("CI jobs")


async def until_admitted(env: Env, level: str, *, in_flight: int, queued: int) -> None:
    """Wait (a few seconds at most) until the level holds that many of alpha's requests, in a
    seat and queued: a loaded host may take a while to get a request that far."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        snapshot = env.client.app[STATE].gate.admission.snapshot()[level]
        seated = snapshot["tenants_in_flight"].get("alpha", 0)
        if seated == in_flight and snapshot["tenants_queued"].get("alpha", 0) == queued:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"alpha never had {in_flight} in flight and {queued} queued")


def _slow_put(port: int, tenant: str, token: str, length: int = 4096) -> socket.socket:
    """A PUT whose headers arrive but whose body does not: it holds its seat."""
    sock = socket.create_connection(("127.0.0.1", port))
    digest = sha(b"slow")
    sock.sendall(
        (
            f"PUT /{tenant}/cas/{digest} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {length}\r\n\r\n"
        ).encode()
        + b"ab"
    )
    return sock


async def test_queue_full_and_wait_budget_give_429(make_env: EnvFactory) -> None:
    # concurrency 4: ci gets round(4 * 30/100) = 1 seat; one queue of one request.
    env = await make_env(
        concurrency=4,
        queues_per_level=1,
        queue_hand_size=1,
        queue_length=1,
        max_queue_wait_s=2.0,  # the queued request outlives the next one's refusal, under load too
        default_tenant_policy={"priority": "ci"},
    )
    token = await env.token("alpha")
    port = env.client.server.port
    assert port is not None
    holder = await asyncio.to_thread(_slow_put, port, "alpha", token)
    try:
        await until_admitted(env, "ci", in_flight=1, queued=0)
        headers = {"Authorization": f"Bearer {token}"}
        url = f"/alpha/cas/{sha(b'q')}"
        waiting = asyncio.create_task(env.client.get(url, headers=headers))
        await until_admitted(env, "ci", in_flight=1, queued=1)
        refused = await env.client.get(url, headers=headers)
        assert refused.status == 429
        assert (await refused.json())["rule"] == "admission.queue_full"
        timed_out = await waiting
        assert timed_out.status == 429
        body = await timed_out.json()
        assert body["rule"] == "admission.wait_budget" and body["priority"] == "ci"
        assert "Retry-After" in timed_out.headers
        # beta shares the level: queued behind nothing of its own, but the seat is alpha's
        snapshot = env.client.app[STATE].gate.admission.snapshot()
        assert snapshot["ci"]["tenants_in_flight"] == {"alpha": 1}
        # interactive has its own seats: unaffected
        env.store.update_tenant("beta", TenantUpdate(policy_changes={"priority": "interactive"}))
        beta = await env.auth("beta")
        assert (await env.client.get(f"/beta/cas/{sha(b'q')}", headers=beta)).status == 404
    finally:
        holder.close()


def test_shuffle_sharding_deals_distinct_stable_hands() -> None:
    hand = deal("alpha", 64, 6)
    assert len(set(hand)) == 6 and all(0 <= i < 64 for i in hand)
    assert hand == deal("alpha", 64, 6)
    assert hand != deal("beta", 64, 6)
    assert sorted(deal("x", 3, 6)) == [0, 1, 2]


async def _admission(**kw: Any) -> Admission:
    params: dict[str, Any] = {
        "concurrency": 10,
        "shares": {"interactive": 1, "ci": 1, "batch": 1, "speculative": 1},
        "queues_per_level": 16,
        "hand_size": 2,
        "queue_length": 1000,
        "max_wait_s": 5.0,
    }
    params.update(kw)
    return Admission(**params)


async def test_fair_queuing_serves_a_light_tenant_between_heavy_requests() -> None:
    adm = await _admission()  # ~2-3 seats per level
    heavy = TenantPolicy(priority="ci")
    light = TenantPolicy(priority="ci")
    seats = adm.levels["ci"].seats
    held = [await adm.acquire("heavy", heavy) for _ in range(seats)]
    order: list[str] = []

    async def one(tenant: str, policy: TenantPolicy) -> None:
        seat = await adm.acquire(tenant, policy)
        order.append(tenant)
        await asyncio.sleep(0)
        adm.release(seat)

    tasks = [asyncio.create_task(one("heavy", heavy)) for _ in range(40)]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(one("light", light)) for _ in range(3)]
    await asyncio.sleep(0)
    for seat in held:
        adm.release(seat)
    await asyncio.gather(*tasks)
    # FIFO would serve light after all 40 heavy requests; DRR interleaves them.
    last_light = max(i for i, t in enumerate(order) if t == "light")
    assert last_light < 12, order


async def test_a_tenants_weight_is_its_part_of_its_levels_seats_under_contention() -> None:
    adm = await _admission(queues_per_level=64, hand_size=1)
    assert deal("gold", 64, 1) != deal("plain", 64, 1)  # their own queues
    gold, plain = TenantPolicy(priority="ci", weight=3), TenantPolicy(priority="ci")
    held = [await adm.acquire("filler", TenantPolicy(priority="ci"))]
    while adm.levels["ci"].in_flight < adm.levels["ci"].seats:
        held.append(await adm.acquire("filler", TenantPolicy(priority="ci")))
    order: list[str] = []

    async def one(tenant: str, policy: TenantPolicy) -> None:
        seat = await adm.acquire(tenant, policy)
        order.append(tenant)
        await asyncio.sleep(0)
        adm.release(seat)

    tasks = [asyncio.create_task(one("gold", gold)) for _ in range(30)]
    tasks += [asyncio.create_task(one("plain", plain)) for _ in range(30)]
    await asyncio.sleep(0)
    for seat in held:
        adm.release(seat)
    await asyncio.gather(*tasks)
    first = order[:24]  # while both had requests waiting
    assert 16 <= first.count("gold") <= 20, order  # 3 to 1: 18 of 24


async def test_min_share_goes_first_and_max_concurrent_caps() -> None:
    adm = await _admission(concurrency=8)
    seats = adm.levels["batch"].seats  # 2
    greedy = TenantPolicy(priority="batch", max_concurrent=1)
    floor = TenantPolicy(priority="batch", min_share=0.5)
    first = await adm.acquire("greedy", greedy)
    second = asyncio.create_task(adm.acquire("greedy", greedy))  # capped at 1: waits
    await asyncio.sleep(0.01)
    assert not second.done() and adm.levels["batch"].in_flight == 1 < seats
    filler = await adm.acquire("other", TenantPolicy(priority="batch"))
    third = asyncio.create_task(adm.acquire("floor", floor))
    await asyncio.sleep(0.01)
    adm.release(filler)  # the free seat goes to the tenant below its minimum share
    seat = await asyncio.wait_for(third, 1)
    assert seat.tenant == "floor" and not second.done()
    adm.release(first)
    assert (await asyncio.wait_for(second, 1)).tenant == "greedy"


async def test_a_tenant_below_its_minimum_share_is_served_from_behind_a_shared_queue() -> None:
    # one queue per level: every tenant shares it, as shuffle sharding lets tenants do
    adm = await _admission(concurrency=16, queues_per_level=1, hand_size=1)
    level = adm.levels["ci"]
    heavy = TenantPolicy(priority="ci")
    floor = TenantPolicy(priority="ci", min_share=0.5)
    held = [await adm.acquire("heavy", heavy) for _ in range(level.seats)]
    backlog = [asyncio.create_task(adm.acquire("heavy", heavy)) for _ in range(20)]
    await asyncio.sleep(0)
    mine = asyncio.create_task(adm.acquire("floor", floor))
    await asyncio.sleep(0)
    adm.release(held.pop())  # the freed seat goes to the tenant below its share, not FIFO
    assert (await asyncio.wait_for(mine, 1)).tenant == "floor"
    assert not any(task.done() for task in backlog)
    for task in backlog:
        task.cancel()
    await asyncio.gather(*backlog, return_exceptions=True)


async def test_share_while_queued_is_the_seats_held_while_requests_waited() -> None:
    clock = Clock()
    registry = CollectorRegistry()
    adm = await _admission(concurrency=16, clock=clock, metrics=FairnessMetrics(registry))
    seats = adm.levels["ci"].seats  # 4
    policy = TenantPolicy(priority="ci", min_share=0.25)
    held = [await adm.acquire("busy", policy) for _ in range(seats)]
    quick = await adm.acquire("quick", TenantPolicy(priority="batch"))  # never waits
    clock.now += 100.0  # seats held, nothing waiting: not counted
    waiting = asyncio.create_task(adm.acquire("busy", policy))
    await asyncio.sleep(0)
    clock.now += 10.0  # all seats held while one more waited
    adm.release(held.pop())
    await asyncio.wait_for(waiting, 1)
    second = asyncio.create_task(adm.acquire("busy", policy))
    await asyncio.sleep(0)
    adm.release(held.pop())  # hands its seat straight on: the tenant still holds 4
    await asyncio.wait_for(second, 1)
    adm.release(quick)
    report = adm.shares_while_queued()
    assert report == {"ci": {"busy": {"queued_s": 10.0, "share": 1.0, "min_share": 0.25}}}
    text = generate_latest(registry).decode()
    assert 'maestro_coordinator_queued_seconds_total{priority="ci",tenant="busy"} 10.0' in text
    assert 'maestro_coordinator_queued_seat_seconds_total{priority="ci",tenant="busy"} 40.0' in text


async def test_refusal_json_is_the_documented_shape(make_env: EnvFactory) -> None:
    env = await make_env(rate_limits="enforce", token_rate_per_s=0.1)
    headers = await env.auth("alpha")
    url = f"/alpha/ac/{sha(b'a')}"
    await env.client.get(url, headers=headers)
    resp = await env.client.get(url, headers=headers)
    body = json.loads(await resp.read())
    assert resp.status == 429
    assert set(body) >= {"error", "message", "retryAfterMs", "rule", "remediation", "tenant"}
    assert body["rule"] == "rate.token" and body["error"] == "too_many_requests"
    # a sliding-window counter's reset is aligned to its window, not to the first request:
    # anything up to the window (10 s), never nothing
    assert 50 <= body["retryAfterMs"] <= 10_000
    retry_after_s = int(resp.headers["Retry-After"])  # whole seconds, rounded up
    assert 1 <= retry_after_s <= 10 and retry_after_s * 1000 >= body["retryAfterMs"]


async def test_the_global_limit_is_one_budget_for_every_tenant(make_env: EnvFactory) -> None:
    env = await make_env(rate_limits="enforce", global_rate_per_s=0.2)  # 2 in any 10 s
    senders = {"alpha": await env.auth("alpha"), "beta": await env.auth("beta")}
    url = f"/{{}}/cas/{sha(b'g')}"
    statuses: list[int] = []
    for i in range(6):  # alternating tenants: one budget between them
        tenant = ("alpha", "beta")[i % 2]
        resp = await env.client.get(url.format(tenant), headers=senders[tenant])
        statuses.append(resp.status)
        if resp.status == 429:
            break
    # two served (three when the 10 s window turned meanwhile), then refused
    assert statuses in ([404, 404, 429], [404, 404, 404, 429]), statuses
    body = await resp.json()
    assert body["rule"] == "rate.global", body
    assert 0 < body["retryAfterMs"] <= 10_000 and int(resp.headers["Retry-After"]) >= 1
    assert "coordinator as a whole" in body["remediation"]
    other = ("alpha", "beta")[len(statuses) % 2]  # whoever did not send the refused one
    assert (await env.client.get(url.format(other), headers=senders[other])).status == 429


@pytest.mark.parametrize("swept", [True, False], ids=["coordinator", "library"])
async def test_in_memory_limits_sweep_inline_without_a_thread_per_key(
    swept: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Embedded, a limit check costs the event loop no thread hand-off: the storage's expiry
    sweep runs inline at most once a second (the library's hops to a thread per key at every
    hit), and still frees what expired."""
    from limits.aio.storage import MemoryStorage

    from maestro.coordinator.limits import RateLimits, SweptMemoryStorage

    hops: list[object] = []
    to_thread = asyncio.to_thread

    async def counted(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        hops.append(func)
        return await to_thread(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    storage = SweptMemoryStorage() if swept else MemoryStorage()
    limits = RateLimits(storage, mode="enforce", metrics=FairnessMetrics(CollectorRegistry()))
    policy = TenantPolicy(burst=3, rate_per_s=100.0)
    for _ in range(3):
        await limits.check("alpha", None, policy)
    with pytest.raises(Refusal):
        await limits.check("alpha", None, policy)
    await asyncio.sleep(1.1)  # the burst window and the sweep interval pass
    await limits.check("alpha", None, policy)
    await asyncio.sleep(0.05)  # the library's sweep task, if any, has run
    (events,) = storage.events.values()
    assert len(events) == 1  # the expired three are gone
    assert (hops == []) is swept, hops


async def test_grafana_dashboard_queries_only_metrics_the_coordinator_exports(
    make_env: EnvFactory,
) -> None:
    import re

    dashboard = Path(__file__).resolve().parents[2] / "docs/grafana/coordinator-fairness.json"
    doc = json.loads(dashboard.read_text())
    names = {
        m.removesuffix("_bucket")
        for panel in doc["panels"]
        for target in panel["targets"]
        for m in re.findall(r"maestro_coordinator_[a-z_]+", target["expr"])
    }
    env = await make_env(rate_limits="shadow", tenants={"alpha": {"burst": 1}})
    headers = await env.auth("alpha")
    for _ in range(2):
        await env.client.get(f"/alpha/cas/{sha(b'x')}", headers=headers)
    exported = await (await env.client.get("/metrics")).text()
    families = set(re.findall(r"^# TYPE (maestro_coordinator_[a-z_]+)", exported, re.M))
    counters = {f + "_total" for f in families}
    missing = sorted(n for n in names if n not in families and n not in counters)
    assert not missing, missing
    assert len(doc["panels"]) >= 10
