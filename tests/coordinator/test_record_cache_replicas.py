"""Replicas keep the key and tenant records they read from Redis for a short time: a light read
then costs no Redis round trip for its credential, and a revocation still stops a key on every
replica within a bound. Two real `maestro coordinator serve` replicas, Debian's redis-server
and nginx on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from coord_procs import (
    Nginx,
    Redis,
    Replica,
    add_tenant,
    bearer,
    http,
    needs_nginx,
    needs_redis,
    run_replicas,
    token,
)

from maestro.coordinator.auth import new_key
from maestro.coordinator.models import Role
from maestro.coordinator.records import KeyRecord, TenantUpdate
from maestro.coordinator.state import RecordCache, RedisState

pytestmark = [needs_redis, needs_nginx]

TTL_S = 2.0
TENANT = "team"


@dataclass
class Pair:
    redis: Redis
    nginx: Nginx
    a: Replica
    b: Replica
    admin_key: str


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    tmp = tmp_path_factory.mktemp("recordcache")
    with run_replicas(tmp, record_cache_ttl_s=str(TTL_S)) as r:
        _, admin = asyncio.run(add_tenant(r.redis.url, TENANT, Role.ADMIN, "bootstrap"))
        yield Pair(r.redis, r.nginx, r.a, r.b, admin)


def _new_key(pair: Pair) -> tuple[str, str]:
    admin = token(pair.a.base, pair.admin_key)
    status, body, _ = http(
        "POST",
        f"{pair.a.base}/v1/tenants/{TENANT}/keys",
        data=json.dumps({"role": "read-write", "label": "ci"}).encode(),
        headers={**bearer(admin), "Content-Type": "application/json"},
    )
    assert status == 201, body
    created = json.loads(body)
    return created["api_key"], created["key"]["key_id"]


def _url(replica: Replica, data: bytes = b"absent") -> str:
    return f"{replica.base}/{TENANT}/cas/{hashlib.sha256(data).hexdigest()}"


def _warm(pair: Pair, credentials: list[str]) -> None:
    """Every replica has read (and now keeps) the records behind these credentials."""
    for replica in (pair.a, pair.b):
        for credential in credentials:
            assert http("GET", _url(replica), headers=bearer(credential))[0] == 404


async def _with_state(url: str, what: str, key_id: str = "") -> None:
    """An admin process of its own (as a provisioning script is): its writes are announced."""
    state = RedisState.from_url(url)
    try:
        if what == "revoke":
            await state.revoke_key(key_id)
        elif what == "raw_ac":
            await state.update_tenant(TENANT, TenantUpdate(raw_ac=True))
        elif what == "silent_revoke":
            # a revocation whose announcement is lost: only the TTL can bound it
            raw = await state.r.get(state._k("key", key_id))
            assert raw is not None
            revoked = KeyRecord.model_validate_json(raw).revoked()
            await state.r.set(state._k("key", key_id), revoked.model_dump_json())
    finally:
        await state.close()


def test_a_key_revoked_through_a_is_refused_by_b_at_once(pair: Pair) -> None:
    api_key, key_id = _new_key(pair)
    tok = token(pair.b.base, api_key)
    _warm(pair, [api_key, tok])
    admin = token(pair.a.base, pair.admin_key)
    status, _, _ = http(
        "DELETE", f"{pair.a.base}/v1/tenants/{TENANT}/keys/{key_id}", headers=bearer(admin)
    )
    assert status == 200
    for replica in (pair.b, pair.a):
        assert http("GET", _url(replica), headers=bearer(tok))[0] == 401
        assert http("GET", _url(replica), headers=bearer(api_key))[0] == 401


def test_a_key_revoked_by_another_process_is_refused_at_once(pair: Pair) -> None:
    api_key, key_id = _new_key(pair)
    tok = token(pair.a.base, api_key)
    _warm(pair, [api_key, tok])
    asyncio.run(_with_state(pair.redis.url, "revoke", key_id))
    for replica in (pair.a, pair.b):
        assert http("GET", _url(replica), headers=bearer(tok))[0] == 401
        assert http("GET", _url(replica), headers=bearer(api_key))[0] == 401


def test_a_revocation_whose_announcement_is_lost_holds_within_the_ttl(pair: Pair) -> None:
    api_key, key_id = _new_key(pair)
    tok = token(pair.b.base, api_key)
    _warm(pair, [tok])
    asyncio.run(_with_state(pair.redis.url, "silent_revoke", key_id))
    revoked_at = time.monotonic()
    refused_after: dict[str, float] = {}
    while len(refused_after) < 2 and time.monotonic() - revoked_at < TTL_S + 3:
        for replica in (pair.a, pair.b):
            seen = replica.base in refused_after
            if not seen and http("GET", _url(replica), headers=bearer(tok))[0] == 401:
                refused_after[replica.base] = time.monotonic() - revoked_at
        time.sleep(0.05)
    assert len(refused_after) == 2, refused_after
    # the records were cached (accepted for a while) and never past the bound
    assert max(refused_after.values()) <= TTL_S + 0.5, refused_after


def test_a_tenant_change_is_seen_by_both_replicas_at_once(pair: Pair) -> None:
    api_key, _ = _new_key(pair)
    _warm(pair, [api_key])
    opaque = b"not an ActionResult"
    digest = hashlib.sha256(b"ac-key").hexdigest()
    url_b = f"{pair.b.base}/{TENANT}/ac/{digest}"
    assert http("PUT", url_b, data=opaque, headers=bearer(api_key))[0] == 400
    asyncio.run(_with_state(pair.redis.url, "raw_ac"))
    assert http("PUT", url_b, data=opaque, headers=bearer(api_key))[0] == 200


def _redis_commands(url: str) -> int:
    """Commands Redis has run so far (every kind, this INFO call excluded)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def test_a_light_read_costs_no_redis_round_trip_for_its_credential(pair: Pair) -> None:
    api_key, _ = _new_key(pair)
    blob = b"light" * 800
    url = _url(pair.b, blob)
    tok = token(pair.b.base, api_key)
    assert http("PUT", url, data=blob, headers=bearer(tok))[0] == 200
    assert http("GET", url, headers=bearer(tok))[0] == 200
    reads = 40
    before = _redis_commands(pair.redis.url)
    started = time.monotonic()
    for _ in range(reads):
        status, body, _ = http("GET", url, headers=bearer(tok))
        assert status == 200 and body == blob
    elapsed = time.monotonic() - started
    used = _redis_commands(pair.redis.url) - before
    # without the cache: 2 per read (key and tenant records) plus the limits' leases; with it,
    # a re-read per record and TTL, the keyring once a second and a lease now and then
    assert used <= 6 + 4 * (elapsed / TTL_S + 1) + 2 * elapsed, (used, elapsed)


def test_the_cache_keeps_records_only_for_the_ttl_and_drops_on_invalidation() -> None:
    now = [0.0]
    cache = RecordCache(1.0, clock=lambda: now[0])
    record = new_key(TENANT, Role.READ, "x").record
    cache.put("k", record, cache.epoch, now[0])
    assert cache.get("k") is record
    now[0] = 0.99
    assert cache.get("k") is record
    now[0] = 1.0
    assert cache.get("k") is None
    # a read that started before an invalidation is not kept: it may predate the change
    epoch = cache.epoch
    cache.drop("k")
    cache.put("k", record, epoch, now[0])
    assert cache.get("k") is None
    cache.put("k", record, cache.epoch, now[0])
    cache.drop()
    assert cache.get("k") is None
    # TTL 0: nothing is kept
    off = RecordCache(0.0, clock=lambda: now[0])
    off.put("k", record, off.epoch, now[0])
    assert off.get("k") is None


def test_settings_bound_the_ttl(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from maestro.coordinator.settings import Settings

    assert Settings(data_dir=tmp_path).record_cache_ttl_s == 1.0
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, record_cache_ttl_s=60)


def test_a_small_blob_read_again_costs_no_upstream_round_trip(pair: Pair) -> None:
    """Kept in memory after its hash checked: even a copy rotting upstream meanwhile is not
    read again within the TTL (the bytes served are the verified ones)."""
    from maestro.coordinator.blobs import upstream_path

    api_key, _ = _new_key(pair)
    blob = b"small and hot " * 100
    url = _url(pair.b, blob)
    assert http("PUT", url, data=blob, headers=bearer(api_key))[0] == 200
    assert http("GET", url, headers=bearer(api_key))[1] == blob  # read upstream, verified, kept
    tenant = asyncio.run(_tenant_record(pair.redis.url))
    root = pair.nginx.root / "cache"
    path = root / upstream_path(tenant, "cas", hashlib.sha256(blob).digest())
    path.write_bytes(b"rot" + blob[3:])
    assert http("GET", url, headers=bearer(api_key))[1] == blob
    # the other replica never read it: it reads upstream, finds the rot, never serves it
    assert http("GET", _url(pair.a, blob), headers=bearer(api_key))[0] == 404


async def _tenant_record(url: str) -> Any:
    state = RedisState.from_url(url)
    try:
        return await state.get_tenant(TENANT)
    finally:
        await state.close()


def test_the_small_blob_cache_is_bounded_by_ttl_bytes_and_tenant() -> None:
    from maestro.coordinator.blobs import SmallBlobCache
    from maestro.coordinator.records import TenantRecord

    now = [0.0]
    cache = SmallBlobCache(100, max_entry=40, ttl_s=5.0, clock=lambda: now[0])
    created = datetime.now(UTC)
    one, two = (TenantRecord(id=i, name=f"t{i}", created_at=created) for i in (1, 2))
    cache.put(one, b"k", b"x" * 40, now[0])
    assert cache.get(one, b"k") == b"x" * 40
    assert cache.get(two, b"k") is None  # another tenant's same digest is its own entry
    cache.put(one, b"big", b"y" * 41, now[0])
    assert cache.get(one, b"big") is None  # over max_entry: never kept
    cache.put(one, b"k2", b"z" * 40, now[0])
    cache.get(one, b"k")  # k is now more recent than k2
    cache.put(one, b"k3", b"w" * 40, now[0])  # 120 > 100: the least recently used goes
    assert cache.get(one, b"k2") is None and cache.get(one, b"k") is not None
    now[0] = 5.0
    assert cache.get(one, b"k") is None  # past the TTL


async def _refresh_ahead(url: str) -> None:
    now = [0.0]
    state = RedisState(RedisState.from_url(url).r, cache_ttl_s=1.0, clock=lambda: now[0])
    try:
        key = new_key(TENANT, Role.READ, "before")
        await state.add_key(key.record)
        assert (await state.get_key(key.record.key_id)).label == "before"  # type: ignore[union-attr]
        changed = key.record.model_copy(update={"label": "after"})
        await state.r.set(state._k("key", key.record.key_id), changed.model_dump_json())  # silent
        now[0] = 0.4
        assert (await state.get_key(key.record.key_id)).label == "before"  # type: ignore[union-attr]
        now[0] = 0.6  # past half the TTL: served as kept, read again in the background
        assert (await state.get_key(key.record.key_id)).label == "before"  # type: ignore[union-attr]
        for _ in range(100):
            await asyncio.sleep(0.01)
            if (await state.get_key(key.record.key_id)).label == "after":  # type: ignore[union-attr]
                break
        assert (await state.get_key(key.record.key_id)).label == "after"  # type: ignore[union-attr]
    finally:
        await state.close()


def test_a_record_in_use_is_read_again_in_the_background_before_its_ttl(pair: Pair) -> None:
    asyncio.run(_refresh_ahead(pair.redis.url))


def test_replicas_resubscribe_after_losing_the_invalidation_channel(pair: Pair) -> None:
    import redis

    client = redis.Redis.from_url(pair.redis.url)
    channel = "maestro:coord:invalidate"
    try:
        assert client.pubsub_numsub(channel)[0][1] == 2  # both replicas listen
        assert client.client_kill_filter(_type="pubsub") == 2
        deadline = time.monotonic() + 10
        while client.pubsub_numsub(channel)[0][1] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.pubsub_numsub(channel)[0][1] == 2  # back, by themselves
    finally:
        client.close()
    api_key, key_id = _new_key(pair)
    tok = token(pair.b.base, api_key)
    _warm(pair, [tok])
    asyncio.run(_with_state(pair.redis.url, "revoke", key_id))
    for replica in (pair.a, pair.b):  # at once again, not after the TTL
        assert http("GET", _url(replica), headers=bearer(tok))[0] == 401
        assert "lost the record invalidation channel" in replica.log.read_text()
