"""Work before admission is bounded per credential: a tenant's burst of hundreds of requests
does not get every one authenticated ahead of another tenant's request that arrived with it.
A real app on loopback over a real LMDB store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from coord_helpers import Clock, Env, sha
from coordinator_apps import serve

from maestro.coordinator.admission import PRE_ADMISSION_SLOTS, CredentialSlots
from maestro.coordinator.app import STATE, create_app
from maestro.coordinator.auth import Principal
from maestro.coordinator.settings import Settings
from maestro.coordinator.store import Store


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    settings = Settings(data_dir=tmp_path / "coord", metrics_public=True)
    store = Store(settings.data_dir / "store")
    store.add_tenant("alpha")
    store.add_tenant("beta")
    clock = Clock()
    client = await serve(create_app(settings, store=store, clock=clock))
    try:
        yield Env(client, store, clock)
    finally:
        await client.close()
        store.close()


async def test_a_burst_does_not_authenticate_ahead_of_another_tenant(env: Env) -> None:
    alpha = (await env.auth("alpha"))["Authorization"]
    beta = (await env.auth("beta"))["Authorization"]
    gate = env.client.app[STATE].gate
    verify: Callable[[web.Request], Awaitable[Principal | None]] = gate._principal
    order: list[str] = []

    async def slow_verify(request: web.Request) -> Principal | None:
        # authentication as CPU work (a signature check) that does not yield to the loop
        order.append(request.headers["Authorization"])
        until = time.perf_counter() + 0.001
        while time.perf_counter() < until:
            pass
        return await verify(request)

    gate._principal = slow_verify
    burst = 60
    host, port = env.client.server.host, env.client.server.port
    conns = [await asyncio.open_connection(host, port) for _ in range(burst + 1)]

    def request(tenant: str, credential: str) -> bytes:
        return (
            f"GET /{tenant}/cas/{sha(b'x')} HTTP/1.1\r\nHost: t\r\nAuthorization: {credential}"
            "\r\nConnection: close\r\n\r\n"
        ).encode()

    # everything written in one go: the server finds all of it readable in the same turn
    for _, writer in conns[:burst]:
        writer.write(request("alpha", alpha))
    conns[burst][1].write(request("beta", beta))
    answers = await asyncio.gather(*(reader.read() for reader, _ in conns))
    for _, writer in conns:
        writer.close()

    assert all(a.startswith(b"HTTP/1.1 404") for a in answers), answers[0][:200]
    assert len(order) == burst + 1
    # before, beta's request was authenticated after all 60 of alpha's
    assert order.index(beta) <= PRE_ADMISSION_SLOTS + 1, order.index(beta)


async def test_slots_hand_over_in_order_and_forget_idle_credentials() -> None:
    slots = CredentialSlots(2)
    await slots.acquire("a")
    await slots.acquire("a")
    await slots.acquire("b")  # another credential is not held up by a's
    served: list[int] = []

    async def wait(i: int) -> None:
        await slots.acquire("a")
        served.append(i)

    waiters = [asyncio.create_task(wait(i)) for i in range(3)]
    await asyncio.sleep(0)
    assert served == [] and slots.holders("a") == 2
    waiters[1].cancel()  # a waiter that goes away gives up its place
    slots.release("a")
    await asyncio.sleep(0)
    assert served == [0]
    slots.release("a")
    await asyncio.sleep(0)
    assert served == [0, 2]
    for _ in range(2):
        slots.release("a")
    slots.release("b")
    assert slots.holders("a") == 0 and slots._held == {} and slots._waiting == {}


async def test_a_waiter_cancelled_after_the_hand_over_frees_the_slot() -> None:
    slots = CredentialSlots(1)
    await slots.acquire("a")
    waiter = asyncio.create_task(slots.acquire("a"))
    await asyncio.sleep(0)
    slots.release("a")  # handed to the waiter ...
    waiter.cancel()  # ... which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert slots._held == {} and slots._waiting == {}


def _series(text: str, name: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name)
    }


async def test_metrics_split_time_in_the_server_from_event_loop_lag(env: Env) -> None:
    headers = await env.auth("alpha")
    assert (await env.client.get(f"/alpha/cas/{sha(b'x')}", headers=headers)).status == 404
    time.sleep(0.12)  # the loop (the server's too) is blocked: its timers run late
    await asyncio.sleep(0.05)
    text = await (await env.client.get("/metrics")).text()
    gated = _series(text, "maestro_coordinator_gated_request_seconds_count")
    assert gated['maestro_coordinator_gated_request_seconds_count{priority="interactive"}'] == 1
    lag = _series(text, "maestro_coordinator_event_loop_lag_seconds_bucket")
    below = lag['maestro_coordinator_event_loop_lag_seconds_bucket{le="0.05"}']
    assert lag['maestro_coordinator_event_loop_lag_seconds_bucket{le="+Inf"}'] > below
