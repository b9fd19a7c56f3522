"""Per-tenant LRU eviction under the storage quota: the embedded store, and (`RedisLru`) the
entries replicas keep on the blob upstream.

A tenant at its quota is not "full forever": when a PUT would pass the quota and the tenant's
policy allows eviction (the default), its least recently used entries are deleted until the new
entry fits, then the PUT is retried once.

Recency is kept in memory per process (reads and writes touch an entry); entries not used since
the process started count as older than any used since, in key order. That is exact within a
run and a reasonable guess after a restart, without a write per cache hit to persist it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from maestro.tasks import cancel_and_wait

from .records import TenantRecord
from .store import Store

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

Entry = tuple[bytes, bytes]
"""(kind: store.CAS or store.AC, key)"""


class LruTracker:
    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._by_tenant: dict[int, OrderedDict[Entry, None]] = {}
        self._max = max_entries
        self._count = 0

    def touch(self, tenant: TenantRecord, kind: bytes, key: bytes) -> None:
        recent = self._by_tenant.setdefault(tenant.id, OrderedDict())
        entry = (kind, key)
        if entry in recent:
            recent.move_to_end(entry)
            return
        recent[entry] = None
        self._count += 1
        if self._count > self._max:  # forget the oldest of this tenant: it is evicted first anyway
            recent.popitem(last=False)
            self._count -= 1

    def forget(self, tenant: TenantRecord, entries: list[Entry]) -> None:
        recent = self._by_tenant.get(tenant.id)
        if recent is None:
            return
        for entry in entries:
            if recent.pop(entry, 0) is None:
                self._count -= 1

    def victims(self, tenant: TenantRecord, present: list[tuple[bytes, bytes, int]]) -> list[Entry]:
        """Eviction order: entries never touched in this run, then least recently used first."""
        recent = self._by_tenant.get(tenant.id, OrderedDict())
        untouched = [(kind, key) for kind, key, _ in present if (kind, key) not in recent]
        stored = {(kind, key) for kind, key, _ in present}
        return untouched + [entry for entry in recent if entry in stored]


def evict_for(store: Store, tracker: LruTracker, tenant: TenantRecord, need: int) -> int:
    """Free at least `need` bytes of the tenant's entries (blocking: run it in the pool)."""
    order = tracker.victims(tenant, store.tenant_entries(tenant))
    freed, evicted = store.evict(tenant, order, need)
    tracker.forget(tenant, evicted)
    return freed


# -- replicas: recency and sizes of upstream entries in Redis ---------------------------------

# KEYS: recency zset, sizes hash, usage hash. ARGV: bytes to free.
# Pops the least recently used members until enough is freed (or none is left), refunds their
# bytes and counts in the usage hash, and returns {member, size, ...}: the caller deletes them
# upstream. Atomic, so two replicas evicting at once never pick the same entry.
_EVICT = """
local need = tonumber(ARGV[1])
local freed = 0
local out = {}
local function bump(field, d)
  local v = tonumber(redis.call('HGET', KEYS[3], field) or '0') + d
  if v < 0 then v = 0 end
  redis.call('HSET', KEYS[3], field, v)
end
while freed < need do
  local popped = redis.call('ZPOPMIN', KEYS[1], 1)
  if #popped == 0 then break end
  local member = popped[1]
  local size = tonumber(redis.call('HGET', KEYS[2], member) or '0')
  redis.call('HDEL', KEYS[2], member)
  freed = freed + size
  bump('bytes', -size)
  if string.sub(member, 1, 4) == 'cas:' then bump('cas', -1) else bump('ac', -1) end
  out[#out + 1] = member
  out[#out + 1] = size
end
return out
"""

FLUSH_EVERY_S = 1.0
MAX_PENDING = 100_000


class RedisLru:
    """Per-tenant LRU of the entries replicas stored on the blob upstream.

    Redis keeps, per tenant id, a sorted set `lru:<id>` (member `cas:<hex>` or `ac:<hex>`,
    score the last use, unix time) and a hash `lru-sizes:<id>` (the bytes each was charged).
    A write records its entry in one pipelined round trip; a hit is noted in memory and the
    notes are flushed every `flush_every_s` (`ZADD XX GT`: an entry evicted meanwhile is not
    brought back, an older note never moves one back), so a read costs no Redis round trip.
    Recency is therefore at most that stale, across replicas. Entries written before this
    was enabled are not known here and are never evicted."""

    def __init__(
        self,
        client: Redis,
        prefix: str,
        *,
        flush_every_s: float = FLUSH_EVERY_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.r = client
        self.p = prefix
        self._every = flush_every_s
        self._clock = clock
        self._pending: dict[int, dict[str, float]] = {}
        self._count = 0
        self._evict = client.register_script(_EVICT)
        self._flusher: asyncio.Task[None] | None = None

    def _keys(self, tenant: TenantRecord) -> list[str]:
        tid = str(tenant.id)
        return [f"{self.p}lru:{tid}", f"{self.p}lru-sizes:{tid}", f"{self.p}usage:{tid}"]

    @staticmethod
    def member(kind: str, key: bytes) -> str:
        return f"{kind}:{key.hex()}"

    async def stored(self, tenant: TenantRecord, kind: str, key: bytes, size: int) -> None:
        """An entry was written (charged `size` bytes): it is now the most recently used."""
        from redis.exceptions import RedisError

        lru, sizes, _ = self._keys(tenant)
        member = self.member(kind, key)
        try:
            async with self.r.pipeline(transaction=True) as pipe:
                pipe.zadd(lru, {member: self._clock()})
                pipe.hset(sizes, member, str(size))
                await pipe.execute()
        except (RedisError, OSError) as exc:  # stored and charged: only never evicted
            log.warning("could not record a new entry for eviction: %r", exc)

    def touch(self, tenant: TenantRecord, kind: str, key: bytes) -> None:
        """A hit: noted here, written to Redis with the next flush."""
        notes = self._pending.setdefault(tenant.id, {})
        member = self.member(kind, key)
        if member not in notes:
            if self._count >= MAX_PENDING:
                return  # a flush is overdue (Redis slow): lose a few notes, not memory
            self._count += 1
        notes[member] = self._clock()
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_forever(), name="lru-flush")

    async def flush(self, only: TenantRecord | None = None) -> None:
        """Write the noted hits (of one tenant, or all) in one round trip."""
        if only is not None:
            batch = {only.id: self._pending.pop(only.id, {})}
        else:
            batch, self._pending = self._pending, {}
        batch = {tid: notes for tid, notes in batch.items() if notes}
        self._count -= sum(len(notes) for notes in batch.values())
        if not batch:
            return
        async with self.r.pipeline(transaction=False) as pipe:
            for tid, notes in batch.items():
                pipe.zadd(f"{self.p}lru:{tid}", notes, xx=True, gt=True)
            await pipe.execute()

    async def _flush_forever(self) -> None:
        from redis.exceptions import RedisError

        while True:
            await asyncio.sleep(self._every)
            try:
                await self.flush()
            except (RedisError, OSError) as exc:  # recency is advisory: keep serving
                log.warning("could not write entry recency to Redis: %r", exc)

    async def evict(self, tenant: TenantRecord, need: int) -> list[tuple[str, bytes, int]]:
        """Take the tenant's least recently used entries out of its usage until `need` bytes
        are freed (or none is left): (kind, key, size) of each, to delete upstream."""
        await self.flush(tenant)  # hits noted here count before choosing
        raw = await self._evict(keys=self._keys(tenant), args=[need])
        out: list[tuple[str, bytes, int]] = []
        for i in range(0, len(raw) - 1, 2):
            member = raw[i].decode() if isinstance(raw[i], bytes) else str(raw[i])
            kind, _, hex_key = member.partition(":")
            out.append((kind, bytes.fromhex(hex_key), int(raw[i + 1])))
        return out

    async def close(self) -> None:
        await cancel_and_wait(self._flusher)
        self._flusher = None
