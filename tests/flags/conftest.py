"""Fixtures for the flag tests: private state dirs, and an in-process coordinator on loopback over a
real LMDB store with a settable clock (so a flag's expiry can be reached)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from flags_helpers import Clock, Coord

from maestro.coordinator.app import RUNNER_KWARGS, create_app
from maestro.coordinator.settings import Settings
from maestro.coordinator.store import Store


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
