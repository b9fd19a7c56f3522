"""/metrics without tenant names for anonymous callers: the tenant-labelled series only with the
metrics token, or on the separate metrics listener."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from coord_helpers import Clock, Env

from maestro.coordinator.app import METRICS_LISTENER, RUNNER_KWARGS, create_app
from maestro.coordinator.settings import Settings
from maestro.coordinator.store import Store

TOKEN = "metrics-" + "s3cr3t" * 4
TENANTS = ("acme-secret-project", "beta")

Factory = Callable[..., Any]


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Factory]:
    opened: list[tuple[TestClient, Store]] = []  # type: ignore[type-arg]

    async def start(**overrides: Any) -> tuple[Env, Any]:
        settings = Settings(data_dir=tmp_path / f"c{len(opened)}", **overrides)
        store = Store(settings.data_dir / "store")
        for name in TENANTS:
            store.add_tenant(name)
        app = create_app(settings, store=store, clock=Clock())
        server = TestServer(app)
        await server.start_server(**RUNNER_KWARGS)
        client = TestClient(server)
        await client.start_server()
        opened.append((client, store))
        env = Env(client, store, Clock())
        # traffic of a tenant: its name becomes a label value
        auth = await env.auth(TENANTS[0])
        await client.get(f"/{TENANTS[0]}/cas/{'0' * 64}", headers=auth)
        return env, app

    yield start
    for client, store in opened:
        await client.close()
        store.close()


def _names_tenants(text: str) -> bool:
    return any(name in text for name in TENANTS)


async def test_anonymous_callers_see_no_tenant_names(make: Factory) -> None:
    env, _ = await make()
    anonymous = await (await env.client.get("/metrics")).text()
    assert "maestro_coordinator_requests_total" in anonymous  # the rest is there
    assert "maestro_coordinator_cache_misses_total" in anonymous  # family, without samples
    assert not _names_tenants(anonymous)
    # a tenant's own token is no metrics credential
    tenant = await (await env.client.get("/metrics", headers=await env.auth("beta"))).text()
    assert not _names_tenants(tenant)


async def test_the_metrics_token_sees_everything(make: Factory) -> None:
    env, _ = await make(metrics_token=TOKEN)
    full = await (
        await env.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    ).text()
    assert f'maestro_coordinator_cache_misses_total{{kind="cas",tenant="{TENANTS[0]}"}} 1.0' in (
        full
    )
    for wrong in ("Bearer nope-nope-nope-nope", f"Basic {TOKEN}", TOKEN):
        text = await (await env.client.get("/metrics", headers={"Authorization": wrong})).text()
        assert not _names_tenants(text), wrong


async def test_a_separate_listener_serves_the_full_metrics(make: Factory) -> None:
    env, app = await make(metrics_port=0, metrics_host="127.0.0.1")
    listener = app[METRICS_LISTENER]
    assert listener.port
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{listener.port}/metrics") as resp:
            assert resp.status == 200
            assert TENANTS[0] in await resp.text()
        async with session.get(f"http://127.0.0.1:{listener.port}/v1/token") as resp:
            assert resp.status in (404, 405)  # metrics only
    assert not _names_tenants(await (await env.client.get("/metrics")).text())


def test_the_metrics_token_is_a_secret_setting() -> None:
    settings = Settings(metrics_token=TOKEN)
    assert TOKEN not in repr(settings)
    with pytest.raises(ValueError):
        Settings(metrics_token="short")
