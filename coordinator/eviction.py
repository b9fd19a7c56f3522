"""Per-tenant LRU eviction under the storage quota (embedded store).

A tenant at its quota is not "full forever": when a PUT would pass the quota and the tenant's
policy allows eviction (the default), its least recently used entries are deleted until the new
entry fits, then the PUT is retried once.

Recency is kept in memory per process (reads and writes touch an entry); entries not used since
the process started count as older than any used since, in key order. That is exact within a
run and a reasonable guess after a restart, without a write per cache hit to persist it.
"""

from __future__ import annotations

from collections import OrderedDict

from .records import TenantRecord
from .store import Store

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
