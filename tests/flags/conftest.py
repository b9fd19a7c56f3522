"""Fixtures for the flag tests: private state dirs, and an in-process coordinator on loopback over a
real LMDB store with a settable clock (so a flag's expiry can be reached)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from maestro.coordinator.app import RUNNER_KWARGS, create_app
from maestro.coordinator.auth import create_key
from maestro.coordinator.models import Role
from maestro.coordinator.settings import Settings
from maestro.coordinator.store import Store

BEFORE_EXPIRY = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
AFTER_EXPIRY = datetime(2028, 1, 15, tzinfo=UTC).timestamp()


@dataclass
class Clock:
    now: float = BEFORE_EXPIRY

    def __call__(self) -> float:
        return self.now


@dataclass
class Coord:
    client: TestClient  # type: ignore[type-arg]
    store: Store
    clock: Clock
    keys: dict[tuple[str, Role], str] = field(default_factory=dict)

    def key(self, tenant: str, role: Role) -> str:
        if (tenant, role) not in self.keys:
            self.keys[tenant, role] = create_key(self.store, tenant, role).plaintext
        return self.keys[tenant, role]

    async def auth(self, tenant: str, role: Role) -> dict[str, str]:
        resp = await self.client.post("/v1/token", json={"api_key": self.key(tenant, role)})
        assert resp.status == 200, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private MAESTRO_STATE_DIR for code running in this process."""
    path = tmp_path / "state"
    monkeypatch.setenv("MAESTRO_STATE_DIR", str(path))
    return path


@pytest.fixture
async def coord(tmp_path: Path) -> AsyncIterator[Coord]:
    settings = Settings(data_dir=tmp_path / "coord", token_ttl_s=300, io_threads=2)
    with Store(settings.data_dir / "store") as store:
        store.add_tenant("alpha")
        store.add_tenant("beta")
        clock = Clock()
        app = create_app(settings, store=store, clock=clock)
        server = TestServer(app)
        await server.start_server(**RUNNER_KWARGS)
        client = TestClient(server)
        await client.start_server()
        try:
            yield Coord(client, store, clock)
        finally:
            await client.close()
