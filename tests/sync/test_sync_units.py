"""Fast checks of the sync building blocks: the persisted queue, the circuit breaker, the
upload backoff and how coordinator errors are classified."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from maestro.cache import ActionResult, Cache, Provenance, TestOutcome, Timing
from maestro.cache.circuit import CircuitBreaker
from maestro.cache.remote import RemoteSync
from maestro.cache.sync_queue import SyncQueue
from maestro.errors import CoordinatorError
from maestro.redaction import Redactor

blob = Redactor(detectors=False).redact_blob  # the queue takes cleared bytes only


def test_queue_survives_reopen_and_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    q = SyncQueue(path, max_items=3)
    for i in range(5):
        q.push_upload(f"{i:064x}", blob(b"v%d" % i))
    q.push_upload(f"{4:064x}", blob(b"again"))  # replaces, does not grow
    q.push_telemetry(blob(b'{"a":1}'))
    q.close()
    q = SyncQueue(path, max_items=3)
    items = q.peek_uploads(10)
    assert [i.action[-1] for i in items] == ["2", "3", "4"]
    assert items[-1].value == b"again"
    q.failed_upload(items[0].action)
    assert q.peek_uploads(1)[0].attempts == 1
    q.done_upload(items[0].action)
    assert q.counts().uploads == 2 and q.counts().telemetry == 1
    assert q.clear_uploads() == 2
    q.close()


def test_damaged_queue_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    path.write_bytes(b"not a database" * 100)
    q = SyncQueue(path)
    q.push_upload("0" * 64, blob(b"x"))
    assert q.counts().uploads == 1
    assert list(tmp_path.glob("q.sqlite.damaged-*"))
    q.close()


def test_circuit_breaker() -> None:
    now = [0.0]
    b = CircuitBreaker(threshold=3, cooldown_s=2.0, max_cooldown_s=8.0, clock=lambda: now[0])
    for _ in range(2):
        assert b.allow()
        b.failure()
    assert b.state == "closed"
    b.failure()
    assert b.state == "open" and not b.allow()
    now[0] = 2.5
    assert b.state == "half-open"
    assert b.allow() and not b.allow()  # one probe at a time
    b.failure()  # the probe failed: open again, longer
    assert b.state == "open" and b.cooldown_s == 4.0
    now[0] = 7.0
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.cooldown_s == 2.0


def test_circuit_breaker_cooldown_is_capped() -> None:
    now = [0.0]
    b = CircuitBreaker(threshold=1, cooldown_s=1.0, max_cooldown_s=3.0, clock=lambda: now[0])
    b.failure()
    for expected in (2.0, 3.0, 3.0):  # every failed probe doubles it, up to the cap
        now[0] += 10
        assert b.allow()
        b.failure()
        assert b.cooldown_s == expected


def test_circuit_breaker_one_probe_across_threads() -> None:
    now = [0.0]
    b = CircuitBreaker(threshold=1, cooldown_s=1.0, clock=lambda: now[0])
    b.failure()
    now[0] = 5.0
    allowed: list[bool] = []
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait()
        allowed.append(b.allow())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 1


def _result() -> ActionResult:
    return ActionResult(
        exit_code=0,
        tests=[TestOutcome(node_id="tests/test_a.py::test_ok", outcome="passed", duration_s=0.01)],
        timing=Timing(started_at=datetime(2026, 1, 2, tzinfo=UTC), wall_s=1.0, cpu_s=1.0),
        provenance=Provenance.current(),
    )


@pytest.fixture
def sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RemoteSync]:
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(tmp_path / "cache"))
    engine = RemoteSync(
        Cache.open(),
        url="http://127.0.0.1:9",
        tenant="team",
        api_key="mk_x_y",
        queue_path=tmp_path / "q.sqlite",
        backoff_s=(0.5, 4.0),
    )
    engine.role = "read-write"
    try:
        yield engine
    finally:
        engine.queue.close()
        engine.local.close()


class _Client:
    """Stands in for CoordinatorClient: every PUT fails with the given error."""

    def __init__(self, error: CoordinatorError) -> None:
        self.error = error
        self.token_info = None

    async def put(self, *args: Any) -> None:
        raise self.error

    async def put_ac(self, *args: Any) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "dropped"),
    [
        (CoordinatorError("PUT ac/x: HTTP 400: not an ActionResult", status=400), True),
        (CoordinatorError("PUT ac/x: HTTP 413", status=413), True),
        (CoordinatorError("PUT ac/x: HTTP 503", status=503), False),
        # classified by status, never by message text: an unreachable server whose error
        # happens to mention a status is retried
        (CoordinatorError("coordinator unreachable: proxy said HTTP 400"), False),
    ],
)
def test_upload_errors_are_classified_by_status(
    sync: RemoteSync, error: CoordinatorError, dropped: bool
) -> None:
    action = "ab" * 32
    sync.queue.push_upload(action, blob(_result().encode()))
    sync._client = _Client(error)  # type: ignore[assignment]
    item = sync.queue.peek_uploads(1)[0]
    if dropped:
        asyncio.run(sync._upload_one(item.action, item.value, item.attempts))
        assert sync.queue.counts().uploads == 0 and sync.counters.dropped == 1
    else:
        with pytest.raises(CoordinatorError):
            asyncio.run(sync._upload_one(item.action, item.value, item.attempts))
        assert sync.queue.peek_uploads(1)[0].attempts == 1 and sync.counters.dropped == 0


def test_upload_backoff_doubles_with_jitter_up_to_the_cap(sync: RemoteSync) -> None:
    sleeps: list[float] = []
    retry_at_seen: list[float | None] = []
    calls = [0]

    async def drain_once() -> None:
        calls[0] += 1
        if calls[0] <= 6:
            raise CoordinatorError("coordinator unreachable: refused")

    async def fake_sleep(seconds: float) -> None:
        retry_at_seen.append(sync.retry_at)
        sleeps.append(seconds)

    async def main() -> None:
        sync._stopping = asyncio.Event()
        await sync._drain_with_backoff()

    sync._drain_once = drain_once  # type: ignore[method-assign]
    sync._sleep = fake_sleep  # type: ignore[method-assign]
    asyncio.run(main())
    assert calls[0] == 7 and sync.counters.upload_failures == 6
    assert all(at is not None for at in retry_at_seen) and sync.retry_at is None
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 1.5 and 2.0 <= sleeps[2] <= 2.5
    assert sleeps[3:] == [4.0, 4.0, 4.0]
    assert sync.counters.last_error == "coordinator unreachable: refused"


def test_upload_backoff_ends_when_the_sync_stops(sync: RemoteSync) -> None:
    calls = [0]

    async def drain_once() -> None:
        calls[0] += 1
        raise OSError("connection refused")

    async def main() -> None:
        stopping = asyncio.Event()
        sync._stopping = stopping

        async def fake_sleep(seconds: float) -> None:
            stopping.set()  # stop() arrives while we back off

        sync._sleep = fake_sleep  # type: ignore[method-assign]
        await sync._drain_with_backoff()  # returns quietly, no RetryError

    sync._drain_once = drain_once  # type: ignore[method-assign]
    asyncio.run(main())
    assert calls[0] == 2
