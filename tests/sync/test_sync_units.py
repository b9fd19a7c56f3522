"""Fast checks of the sync building blocks: the persisted queue and the circuit breaker."""

from __future__ import annotations

from pathlib import Path

from maestro.cache.remote import CircuitBreaker
from maestro.cache.sync_queue import SyncQueue


def test_queue_survives_reopen_and_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    q = SyncQueue(path, max_items=3)
    for i in range(5):
        q.push_upload(f"{i:064x}", b"v%d" % i)
    q.push_upload(f"{4:064x}", b"again")  # replaces, does not grow
    q.push_telemetry(b'{"a":1}')
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
    q.push_upload("0" * 64, b"x")
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
