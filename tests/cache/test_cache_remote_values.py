"""The remote mirror's action values: plain ActionResults on the wire, sealed once stored locally.

A stub stands in for the coordinator client; the caches are real LMDB environments."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cache_helpers import action_key, make_result, raw_get

from maestro.cache import Cache, Digest
from maestro.cache import layout as L
from maestro.cache.action import decode_action
from maestro.cache.remote import RemoteSync
from maestro.redaction import RedactedBlob


class StubCoordinator:
    """An in-memory /ac and /cas store with the calls RemoteSync makes."""

    token_info = None

    def __init__(self) -> None:
        self.ac: dict[str, bytes] = {}
        self.cas: dict[str, bytes] = {}

    async def get_ac(self, action_hex: str) -> bytes | None:
        return self.ac.get(action_hex)

    async def put_ac(self, action_hex: str, value: RedactedBlob) -> None:
        self.ac[action_hex] = value.data  # the client takes only what the egress gate cleared

    async def get_cas(self, digest: Digest | str) -> bytes | None:
        return self.cas.get(digest.hash if isinstance(digest, Digest) else digest)

    async def has_cas(self, digest: Digest | str) -> bool:
        return (digest.hash if isinstance(digest, Digest) else digest) in self.cas

    async def put(self, kind: str, hash_hex: str, data: RedactedBlob) -> None:
        assert kind == "cas"
        self.cas[hash_hex] = data.data


def _sync(cache: Cache, tmp_path: Path, name: str, stub: StubCoordinator) -> RemoteSync:
    sync = RemoteSync(
        cache, url="http://stub", tenant="t", api_key="k", queue_path=tmp_path / f"{name}.sqlite"
    )
    sync._client = stub  # type: ignore[assignment]
    return sync


def test_upload_sends_the_plain_result_and_download_stores_it_sealed(tmp_path: Path) -> None:
    stub = StubCoordinator()
    with Cache.open(tmp_path / "ci") as ci:
        result = make_result(stdout=ci.put_blob(b"captured output"), exit_code=1)
        ci.put_action(action_key(1), result)
        up = _sync(ci, tmp_path, "ci", stub)
        up.enqueue_upload(action_key(1), result)
        (queued,) = up.queue.peek_uploads(1)
        asyncio.run(up._upload_one(queued.action, queued.value, queued.attempts))
        up.queue.close()
    # The wire form is what the coordinator validates: the ActionResult alone, no envelope.
    assert decode_action(stub.ac[action_key(1)]) == result

    with Cache.open(tmp_path / "dev") as dev:
        down = _sync(dev, tmp_path, "dev", stub)
        assert asyncio.run(down._fetch(action_key(1)))
        assert dev.get_action(action_key(1)) == result
        path = dev.path
        down.queue.close()
    stored = raw_get(path, b"ac", bytes.fromhex(action_key(1)))
    assert stored is not None
    assert L.unseal_action(bytes.fromhex(action_key(1)), stored) == result.encode()


def test_a_remote_value_that_is_not_a_plain_result_is_not_stored(tmp_path: Path) -> None:
    """A sealed local value uploaded raw is not the wire form: a remote miss, nothing stored."""
    stub = StubCoordinator()
    key = bytes.fromhex(action_key(2))
    stub.ac[action_key(2)] = L.seal_action(key, make_result().encode())
    with Cache.open(tmp_path / "dev") as dev:
        down = _sync(dev, tmp_path, "dev", stub)
        assert not asyncio.run(down._fetch(action_key(2)))
        assert down.counters.remote_misses == 1
        assert dev.stats().actions == 0
        down.queue.close()
