"""The coordinator client honours 429 + Retry-After: it backs off (failing fast, without network
calls, so callers fall back to their local cache), says until when, and recovers afterwards.
Real coordinator app on loopback with enforced limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from maestro.coordinator.app import RUNNER_KWARGS, create_app
from maestro.coordinator.auth import create_key
from maestro.coordinator.client import CoordinatorBackoffError, CoordinatorClient, retry_advice
from maestro.coordinator.models import Role
from maestro.coordinator.settings import Settings
from maestro.coordinator.store import Store
from maestro.redaction import Redactor


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, str, Store]]:
    settings = Settings(
        data_dir=tmp_path / "coord", rate_limits="enforce", tenants={"alpha": {"burst": 2}}
    )
    with Store(settings.data_dir / "store") as store:
        store.add_tenant("alpha")
        key = create_key(store, "alpha", Role.READ_WRITE).plaintext
        server = TestServer(create_app(settings, store=store))
        await server.start_server(**RUNNER_KWARGS)
        try:
            yield str(server.make_url("")), key, store
        finally:
            await server.close()


def _requests_served(store: Store, metrics: str) -> float:
    return sum(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("maestro_coordinator_requests_total{") and "/{tenant}" in line
    )


async def test_client_backs_off_then_recovers(served: tuple[str, str, Store]) -> None:
    base, key, store = served
    async with CoordinatorClient(base, "alpha", key) as client:
        assert await client.get_cas("0" * 64) is None
        assert await client.get_cas("1" * 64) is None
        with pytest.raises(CoordinatorBackoffError) as refused:
            await client.get_cas("2" * 64)
        assert refused.value.status == 429 and refused.value.rule == "rate.tenant_burst"
        assert client.backing_off and client.backoff_until is not None
        assert 0 < client.backoff_until - time.time() <= 1.05
        async with client.session.get(f"{base}/metrics") as resp:
            before = _requests_served(store, await resp.text())
        for _ in range(5):  # fail fast: nothing reaches the server while backing off
            with pytest.raises(CoordinatorBackoffError):
                await client.put_cas(Redactor().redact_blob(b"data"))
        async with client.session.get(f"{base}/metrics") as resp:
            assert _requests_served(store, await resp.text()) == before
        await asyncio.sleep(client.backoff_until - time.time() + 0.05)
        assert await client.get_cas("3" * 64) is None  # recovered
        assert not client.backing_off and client.backoff_until is None


def test_retry_advice_reads_body_then_header() -> None:
    assert retry_advice({}, b'{"retryAfterMs": 1500, "rule": "r"}') == (1.5, "r")
    assert retry_advice({"retry-after": "3"}, b"busy") == (3.0, None)
    assert retry_advice({"retry-after": "999999"}, b"") == (600.0, None)  # capped
    assert retry_advice({}, b"{}") is None
    assert retry_advice({"retry-after": "soon"}, b'{"retryAfterMs": true}') is None
