"""Size cap with LRU eviction that never breaks an action-cache hit.

Candidates are action entries and blobs that no action references ("orphans"). Orphans idle for
longer than ORPHAN_GRACE_S go first, oldest first: they cannot produce a hit. Then actions and
young orphans (likely outputs of a run whose action entry is about to be written) in LRU order.
Evicting an action releases its blobs; those that become orphans are evicted right after it
(they are garbage now). A blob referenced by a kept action is never a candidate, so every kept
AC entry stays servable.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass

import lmdb

from . import layout as L

log = logging.getLogger(__name__)

ORPHAN_GRACE_S = 600


@dataclass(frozen=True, slots=True)
class GcReport:
    """What one collection did."""

    before_bytes: int
    after_bytes: int
    target_bytes: int
    evicted_actions: int
    evicted_blobs: int

    @property
    def freed_bytes(self) -> int:
        return self.before_bytes - self.after_bytes


def collect(txn: lmdb.Transaction, dbs: L.Dbs, target_bytes: int, now: int) -> GcReport:
    """Evict least-recently-used entries until stored bytes <= target (within `txn`)."""
    before = L.get_int(txn, dbs, L.BLOB_BYTES) + L.get_int(txn, dbs, L.ACTION_BYTES)
    total = before
    actions = blobs = 0
    if total > target_bytes:
        stale = now - ORPHAN_GRACE_S
        # (tier, atime, meta key): tier 0 = stale orphans, 1 = LRU of actions and young orphans
        heap: list[tuple[int, int, bytes]] = []
        for mkey, mval in txn.cursor(db=dbs.meta):
            atime = L.META.unpack(mval)[0]
            if mkey[:1] == L.ACTION:
                heap.append((1, atime, bytes(mkey)))
            elif txn.get(mkey[1:], db=dbs.refc) is None:
                heap.append((0 if atime < stale else 1, atime, bytes(mkey)))
        heapq.heapify(heap)
        while total > target_bytes and heap:
            _, _, mkey = heapq.heappop(heap)
            key = mkey[1:]
            if mkey[:1] == L.ACTION:
                freed, orphans = L.delete_action(txn, dbs, key)
                actions += 1
                for orphan in orphans:
                    meta = txn.get(L.BLOB + orphan, db=dbs.meta)
                    if meta is not None:
                        heapq.heappush(heap, (0, L.META.unpack(meta)[0], L.BLOB + orphan))
            else:
                freed = L.delete_blob(txn, dbs, key)
                blobs += 1
            total -= freed
        L.add_int(txn, dbs, L.EVICTIONS, actions + blobs)
    if actions or blobs:
        log.info(
            "cache gc: evicted %d actions and %d blobs, %d -> %d bytes (target %d)",
            actions,
            blobs,
            before,
            total,
            target_bytes,
        )
    return GcReport(before, total, target_bytes, actions, blobs)
