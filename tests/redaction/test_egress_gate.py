"""The egress gate: only a RedactedBlob enters the upload queue or is sent, and the last scan
before a PUT blocks (or, not enforcing, counts) anything that still holds a secret."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from maestro.cache import ActionResult, Cache, Provenance, TestOutcome, Timing
from maestro.cache.remote import RemoteSync
from maestro.cache.sync_queue import SyncQueue
from maestro.redaction import Redacted, RedactedBlob, Redactor

TOKEN = "ghp_" + "Ab1Cd2Ef3Gh4" * 3
KEY = "mk_0123456789abcdef_" + "s3cr3tS3cr3tS3cr3tS3cr3t"


def _result(message: str | None = None, stdout: Any = None) -> ActionResult:
    outcome = TestOutcome(
        node_id="tests/test_a.py::test_x",
        outcome="failed",
        duration_s=0.01,
        # a result built around the engine's redaction (what the gate is there for)
        message=cast(Redacted, message),
    )
    return ActionResult(
        exit_code=1,
        tests=[outcome],
        stdout=stdout,
        timing=Timing(started_at=datetime(2026, 1, 2, tzinfo=UTC), wall_s=1.0, cpu_s=1.0),
        provenance=Provenance.current(),
    )


class _Recorder:
    """Stands in for CoordinatorClient: records what would have been sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes]] = []
        self.token_info = None

    async def token(self) -> str:
        return "mt_x"

    async def has_cas(self, digest: Any) -> bool:
        return False

    async def put(self, kind: str, key: str, data: RedactedBlob) -> None:
        self.sent.append((kind, key, data.data))

    async def put_ac(self, key: str, data: RedactedBlob) -> None:
        self.sent.append(("ac", key, data.data))

    async def put_cas(self, data: RedactedBlob) -> None:
        self.sent.append(("cas", "", data.data))


@pytest.fixture(params=[True, False], ids=["enforce", "warn"])
def sync(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RemoteSync]:
    engine = RemoteSync(
        Cache.open(tmp_path / "cache"),
        url="http://127.0.0.1:9",
        tenant="team",
        api_key=KEY,
        queue_path=tmp_path / "q.sqlite",
        redactor=Redactor.from_environ({"GITHUB_TOKEN": TOKEN}),
        enforce=request.param,
    )
    engine.role = "read-write"
    engine._client = _Recorder()  # type: ignore[assignment]
    try:
        yield engine
    finally:
        engine.queue.close()
        engine.local.close()


def _sent(sync: RemoteSync) -> list[tuple[str, str, bytes]]:
    return cast(_Recorder, sync.client).sent


def test_only_the_redaction_module_makes_a_redacted_blob(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        RedactedBlob(b"raw")
    q = SyncQueue(tmp_path / "q.sqlite")
    try:
        with pytest.raises(TypeError):
            q.push_upload("0" * 64, b"raw")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            q.push_telemetry(b"raw")  # type: ignore[arg-type]
    finally:
        q.close()


def test_vet_leaves_clean_bytes_alone_and_names_kinds_only() -> None:
    redactor = Redactor()
    clean = redactor.vet(b"tests/test_a.py::test_x PASSED")
    assert clean.blob is not None and clean.blob.data == b"tests/test_a.py::test_x PASSED"
    dirty = redactor.vet(f"token {TOKEN}".encode())
    assert dirty.blocked and dirty.kinds == ("github-token",)
    assert redactor.vet(f"token {TOKEN}".encode(), enforce=False).blob is not None


def test_a_result_holding_a_secret_is_not_queued_when_enforcing(
    sync: RemoteSync, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    sync.enqueue_upload("ab" * 32, _result(f"assert token == {TOKEN}"))
    sync.enqueue_upload("cd" * 32, _result("assert 1 == 2"))
    queued = {u.action for u in sync.queue.peek_uploads(10)}
    if sync.enforce:
        assert queued == {"cd" * 32}
        assert sync.counters.egress_blocked == 1 and sync.counters.egress_flagged == 0
    else:
        assert queued == {"ab" * 32, "cd" * 32}
        assert sync.counters.egress_flagged == 1 and sync.counters.egress_blocked == 0
    assert "github-token" in caplog.text and TOKEN not in caplog.text
    status = sync.status()
    assert status.egress_blocked + status.egress_flagged == 1


def test_the_last_scan_blocks_a_referenced_blob_holding_a_secret(sync: RemoteSync) -> None:
    """A stdout blob that reached the CAS unredacted (an older Maestro, a bug) is caught right
    before the PUT: nothing of its entry is sent when enforcing."""
    (dirty,) = sync.local.put_blobs([f"printed {KEY}\n".encode()])
    (clean,) = sync.local.put_blobs([b"nothing to see\n"])
    sync.queue.push_upload("ab" * 32, Redactor().redact_blob(_result(stdout=dirty).encode()))
    sync.queue.push_upload("cd" * 32, Redactor().redact_blob(_result(stdout=clean).encode()))
    for item in sync.queue.peek_uploads(10):
        asyncio.run(sync._upload_one(item.action, item.value, item.attempts))
    sent = _sent(sync)
    keys = {key for kind, key, _ in sent if kind == "ac"}
    assert all(KEY.encode() not in data for _, _, data in sent) or not sync.enforce
    if sync.enforce:
        assert keys == {"cd" * 32}
        assert sync.counters.egress_blocked == 1
    else:
        assert keys == {"ab" * 32, "cd" * 32}
        assert sync.counters.egress_flagged == 1
    assert sync.queue.counts().uploads == 0


def test_telemetry_rows_are_redacted_before_they_are_queued(sync: RemoteSync) -> None:
    sync.upload_telemetry({"rows": [{"test": f"tests/test_a.py::test_x[{TOKEN}]", "ms": 3}]})
    (batch,) = sync.queue.peek_telemetry(1)
    assert TOKEN.encode() not in batch.payload
    assert b"[REDACTED:github-token:" in batch.payload or b"[REDACTED:env-github-token:" in (
        batch.payload
    )

    async def drain() -> None:
        sync._stopping = asyncio.Event()
        await sync._drain_once()

    asyncio.run(drain())
    assert [kind for kind, _, _ in _sent(sync)] == ["cas"]
    assert sync.telemetry.batches_sent == 1


def test_an_encoded_redacted_result_passes_the_last_scan() -> None:
    """msgpack frames strings with bytes that are not UTF-8: a marker followed by them is still
    a marker, not an 'Authorization: <long value>'."""
    redactor = Redactor()
    message = redactor.redact(
        f"assert 'Authorization: Basic {TOKEN}' == 'x'; password = 'hunter22'"
    )
    encoded = _result(message).encode()
    assert redactor.vet(encoded).kinds == ()
