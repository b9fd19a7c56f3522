"""Shared state of the coordinator: tenants, API key records (revocation), quotas and usage.

Everything here must be the same for every replica serving a tenant, which is why it sits behind
`StateBackend` instead of being read from the blob store:

- `LmdbState` (default): the embedded LMDB store (`store.py`), one node. Writes of embedded blobs
  charge usage in the same LMDB transaction as the write (see `LmdbBlobs`).
- `RedisState`: a Redis server shared by several replicas (`redis` package, asyncio client).
  Key records are read on every request (no cache), so a revocation through one replica is
  refused by every other one on its next request. Usage is charged by a Lua script that reads
  the tenant's current quota and increments the counters atomically, so concurrent uploads on
  several replicas cannot overshoot a quota together.

Redis layout (all keys under `redis_prefix`, default `maestro:coord:`):

    tenant:<name>        JSON TenantRecord
    tenant-names         set of tenant names
    next-tenant-id       INCR counter (ids are never reused)
    key:<key id>         JSON KeyRecord
    usage:<tenant id>    hash {bytes, cas, ac}
    token-secret         hex token-signing secret shared by the replicas (SET NX on first start)
    token-keys           JSON keyring (auth.Keyring) of `maestro coordinator key rotate`
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from maestro.errors import CoordinatorError

from .models import TENANT_RE
from .records import KeyRecord, TenantRecord, TenantUpdate, check_tenant_name
from .store import QuotaExceededError, Store, Usage

if TYPE_CHECKING:
    from redis.asyncio import Redis


class StateBackend(Protocol):
    """What replicas must share. Reads are made on every request: implementations must not
    cache key records (revocation is immediate)."""

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


class RedisState:
    """Shared state in Redis, for several coordinator replicas."""

    name = "redis"

    def __init__(self, client: Redis, prefix: str = "maestro:coord:") -> None:
        self.r = client
        self.p = prefix
        self._charge = client.register_script(_CHARGE)

    @classmethod
    def from_url(cls, url: str, prefix: str = "maestro:coord:") -> RedisState:
        from redis.asyncio import BlockingConnectionPool, Redis

        # Short timeouts: a stuck Redis must surface as an error, not hang every request. A
        # blocking pool: past its size a request waits for a connection (up to the timeout)
        # instead of failing at once, as redis-py's default pool (100 connections) does.
        pool = BlockingConnectionPool.from_url(
            url, max_connections=256, timeout=5.0, socket_timeout=5.0, socket_connect_timeout=5.0
        )
        return cls(Redis(connection_pool=pool), prefix)

    def _k(self, *parts: str) -> str:
        return self.p + ":".join(parts)

    async def _get_json(self, key: str) -> bytes | None:
        raw = await self.r.get(key)
        return _bytes(raw) if raw is not None else None

    async def get_key(self, key_id: str) -> KeyRecord | None:
        if not key_id or len(key_id) > 64:
            return None
        raw = await self._get_json(self._k("key", key_id))
        return KeyRecord.model_validate_json(raw) if raw is not None else None

    async def get_tenant(self, name: str) -> TenantRecord | None:
        if not TENANT_RE.fullmatch(name):
            return None
        raw = await self._get_json(self._k("tenant", name))
        return TenantRecord.model_validate_json(raw) if raw is not None else None

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
        key = self._k("tenant", name)
        async with self.r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        raise CoordinatorError(f"no tenant named {name!r}")
                    record = change.apply(TenantRecord.model_validate_json(raw))
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, record.model_dump_json())
                    await pipe.execute()
                    return record
                except Exception as exc:
                    from redis.exceptions import WatchError

                    if isinstance(exc, WatchError):
                        continue
                    raise

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
            await self.r.set(key, revoked.model_dump_json())
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
        from redis.exceptions import WatchError

        key = self._k("token-keys")
        async with self.r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    new = change(_bytes(raw) if raw is not None else None)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, new)
                    await pipe.execute()
                    return
                except WatchError:
                    continue

    async def ping(self) -> None:
        await self.r.ping()

    async def close(self) -> None:
        await self.r.aclose()
