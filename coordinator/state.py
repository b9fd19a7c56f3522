"""Shared state of the coordinator: tenants, API key records (revocation), quotas and usage.

Everything here must be the same for every replica serving a tenant, which is why it sits behind
`StateBackend` instead of being read from the blob store:

- `LmdbState` (default): the embedded LMDB store (`store.py`), one node. Writes of embedded blobs
  charge usage in the same LMDB transaction as the write (see `LmdbBlobs`).
- `RedisState`: a Redis server shared by several replicas (`redis` package, asyncio client).
  A server keeps the key and tenant records it read for at most `cache_ttl_s` (a light read
  then costs no Redis round trip for its credential). Every change of a record (revocation,
  tenant settings, key rotation) is published on `<prefix>invalidate` in the same transaction
  as the write; replicas subscribed to it drop their copy when the message arrives
  (milliseconds), and the TTL bounds the staleness whatever happens to the subscription. Usage
  is charged by a Lua script that reads the tenant's current quota and increments the counters
  atomically (never cached), so concurrent uploads on several replicas cannot overshoot a quota
  together.

Redis layout (all keys under `redis_prefix`, default `maestro:coord:`):

    tenant:<name>        JSON TenantRecord
    tenant-names         set of tenant names
    next-tenant-id       INCR counter (ids are never reused)
    key:<key id>         JSON KeyRecord
    usage:<tenant id>    hash {bytes, cas, ac}
    token-secret         hex token-signing secret shared by the replicas (SET NX on first start)
    token-keys           JSON keyring (auth.Keyring) of `maestro coordinator key rotate`
    invalidate           pub/sub channel: the Redis key of every record changed
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

from maestro.errors import CoordinatorError
from maestro.tasks import cancel_and_wait

from .models import TENANT_RE
from .records import KeyRecord, TenantRecord, TenantUpdate, check_tenant_name
from .store import QuotaExceededError, Store, Usage

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)
R = TypeVar("R", KeyRecord, TenantRecord)
T = TypeVar("T")


class StateBackend(Protocol):
    """What replicas must share. Key and tenant records may be cached only for a short,
    documented time and must be dropped when a change is announced (revocation)."""

    name: str

    async def get_key(self, key_id: str) -> KeyRecord | None: ...

    async def get_tenant(self, name: str) -> TenantRecord | None: ...

    async def add_tenant(
        self, name: str, *, raw_ac: bool = False, quota_bytes: int | None = None
    ) -> TenantRecord: ...

    async def update_tenant(self, name: str, change: TenantUpdate) -> TenantRecord: ...

    async def list_tenants(self) -> list[TenantRecord]: ...

    async def add_key(self, record: KeyRecord) -> None: ...

    async def revoke_key(self, key_id: str) -> KeyRecord: ...

    async def list_keys(self, tenant: str | None = None) -> list[KeyRecord]: ...

    async def usage(self, tenant: TenantRecord) -> Usage: ...

    async def charge(self, tenant: TenantRecord, delta: int, *, cas: int = 0, ac: int = 0) -> None:
        """Add `delta` bytes (and entry counts) to the tenant's usage; raise
        QuotaExceededError, changing nothing, when growth would pass the current quota."""
        ...

    async def token_secret(self) -> bytes | None:
        """A token secret shared by all replicas, or None to use the local file."""
        ...

    async def token_keyring(self) -> bytes | None:
        """The replicas' shared keyring (JSON), None before the first rotation or when keys
        are not shared (the local file is used)."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class LmdbState:
    """The embedded store as a StateBackend (single node). Calls are short mmap reads or small
    write transactions, cheap enough to make inline on the event loop."""

    name = "lmdb"

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get_key(self, key_id: str) -> KeyRecord | None:
        return self.store.get_key(key_id)

    async def get_tenant(self, name: str) -> TenantRecord | None:
        return self.store.get_tenant(name)

    async def add_tenant(
        self, name: str, *, raw_ac: bool = False, quota_bytes: int | None = None
    ) -> TenantRecord:
        return self.store.add_tenant(name, raw_ac=raw_ac, quota_bytes=quota_bytes)

    async def update_tenant(self, name: str, change: TenantUpdate) -> TenantRecord:
        return self.store.update_tenant(name, change)

    async def list_tenants(self) -> list[TenantRecord]:
        return self.store.list_tenants()

    async def add_key(self, record: KeyRecord) -> None:
        self.store.add_key(record)

    async def revoke_key(self, key_id: str) -> KeyRecord:
        return self.store.revoke_key(key_id)

    async def list_keys(self, tenant: str | None = None) -> list[KeyRecord]:
        return self.store.list_keys(tenant)

    async def usage(self, tenant: TenantRecord) -> Usage:
        return self.store.usage(tenant)

    async def charge(self, tenant: TenantRecord, delta: int, *, cas: int = 0, ac: int = 0) -> None:
        self.store.charge(tenant, delta, cas=cas, ac=ac)

    async def token_secret(self) -> bytes | None:
        return None

    async def token_keyring(self) -> bytes | None:
        return None

    async def ping(self) -> None:
        self.store.list_tenants()

    async def close(self) -> None:
        """The store is closed by whoever opened it."""


# KEYS: usage hash, tenant record. ARGV: delta bytes, delta cas, delta ac.
# Returns {1} when applied, {0, used, quota} when refused. Counters never go below zero.
_CHARGE = """
local delta = tonumber(ARGV[1])
local tenant = redis.call('GET', KEYS[2])
if not tenant then return {-1} end
local quota = cjson.decode(tenant)['quota_bytes']
local used = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0')
if delta > 0 and quota ~= nil and quota ~= cjson.null and used + delta > quota then
  return {0, used, quota}
end
local function bump(field, d)
  local v = tonumber(redis.call('HGET', KEYS[1], field) or '0') + d
  if v < 0 then v = 0 end
  redis.call('HSET', KEYS[1], field, v)
end
bump('bytes', delta)
bump('cas', tonumber(ARGV[2]))
bump('ac', tonumber(ARGV[3]))
return {1}
"""


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _now() -> datetime:
    return datetime.now(UTC)


class RecordCache:
    """Key and tenant records as read from Redis, each kept at most `ttl_s` seconds and
    dropped at once when an invalidation names it. Absent records are not kept (a key created
    on another replica works on its first request here)."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, tuple[float, KeyRecord | TenantRecord]] = {}
        self.epoch = 0
        """Bumped by every invalidation: a read that started before one is not kept."""
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> KeyRecord | TenantRecord | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if self._clock() - entry[0] >= self.ttl_s:
            del self._entries[key]
            self.misses += 1
            return None
        self.hits += 1
        return entry[1]

    def put(self, key: str, record: KeyRecord | TenantRecord, epoch: int, read_at: float) -> None:
        if self.ttl_s <= 0 or epoch != self.epoch:
            return
        if len(self._entries) >= CACHE_MAX_ENTRIES:  # a flood of distinct keys: start over
            self._entries.clear()
        self._entries[key] = (read_at, record)

    def drop(self, key: str | None = None) -> None:
        """Forget `key`, or everything (None)."""
        self.epoch += 1
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)

    def aging(self, key: str) -> bool:
        """Kept for more than half its TTL: time to read it again (in the background)."""
        entry = self._entries.get(key)
        return entry is not None and self._clock() - entry[0] >= self.ttl_s / 2

    def now(self) -> float:
        return self._clock()


CACHE_MAX_ENTRIES = 100_000
KEYRING_CHANGED = "token-keys"
"""The invalidation message of a key rotation (the keyring's key, without the prefix)."""


class RedisState:
    """Shared state in Redis, for several coordinator replicas.

    `cache_ttl_s` > 0 keeps key and tenant records that long at most (see the module
    docstring); `start_invalidation` subscribes to the changes other processes announce. Every
    write of a record announces itself, whether or not this process caches."""

    name = "redis"

    def __init__(
        self,
        client: Redis,
        prefix: str = "maestro:coord:",
        *,
        cache_ttl_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.r = client
        self.p = prefix
        self._charge = client.register_script(_CHARGE)
        self.cache = RecordCache(cache_ttl_s, clock)
        self.channel = prefix + "invalidate"
        self.keyring_changes = 0
        """Bumped when a rotation is announced: the keyring is read again at once."""
        self.subscribed = False
        self._listener: asyncio.Task[None] | None = None
        self._refreshing: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_url(
        cls, url: str, prefix: str = "maestro:coord:", *, cache_ttl_s: float = 0.0
    ) -> RedisState:
        from redis.asyncio import BlockingConnectionPool, Redis

        # Short timeouts: a stuck Redis must surface as an error, not hang every request. A
        # blocking pool: past its size a request waits for a connection (up to the timeout)
        # instead of failing at once, as redis-py's default pool (100 connections) does.
        pool = BlockingConnectionPool.from_url(
            url, max_connections=256, timeout=5.0, socket_timeout=5.0, socket_connect_timeout=5.0
        )
        return cls(Redis(connection_pool=pool), prefix, cache_ttl_s=cache_ttl_s)

    def _k(self, *parts: str) -> str:
        return self.p + ":".join(parts)

    # -- invalidation ---------------------------------------------------------------------

    def start_invalidation(self) -> None:
        """Listen for announced changes (a task until `close`); idempotent."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="redis-invalidate")

    async def _listen(self) -> None:
        from redis.exceptions import RedisError

        backoff = 0.1
        while True:
            pubsub = self.r.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        # changes made while not subscribed were missed: forget everything
                        self.subscribed = True
                        self.cache.drop()
                        backoff = 0.1
                    elif message["type"] == "message":
                        self._invalidated(_bytes(message["data"]).decode(errors="replace"))
            except (RedisError, OSError) as exc:
                if self.subscribed:
                    log.warning("lost the record invalidation channel (%r); retrying", exc)
                self.subscribed = False
                self.cache.drop()
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def rotations_announced(self) -> int:
        return self.keyring_changes

    def _invalidated(self, key: str) -> None:
        if key == self._k(KEYRING_CHANGED):
            self.keyring_changes += 1
        self.cache.drop(key if key.startswith(self.p) else None)

    async def _get_json(self, key: str) -> bytes | None:
        raw = await self.r.get(key)
        return _bytes(raw) if raw is not None else None

    async def swap(
        self,
        key: str,
        change: Callable[[bytes | None], T],
        encode: Callable[[T], str | bytes],
        *,
        announce: bool = True,
    ) -> T:
        """Set `key` to ``encode(change(its value))`` atomically: when another writer changes
        the key between the read and the write, `change` runs again on the newer value (an
        exception from `change` writes nothing). `announce`: every process drops its cached copy."""
        from redis.exceptions import WatchError

        async with self.r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    new = change(_bytes(raw) if raw is not None else None)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, encode(new))
                    if announce:
                        pipe.publish(self.channel, key)
                    await pipe.execute()
                except WatchError:
                    continue
                if announce:
                    self._invalidated(key)
                return new

    async def _read_record(self, key: str, model: type[R]) -> R | None:
        epoch, read_at = self.cache.epoch, self.cache.now()
        raw = await self._get_json(key)
        if raw is None:
            return None
        record = model.model_validate_json(raw)
        self.cache.put(key, record, epoch, read_at)
        return record

    async def _record(self, key: str, model: type[R]) -> R | None:
        """The record, kept or read. A kept one past half its TTL is read again in the
        background, so a record in use is never awaited again (a request that waits for a
        pool connection behind a busy tenant's uploads would pay it) and never used past
        its TTL either."""
        cached = self.cache.get(key)
        if isinstance(cached, model):
            if self.cache.aging(key) and key not in self._refreshing:
                self._refreshing.add(key)
                task = asyncio.create_task(self._refresh(key, model))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return cached
        return await self._read_record(key, model)

    async def _refresh(self, key: str, model: type[R]) -> None:
        from redis.exceptions import RedisError

        try:
            await self._read_record(key, model)
        except (RedisError, OSError, ValueError) as exc:  # read on the request path at expiry
            log.debug("background re-read of %s failed: %r", key, exc)
        finally:
            self._refreshing.discard(key)

    async def get_key(self, key_id: str) -> KeyRecord | None:
        if not key_id or len(key_id) > 64:
            return None
        return await self._record(self._k("key", key_id), KeyRecord)

    async def get_tenant(self, name: str) -> TenantRecord | None:
        if not TENANT_RE.fullmatch(name):
            return None
        return await self._record(self._k("tenant", name), TenantRecord)

    async def add_tenant(
        self, name: str, *, raw_ac: bool = False, quota_bytes: int | None = None
    ) -> TenantRecord:
        check_tenant_name(name)
        if await self.r.exists(self._k("tenant", name)):
            raise CoordinatorError(f"tenant {name!r} already exists")
        tid = int(await self.r.incr(self._k("next-tenant-id")))
        record = TenantRecord(
            id=tid, name=name, created_at=_now(), raw_ac=raw_ac, quota_bytes=quota_bytes
        )
        created = await self.r.set(self._k("tenant", name), record.model_dump_json(), nx=True)
        if not created:  # lost a race with another replica's add: its record stands
            raise CoordinatorError(f"tenant {name!r} already exists")
        await self.r.sadd(self._k("tenant-names"), name)
        return record

    async def update_tenant(self, name: str, change: TenantUpdate) -> TenantRecord:
        def changed(raw: bytes | None) -> TenantRecord:
            if raw is None:
                raise CoordinatorError(f"no tenant named {name!r}")
            return change.apply(TenantRecord.model_validate_json(raw))

        return await self.swap(self._k("tenant", name), changed, TenantRecord.model_dump_json)

    async def list_tenants(self) -> list[TenantRecord]:
        names = sorted(_bytes(n) for n in await self.r.smembers(self._k("tenant-names")))
        out = []
        for name in names:
            record = await self.get_tenant(name.decode())
            if record is not None:
                out.append(record)
        return out

    async def add_key(self, record: KeyRecord) -> None:
        if await self.get_tenant(record.tenant) is None:
            raise CoordinatorError(f"no tenant named {record.tenant!r}")
        if not await self.r.set(self._k("key", record.key_id), record.model_dump_json(), nx=True):
            raise CoordinatorError(f"key id {record.key_id} already exists")

    async def revoke_key(self, key_id: str) -> KeyRecord:
        key = self._k("key", key_id)
        raw = await self._get_json(key)
        if raw is None:
            raise CoordinatorError(f"no key with id {key_id!r}")
        record = KeyRecord.model_validate_json(raw)
        revoked = record.revoked()
        if revoked is not record:
            # Revocation only ever moves one way, so a plain SET cannot undo a concurrent one.
            async with self.r.pipeline(transaction=True) as pipe:
                pipe.set(key, revoked.model_dump_json())
                pipe.publish(self.channel, key)
                await pipe.execute()
        self._invalidated(key)
        return revoked

    async def list_keys(self, tenant: str | None = None) -> list[KeyRecord]:
        out = []
        async for name in self.r.scan_iter(match=self._k("key", "*"), count=500):
            raw = await self._get_json(name.decode())
            if raw is not None:
                record = KeyRecord.model_validate_json(raw)
                if tenant is None or record.tenant == tenant:
                    out.append(record)
        return sorted(out, key=lambda k: k.created_at)

    async def usage(self, tenant: TenantRecord) -> Usage:
        raw = {
            _bytes(k): int(v)
            for k, v in (await self.r.hgetall(self._k("usage", str(tenant.id)))).items()
        }
        return Usage(raw.get(b"bytes", 0), raw.get(b"cas", 0), raw.get(b"ac", 0))

    async def charge(self, tenant: TenantRecord, delta: int, *, cas: int = 0, ac: int = 0) -> None:
        result = await self._charge(
            keys=[self._k("usage", str(tenant.id)), self._k("tenant", tenant.name)],
            args=[delta, cas, ac],
        )
        status = int(result[0])
        if status == -1:
            raise CoordinatorError(f"tenant {tenant.name!r} was deleted")
        if status == 0:
            raise QuotaExceededError(tenant.name, int(result[1]), int(result[2]), delta)

    async def token_secret(self) -> bytes | None:
        key = self._k("token-secret")
        await self.r.set(key, secrets.token_bytes(32).hex(), nx=True)
        raw = await self._get_json(key)
        return bytes.fromhex(raw.decode()) if raw is not None else None

    async def token_keyring(self) -> bytes | None:
        return await self._get_json(self._k("token-keys"))

    async def swap_token_keyring(self, change: Callable[[bytes | None], bytes]) -> None:
        """Replace the shared keyring with `change(current)`, atomically: a concurrent
        rotation makes this one start over from the keyring it wrote."""
        await self.swap(self._k("token-keys"), change, bytes)

    async def ping(self) -> None:
        await self.r.ping()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await cancel_and_wait(self._listener)
        self._listener = None
        await self.r.aclose()
