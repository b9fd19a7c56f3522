"""The daemon's sync engine (RemoteSync) under a coordinator that enforces a tenant's burst:
it backs off for the advised time (status says until when and why), loses nothing, counts no
failed attempt, and drains its queue once the coordinator lets it. Real `maestro coordinator
serve` on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from coord_procs import Replica, start_coordinator, stop

from maestro.cache import Cache
from maestro.cache.remote import RemoteSync
from maestro.coordinator.auth import create_key
from maestro.coordinator.client import send_telemetry
from maestro.coordinator.models import Role
from maestro.coordinator.records import TenantUpdate
from maestro.coordinator.store import Store
from maestro.wire import RemoteStatus

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Replica, str]]:
    with Store(tmp_path / "coord" / "store") as store:
        store.add_tenant("team")
        store.update_tenant("team", TenantUpdate(policy_changes={"burst": 2}))
        key = create_key(store, "team", Role.READ_WRITE).plaintext
    replica = start_coordinator(tmp_path, "coord", {"rate_limits": "enforce"})
    try:
        yield replica, key
    finally:
        stop(replica.proc)


def _wait(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_sync_backs_off_on_429_and_recovers(served: tuple[Replica, str], tmp_path: Path) -> None:
    replica, key = served
    cache = Cache.open(tmp_path / "cache")
    sync = RemoteSync(
        cache,
        url=replica.base,
        tenant="team",
        api_key=key,
        queue_path=tmp_path / "queue.sqlite",
        backoff_s=(0.05, 0.2),
        telemetry_transport=send_telemetry,
    )
    sync.start()
    try:
        assert _wait(lambda: sync.role == "read-write", 10)
        seen_backoff: list[RemoteStatus] = []
        for i in range(6):
            sync.upload_telemetry({"run": i, "outcome": "passed"})

        def drained() -> bool:
            status = sync.status()
            if status.backoff_until:
                seen_backoff.append(status)
            return sync.telemetry.batches_sent == 6

        assert _wait(drained, 20), sync.status()
        assert seen_backoff, "the coordinator's 429 never showed in the status"
        first = seen_backoff[0]
        assert first.backoff_rule == "rate.tenant_burst"
        assert first.backoff_until is not None and first.backoff_until > time.time() - 5
        final = sync.status()
        assert final.telemetry_queue == 0 and final.dropped == 0
        assert final.backoff_until is None  # recovered
        # the server saw each batch once: nothing was lost or sent twice
        import urllib.request

        with urllib.request.urlopen(f"{replica.base}/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        assert 'maestro_coordinator_telemetry_rows_total{tenant="team"} 6.0' in metrics
        assert 'rule="rate.tenant_burst"' in metrics
    finally:
        sync.stop()
        cache.close()
