"""Tenant flags shared by two coordinator replicas through one real redis-server: a change made
through one replica is served by the other, concurrent changes are both kept (WATCH)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from coordinator_apps import serve
from flags_helpers import needs_redis, run_redis

from maestro.coordinator.app import create_app
from maestro.coordinator.auth import new_key
from maestro.coordinator.models import Role
from maestro.coordinator.settings import Settings
from maestro.coordinator.state import RedisState

pytestmark = needs_redis
URL = "/v1/tenants/team/flags"


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[tuple[TestClient, TestClient, dict[Role, str]]]:  # type: ignore[type-arg]
    with run_redis(tmp_path) as redis:
        setup = RedisState.from_url(redis.url)
        await setup.add_tenant("team")
        keys = {}
        for role in (Role.READ, Role.ADMIN):
            key = new_key("team", role)
            await setup.add_key(key.record)
            keys[role] = key.plaintext
        await setup.close()
        clients = []
        for name in ("a", "b"):
            settings = Settings(
                data_dir=tmp_path / name,
                state_backend="redis",
                redis_url=redis.url,
                # flags never touch blobs: an upstream nobody listens on is enough here
                blob_backend="http",
                blob_upstream_url="http://127.0.0.1:9",
                io_threads=2,
            )
            client = await serve(create_app(settings))
            clients.append(client)
        try:
            yield clients[0], clients[1], keys
        finally:
            for client in clients:
                await client.close()


async def _auth(client: TestClient, key: str) -> dict[str, str]:  # type: ignore[type-arg]
    resp = await client.post("/v1/token", json={"api_key": key})
    assert resp.status == 200, await resp.text()
    return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def test_replicas_share_overrides_and_audit(
    replicas: tuple[TestClient, TestClient, dict[Role, str]],  # type: ignore[type-arg]
) -> None:
    a, b, keys = replicas
    admin_a, admin_b = await _auth(a, keys[Role.ADMIN]), await _auth(b, keys[Role.ADMIN])
    reader_b = await _auth(b, keys[Role.READ])
    put = await a.put(f"{URL}/ml.speculation.enabled", json={"kill": True, "reason": "hot"},
                      headers=admin_a)  # fmt: skip
    assert put.status == 200, await put.text()
    seen = await b.get(URL, headers=reader_b)
    assert (await seen.json())["overrides"]["ml.speculation.enabled"]["kill"] is True
    etag = seen.headers["ETag"]
    again = await a.get(URL, headers={**await _auth(a, keys[Role.READ]), "If-None-Match": etag})
    assert again.status == 304  # the same ETag on every replica

    names = ["ml.fail-first", "cas.mirror.enabled", "lsp.enabled", "ml.predictive.threshold"]
    values: list[object] = ["off", False, False, 0.5]
    results = await asyncio.gather(
        *(
            (a if i % 2 else b).put(
                f"{URL}/{name}",
                json={"value": value, "reason": f"r{i}"},
                headers=admin_a if i % 2 else admin_b,
            )
            for i, (name, value) in enumerate(zip(names, values, strict=True))
        )
    )
    assert [r.status for r in results] == [200] * 4
    final = await (await a.get(URL, headers=admin_a)).json()
    assert set(final["overrides"]) == {"ml.speculation.enabled", *names}
    trail = await (await b.get(f"{URL}/audit", headers=admin_b)).json()
    assert len(trail["entries"]) == 5
