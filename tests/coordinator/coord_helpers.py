"""Shared builders for coordinator tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from aiohttp.test_utils import TestClient, TestServer

from maestro.coordinator.app import RUNNER_KWARGS, create_app
from maestro.coordinator.auth import create_key
from maestro.coordinator.models import Role
from maestro.coordinator.settings import Settings
from maestro.coordinator.store import Store


@dataclass
class Clock:
    now: float = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Env:
    client: TestClient  # type: ignore[type-arg]
    store: Store
    clock: Clock
    keys: dict[tuple[str, Role], str] = field(default_factory=dict)

    def key(self, tenant: str, role: Role = Role.READ_WRITE) -> str:
        if (tenant, role) not in self.keys:
            self.keys[tenant, role] = create_key(self.store, tenant, role).plaintext
        return self.keys[tenant, role]

    async def token(self, tenant: str, role: Role = Role.READ_WRITE) -> str:
        resp = await self.client.post("/v1/token", json={"api_key": self.key(tenant, role)})
        assert resp.status == 200, await resp.text()
        token: str = (await resp.json())["token"]
        return token

    async def auth(self, tenant: str, role: Role = Role.READ_WRITE) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(tenant, role)}"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.asynccontextmanager
async def served(settings: Settings, tenants: Iterable[str]) -> AsyncIterator[Env]:
    """An in-process coordinator with `settings` on loopback, over a real LMDB store holding
    `tenants`, and a client of it."""
    store = Store(settings.data_dir / "store")
    for tenant in tenants:
        store.add_tenant(tenant)
    clock = Clock()
    server = TestServer(create_app(settings, store=store, clock=clock))
    await server.start_server(**RUNNER_KWARGS)
    client = TestClient(server)
    await client.start_server()
    try:
        yield Env(client, store, clock)
    finally:
        await client.close()
        store.close()
