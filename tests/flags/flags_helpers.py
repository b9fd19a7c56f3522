"""Shared builders for the flag tests (imported by name: tests/ has no packages), and the real
processes of the sync tests (a coordinator, workspaces with their own daemons)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiohttp.test_utils import TestClient

from maestro.coordinator.auth import create_key
from maestro.coordinator.models import Role
from maestro.coordinator.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sync"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "coordinator"))
from coord_procs import needs_redis, run_redis
from sync_helpers import KEY_ENV, Coordinator, Workspace

__all__ = ["KEY_ENV", "Coordinator", "Workspace", "needs_redis", "run_redis"]

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
