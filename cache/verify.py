"""`maestro cache verify`: a full integrity pass that a user can run and read.

Every blob is re-hashed against its key; every action entry is checked against the digest it was
sealed with (`layout.unseal_action`) and decoded.

Reading happens in one read transaction (writers are not blocked); repairs (quarantine, metadata,
counters, reference counts) in one short write transaction that re-checks each finding first,
since another process may have fixed or replaced the entry in between.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import lmdb

from maestro.errors import CacheError

from . import layout as L
from .action import NewerSchemaError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Problem:
    """One corrupt entry, now quarantined."""

    kind: Literal["blob", "action"]
    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    blobs_checked: int
    actions_checked: int
    bytes_checked: int
    corrupt: list[Problem] = field(default_factory=list)
    dangling_actions: int = 0
    """Action entries whose blobs are gone: served as misses, not corruption."""
    newer_schema: int = 0
    repairs: list[str] = field(default_factory=list)
    """Bookkeeping fixed on the way (counters, metadata, reference counts)."""
    seconds: float = 0.0

    @property
    def checked(self) -> int:
        return self.blobs_checked + self.actions_checked

    @property
    def ok(self) -> int:
        return self.checked - len(self.corrupt)

    @property
    def clean(self) -> bool:
        return not self.corrupt


def verify_env(env: lmdb.Environment, dbs: L.Dbs) -> VerifyReport:
    started = time.monotonic()
    bad: list[Problem] = []
    blobs = actions = nbytes = dangling = newer = 0
    with env.begin() as txn:
        for key, data in txn.cursor(db=dbs.cas):
            blobs += 1
            nbytes += len(data)
            if hashlib.sha256(data).digest() != key:
                bad.append(Problem("blob", key.hex(), "sha256 mismatch"))
        corrupt_blobs = {p.key for p in bad}
        for key, data in txn.cursor(db=dbs.ac):
            actions += 1
            nbytes += len(data)
            try:
                result = L.load_action(key, data)
            except NewerSchemaError:
                newer += 1
                continue
            except CacheError as exc:
                bad.append(Problem("action", key.hex(), exc.message))
                continue
            for digest in result.referenced_digests():
                if digest.size and (
                    digest.hash in corrupt_blobs or txn.get(digest.key, db=dbs.cas) is None
                ):
                    dangling += 1
                    break

    repairs: list[str] = []

    def repair(txn: lmdb.Transaction) -> None:
        now = int(time.time())
        for problem in bad:
            key = bytes.fromhex(problem.key)
            if problem.kind == "blob":
                data = txn.get(key, db=dbs.cas)
                if data is not None and hashlib.sha256(data).digest() != key:
                    L.quarantine(txn, dbs, L.BLOB, key, data, problem.reason, now)
            else:
                data = txn.get(key, db=dbs.ac)
                if data is not None and L.action_problem(key, data) is not None:
                    L.quarantine(txn, dbs, L.ACTION, key, data, problem.reason, now)
        repairs.extend(_repair_bookkeeping(txn, dbs, now))

    with env.begin(write=True) as txn:
        repair(txn)
    for problem in bad:
        log.warning("verify: quarantined %s %s: %s", problem.kind, problem.key, problem.reason)
    return VerifyReport(
        blobs_checked=blobs,
        actions_checked=actions,
        bytes_checked=nbytes,
        corrupt=bad,
        dangling_actions=dangling,
        newer_schema=newer,
        repairs=repairs,
        seconds=time.monotonic() - started,
    )


def _repair_bookkeeping(txn: lmdb.Transaction, dbs: L.Dbs, now: int) -> list[str]:
    """Make meta, byte counters and reference counts agree with the stored values."""
    repairs: list[str] = []
    sizes = {L.BLOB: 0, L.ACTION: 0}
    stale = []
    for mkey, mval in txn.cursor(db=dbs.meta):
        table = dbs.cas if mkey[:1] == L.BLOB else dbs.ac
        if txn.get(mkey[1:], db=table) is None:
            stale.append(mkey)
        else:
            sizes[bytes(mkey[:1])] += L.META.unpack(mval)[1]
    for mkey in stale:
        txn.delete(mkey, db=dbs.meta)
    if stale:
        repairs.append(f"removed {len(stale)} metadata records without a value")
    missing = 0
    for kind, table in ((L.BLOB, dbs.cas), (L.ACTION, dbs.ac)):
        for key, data in txn.cursor(db=table):
            if txn.get(kind + key, db=dbs.meta) is None:
                txn.put(kind + key, L.META.pack(now, len(data)), db=dbs.meta)
                sizes[kind] += len(data)
                missing += 1
    if missing:
        repairs.append(f"added {missing} missing metadata records")
    for name, kind in ((L.BLOB_BYTES, L.BLOB), (L.ACTION_BYTES, L.ACTION)):
        if L.get_int(txn, dbs, name) != sizes[kind]:
            repairs.append(f"{name.decode()} counter {L.get_int(txn, dbs, name)} -> {sizes[kind]}")
            L.set_int(txn, dbs, name, sizes[kind])
    expected: Counter[bytes] = Counter()
    for _, packed in txn.cursor(db=dbs.arefs):
        expected.update(L.split_keys(packed))
    actual = {bytes(key): L.REFC.unpack(raw)[0] for key, raw in txn.cursor(db=dbs.refc)}
    if actual != dict(expected):
        repairs.append("rebuilt blob reference counts")
        txn.drop(dbs.refc, delete=False)
        for key, count in expected.items():
            txn.put(key, L.REFC.pack(count), db=dbs.refc)
    return repairs
