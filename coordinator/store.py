"""Embedded storage of the coordinator: one LMDB environment holding tenants, keys and entries.

Why not reuse `maestro.cache.Cache`: that cache is a *client* store (one namespace, LRU eviction,
entries re-encoded through `ActionResult`). A server needs byte-exact opaque AC values (raw mode),
per-tenant namespaces, and quota checks that are atomic with the write. Keys here are
`tenant id (4 bytes, never reused) + sha256 (32 bytes)`, so two tenants storing the same digest
hold two independent entries, and no lookup can cross a tenant prefix.

Sub-databases:

    tenants     tenant name -> JSON TenantRecord
    keys        key id -> JSON KeyRecord
    cas         prefix + sha256 -> blob bytes (the empty blob is never stored, always present)
    ac          prefix + action digest -> AC record (records.py: checksum, referenced blobs, value)
    usage       prefix -> <u64 bytes, u64 cas entries, u64 ac entries>
    quarantine  prefix + kind + key -> JSON {reason, at} of entries found corrupt and removed
    meta        b"next_tenant_id" -> u32

Everything a request changes happens in one write transaction: a crash never leaves a partial
blob, a usage counter out of step, or a quota overrun. Corruption found on read (a blob whose
bytes no longer hash to its key, an AC record failing its checksum) is quarantined, logged and
answered as a miss: damaged bytes are never served.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import lmdb

from maestro.errors import CoordinatorError

from .models import TENANT_RE
from .records import (
    USAGE,
    AcRecord,
    CorruptRecordError,
    KeyRecord,
    TenantRecord,
    TenantUpdate,
    check_tenant_name,
    decode_ac,
)

log = logging.getLogger(__name__)

EMPTY_SHA256 = hashlib.sha256(b"").digest()
DB_NAMES = ("tenants", "keys", "cas", "ac", "usage", "quarantine", "meta")
_NEXT_ID = b"next_tenant_id"
CAS = b"c"
AC = b"a"

_OPEN: set[Path] = set()
_OPEN_LOCK = threading.Lock()


class QuotaExceededError(CoordinatorError):
    """The write would take the tenant over its storage quota (HTTP 507)."""

    code = "quota_exceeded"

    def __init__(self, tenant: str, used: int, quota: int, incoming: int) -> None:
        super().__init__(
            f"tenant {tenant!r} would exceed its storage quota: {used} bytes used + {incoming} "
            f"incoming > {quota} bytes",
            hint="ask an operator to raise it: maestro coordinator tenant set NAME --quota SIZE",
        )
        self.used = used
        self.quota = quota


class StorageFullError(CoordinatorError):
    """The LMDB map is full (HTTP 507)."""

    code = "storage_full"


@dataclass(frozen=True, slots=True)
class Usage:
    bytes: int = 0
    cas_entries: int = 0
    ac_entries: int = 0


class CasView:
    """A blob's bytes straight from the LMDB map, valid until close()."""

    __slots__ = ("_txn", "data")

    def __init__(self, txn: lmdb.Transaction, data: memoryview) -> None:
        self._txn: lmdb.Transaction | None = txn
        self.data = data

    def close(self) -> None:
        if self._txn is not None:
            self.data = memoryview(b"")
            self._txn.abort()
            self._txn = None


def _now() -> datetime:
    return datetime.now(UTC)


class Store:
    """Synchronous, thread-safe access to the coordinator's LMDB environment.

    Open at most once per path per process (LMDB's rule); several processes may share it, which
    is how the admin CLI edits tenants and keys while the server runs.
    """

    def __init__(self, path: Path, *, map_size: int = 1 << 40) -> None:
        self.path = path.resolve()
        with _OPEN_LOCK:
            if self.path in _OPEN:
                raise CoordinatorError(
                    f"the coordinator store {self.path} is already open in this process",
                    hint="share one Store instance (LMDB forbids opening an environment twice)",
                )
            _OPEN.add(self.path)
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.env = lmdb.open(
                str(self.path), map_size=map_size, max_dbs=len(DB_NAMES) + 1, max_readers=1024
            )
            self._db = {name: self.env.open_db(name.encode()) for name in DB_NAMES}
            self.corrupt_found = 0
            """Corrupt entries this process quarantined (metrics read the delta)."""
        except (lmdb.Error, OSError) as exc:
            with _OPEN_LOCK:
                _OPEN.discard(self.path)
            raise CoordinatorError(
                f"cannot open the coordinator store at {self.path}: {exc}",
                hint="check permissions and free space, or restore a snapshot",
            ) from exc

    def close(self) -> None:
        with _OPEN_LOCK:
            if self.path not in _OPEN:
                return
            _OPEN.discard(self.path)
        self.env.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _commit(self, body: Any) -> Any:
        """Run `body(txn)` in a write transaction, mapping LMDB failures onto 507/500 errors."""
        try:
            with self.env.begin(write=True) as txn:
                return body(txn)
        except lmdb.MapFullError as exc:
            raise StorageFullError(
                f"the coordinator store at {self.path} is full",
                hint="raise map_size_bytes or free space (delete tenants, restore a compacted "
                "snapshot)",
            ) from exc
        except lmdb.Error as exc:
            raise CoordinatorError(f"store write failed: {exc}") from exc

    # -- tenants ----------------------------------------------------------------------------

    def add_tenant(
        self, name: str, *, raw_ac: bool = False, quota_bytes: int | None = None
    ) -> TenantRecord:
        check_tenant_name(name)

        def body(txn: lmdb.Transaction) -> TenantRecord:
            if txn.get(name.encode(), db=self._db["tenants"]) is not None:
                raise CoordinatorError(f"tenant {name!r} already exists")
            raw = txn.get(_NEXT_ID, db=self._db["meta"])
            tid = int.from_bytes(raw, "big") if raw else 1
            txn.put(_NEXT_ID, (tid + 1).to_bytes(4, "big"), db=self._db["meta"])
            record = TenantRecord(
                id=tid, name=name, created_at=_now(), raw_ac=raw_ac, quota_bytes=quota_bytes
            )
            txn.put(name.encode(), record.model_dump_json().encode(), db=self._db["tenants"])
            return record

        record: TenantRecord = self._commit(body)
        log.info("tenant added: %s (id %d)", name, record.id)
        return record

    def update_tenant(self, name: str, change: TenantUpdate) -> TenantRecord:
        def body(txn: lmdb.Transaction) -> TenantRecord:
            raw = txn.get(name.encode(), db=self._db["tenants"])
            if raw is None:
                raise CoordinatorError(f"no tenant named {name!r}")
            record = change.apply(TenantRecord.model_validate_json(bytes(raw)))
            txn.put(name.encode(), record.model_dump_json().encode(), db=self._db["tenants"])
            return record

        result: TenantRecord = self._commit(body)
        return result

    def get_tenant(self, name: str) -> TenantRecord | None:
        if not TENANT_RE.fullmatch(name):
            return None
        with self.env.begin(db=self._db["tenants"]) as txn:
            raw = txn.get(name.encode())
        return TenantRecord.model_validate_json(bytes(raw)) if raw is not None else None

    def list_tenants(self) -> list[TenantRecord]:
        with self.env.begin(db=self._db["tenants"]) as txn:
            return [TenantRecord.model_validate_json(bytes(v)) for _, v in txn.cursor()]

    def usage(self, tenant: TenantRecord) -> Usage:
        with self.env.begin(db=self._db["usage"]) as txn:
            raw = txn.get(tenant.prefix)
        return Usage(*USAGE.unpack(raw)) if raw is not None else Usage()

    # -- keys -------------------------------------------------------------------------------

    def add_key(self, record: KeyRecord) -> None:
        def body(txn: lmdb.Transaction) -> None:
            if txn.get(record.tenant.encode(), db=self._db["tenants"]) is None:
                raise CoordinatorError(f"no tenant named {record.tenant!r}")
            if not txn.put(
                record.key_id.encode(),
                record.model_dump_json().encode(),
                db=self._db["keys"],
                overwrite=False,
            ):
                raise CoordinatorError(f"key id {record.key_id} already exists")

        self._commit(body)
        log.info("key created: %s (tenant %s, %s)", record.key_id, record.tenant, record.role)

    def get_key(self, key_id: str) -> KeyRecord | None:
        if not key_id or len(key_id) > 64:
            return None
        with self.env.begin(db=self._db["keys"]) as txn:
            raw = txn.get(key_id.encode())
        return KeyRecord.model_validate_json(bytes(raw)) if raw is not None else None

    def list_keys(self, tenant: str | None = None) -> list[KeyRecord]:
        with self.env.begin(db=self._db["keys"]) as txn:
            keys = [KeyRecord.model_validate_json(bytes(v)) for _, v in txn.cursor()]
        return [k for k in keys if tenant is None or k.tenant == tenant]

    def revoke_key(self, key_id: str) -> KeyRecord:
        """Mark a key revoked; every token minted from it fails from the next request on."""

        def body(txn: lmdb.Transaction) -> KeyRecord:
            raw = txn.get(key_id.encode(), db=self._db["keys"])
            if raw is None:
                raise CoordinatorError(f"no key with id {key_id!r}")
            record = KeyRecord.model_validate_json(bytes(raw))
            revoked = record.revoked()
            if revoked is not record:
                txn.put(key_id.encode(), revoked.model_dump_json().encode(), db=self._db["keys"])
            return revoked

        result: KeyRecord = self._commit(body)
        log.info("key revoked: %s", key_id)
        return result

    # -- entries ----------------------------------------------------------------------------

    def get_cas(self, tenant: TenantRecord, key: bytes) -> bytes | None:
        """The blob after re-hashing it; None when absent or corrupt (then quarantined)."""
        if key == EMPTY_SHA256:
            return b""
        with self.env.begin(db=self._db["cas"]) as txn:
            data = txn.get(tenant.prefix + key)
        if data is None:
            return None
        if hashlib.sha256(data).digest() != key:
            self._quarantine(tenant, CAS, key, "sha256 mismatch on read")
            return None
        return bytes(data)

    def open_cas(self, tenant: TenantRecord, key: bytes) -> CasView | None:
        """A verified, zero-copy view of a blob inside a read transaction (None when absent or
        corrupt, then quarantined). The caller must `close()` it once the bytes are sent; until
        then the transaction pins the pages. py-lmdb opens environments with MDB_NOTLS, so the
        view may be closed from another thread than the one that opened it."""
        txn = self.env.begin(db=self._db["cas"], buffers=True)
        try:
            view = txn.get(tenant.prefix + key)
            if view is None:
                txn.abort()
                return None
            if hashlib.sha256(view).digest() != key:
                txn.abort()
                self._quarantine(tenant, CAS, key, "sha256 mismatch on read")
                return None
            return CasView(txn, view)
        except BaseException:
            txn.abort()
            raise

    def cas_size(self, tenant: TenantRecord, key: bytes) -> int | None:
        """Size of a present blob without reading it (HEAD); GET re-hashes."""
        if key == EMPTY_SHA256:
            return 0
        with self.env.begin(db=self._db["cas"], buffers=True) as txn:
            data = txn.get(tenant.prefix + key)
            return len(data) if data is not None else None

    def put_cas(
        self, tenant: TenantRecord, key: bytes, data: bytes | bytearray, *, verified: bool = False
    ) -> bool:
        """Store a blob whose sha256 is `key` (checked here unless the caller just did);
        False if already stored."""
        if not verified and hashlib.sha256(data).digest() != key:
            raise ValueError("blob does not hash to its key")
        if key == EMPTY_SHA256:
            return False
        full = tenant.prefix + key
        with self.env.begin(db=self._db["cas"], buffers=True) as txn:
            existing = txn.get(full)
            if existing is not None and len(existing) == len(data) and bytes(existing) == data:
                return False  # common for re-uploads: no write transaction, no fsync

        def body(txn: lmdb.Transaction) -> bool:
            if self._put_entry(txn, tenant, CAS, key, data):
                log.warning("tenant %s: repaired corrupt blob %s on re-put", tenant.name, key.hex())
            return True

        stored: bool = self._commit(body)
        return stored

    def get_ac(self, tenant: TenantRecord, key: bytes) -> bytes | None:
        """The AC value if intact and, unless stored raw, every blob it references is present.

        A validated tenant never serves a raw record (stored while the tenant was in raw mode):
        its references were never checked.
        """
        corrupt: str | None = None
        with self.env.begin(buffers=True) as txn:
            raw = txn.get(tenant.prefix + key, db=self._db["ac"])
            if raw is None:
                return None
            try:
                record = decode_ac(bytes(raw))
            except CorruptRecordError as exc:
                corrupt = str(exc)
            else:
                if record.raw and not tenant.raw_ac:
                    return None
                cas = self._db["cas"]
                for ref, size in record.refs:
                    if ref == EMPTY_SHA256:
                        continue
                    blob = txn.get(tenant.prefix + ref, db=cas)
                    if blob is None or len(blob) != size:
                        log.debug("tenant %s: AC %s misses blob %s", tenant.name, key.hex(), ref)
                        return None
                return record.value
        self._quarantine(tenant, AC, key, corrupt)
        return None

    def put_ac(self, tenant: TenantRecord, key: bytes, record: AcRecord) -> None:
        encoded = record.encode()
        self._commit(lambda txn: self._put_entry(txn, tenant, AC, key, encoded))

    def charge(self, tenant: TenantRecord, delta: int, *, cas: int = 0, ac: int = 0) -> None:
        """Charge usage on its own (blobs kept elsewhere); QuotaExceededError changes nothing."""
        self._commit(lambda txn: self._charge(txn, tenant, delta, cas=cas, ac=ac))

    def _charge(
        self, txn: lmdb.Transaction, tenant: TenantRecord, delta: int, *, cas: int = 0, ac: int = 0
    ) -> None:
        """Update usage inside the caller's write transaction; refuse growth over the quota.

        The quota is read from the stored tenant record (an operator may have changed it since
        the request started), and checked in the same transaction as the write, so concurrent
        uploads cannot overshoot it together.
        """
        db = self._db["usage"]
        raw = txn.get(tenant.prefix, db=db)
        used, n_cas, n_ac = USAGE.unpack(raw) if raw is not None else (0, 0, 0)
        current = txn.get(tenant.name.encode(), db=self._db["tenants"])
        if current is None:
            raise CoordinatorError(f"tenant {tenant.name!r} was deleted")
        quota = TenantRecord.model_validate_json(bytes(current)).quota_bytes
        if delta > 0 and quota is not None and used + delta > quota:
            raise QuotaExceededError(tenant.name, used, quota, delta)
        txn.put(
            tenant.prefix,
            USAGE.pack(max(0, used + delta), max(0, n_cas + cas), max(0, n_ac + ac)),
            db=db,
        )

    def _entries_db(self, kind: bytes) -> Any:
        return self._db["cas"] if kind == CAS else self._db["ac"]

    def _put_entry(
        self,
        txn: lmdb.Transaction,
        tenant: TenantRecord,
        kind: bytes,
        key: bytes,
        data: bytes | bytearray,
    ) -> bool:
        """Store one entry and charge the tenant its change in bytes (and count, if it is new);
        True when it replaced an entry."""
        full = tenant.prefix + key
        db = self._entries_db(kind)
        old = txn.get(full, db=db)
        new = 1 if old is None else 0
        size = len(data) - (len(old) if old is not None else 0)
        self._charge(txn, tenant, size, cas=new if kind == CAS else 0, ac=new if kind == AC else 0)
        txn.put(full, data, db=db)
        return old is not None

    def _delete_entry(
        self, txn: lmdb.Transaction, tenant: TenantRecord, kind: bytes, key: bytes, size: int
    ) -> None:
        """Delete one stored entry and give its bytes and count back to the tenant's usage."""
        txn.delete(tenant.prefix + key, db=self._entries_db(kind))
        self._charge(txn, tenant, -size, cas=-1 if kind == CAS else 0, ac=-1 if kind == AC else 0)

    def _quarantine(self, tenant: TenantRecord, kind: bytes, key: bytes, reason: str) -> None:
        """Remove a corrupt entry (recording why) so it is a miss and a client re-uploads it."""

        def body(txn: lmdb.Transaction) -> None:
            data = txn.get(tenant.prefix + key, db=self._entries_db(kind))
            if data is None:
                return
            if kind == CAS and hashlib.sha256(data).digest() == key:
                return  # repaired meanwhile
            self._delete_entry(txn, tenant, kind, key, len(data))
            note = json.dumps({"reason": reason, "at": time.time(), "size": len(data)})
            txn.put(tenant.prefix + kind + key, note.encode(), db=self._db["quarantine"])

        self.corrupt_found += 1
        log.warning(
            "tenant %s: quarantined corrupt %s entry %s: %s",
            tenant.name,
            "cas" if kind == CAS else "ac",
            key.hex(),
            reason,
        )
        self._commit(body)

    def tenant_entries(self, tenant: TenantRecord) -> list[tuple[bytes, bytes, int]]:
        """(kind, key, stored size) of every entry of the tenant, in key order (for eviction)."""
        out: list[tuple[bytes, bytes, int]] = []
        prefix = tenant.prefix
        with self.env.begin(buffers=True) as txn:
            for kind, name in ((CAS, "cas"), (AC, "ac")):
                cursor = txn.cursor(db=self._db[name])
                if not cursor.set_range(prefix):
                    continue
                for full, value in cursor:
                    if bytes(full[:4]) != prefix:
                        break
                    out.append((kind, bytes(full[4:]), len(value)))
        return out

    def evict(
        self, tenant: TenantRecord, victims: Iterable[tuple[bytes, bytes]], need: int
    ) -> tuple[int, list[tuple[bytes, bytes]]]:
        """Delete the tenant's entries in the given order until `need` bytes are freed, in one
        transaction (usage follows); returns the bytes freed and the entries deleted. An AC
        entry whose blobs were evicted is a miss from then on (reads check references)."""

        def body(txn: lmdb.Transaction) -> tuple[int, list[tuple[bytes, bytes]]]:
            freed = 0
            evicted: list[tuple[bytes, bytes]] = []
            for kind, key in victims:
                if freed >= need:
                    break
                data = txn.get(tenant.prefix + key, db=self._entries_db(kind))
                if data is None:
                    continue
                self._delete_entry(txn, tenant, kind, key, len(data))
                freed += len(data)
                evicted.append((kind, key))
            return freed, evicted

        result: tuple[int, list[tuple[bytes, bytes]]] = self._commit(body)
        if result[0]:
            log.info(
                "tenant %s: evicted %d entries, %d bytes (LRU) to stay under its quota",
                tenant.name,
                len(result[1]),
                result[0],
            )
        return result

    def quarantined(self) -> int:
        with self.env.begin(db=self._db["quarantine"]) as txn:
            count: int = txn.stat(self._db["quarantine"])["entries"]
            return count

    # -- maintenance ------------------------------------------------------------------------

    def iter_entries(self, txn: lmdb.Transaction) -> Iterator[tuple[str, bytes, bytes]]:
        """(kind, full key, value) of every entry, for snapshot and verify."""
        for kind in ("cas", "ac"):
            for full, value in txn.cursor(db=self._db[kind]):
                yield kind, bytes(full), bytes(value)

    def copy_to(self, dest: Path) -> None:
        """A compacted, transactionally consistent copy of the environment (writers continue)."""
        dest.mkdir(parents=True, exist_ok=True)
        self.env.copy(str(dest), compact=True)
