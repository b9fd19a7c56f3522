"""Fixtures: an in-process coordinator app over a real LMDB store in tmp_path, with a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from coord_helpers import Clock, Env
from coordinator_apps import serve

from maestro.coordinator.app import create_app
from maestro.coordinator.settings import Settings
from maestro.coordinator.store import Store


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "coord",
        token_ttl_s=300,
        max_blob_bytes=2 << 20,
        access_log=True,
        io_threads=4,
        metrics_public=True,  # the tests read per-tenant series without a metrics token
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with Store(settings.data_dir / "store") as s:
        s.add_tenant("alpha")
        s.add_tenant("beta")
        s.add_tenant("rawco", raw_ac=True)
        yield s


@pytest.fixture
async def env(settings: Settings, store: Store) -> AsyncIterator[Env]:
    clock = Clock()
    app = create_app(settings, store=store, clock=clock)
    client = await serve(app)
    try:
        yield Env(client, store, clock)
    finally:
        await client.close()
