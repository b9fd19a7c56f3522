"""On-disk layout of the cache: one LMDB environment, named sub-databases, key and value encodings.

    cas         32-byte sha256 -> blob bytes
    ac          32-byte action digest -> sealed msgpack ActionResult (see `seal_action`)
    meta        kind byte + 32-byte key -> <u64 last access (unix s), u64 value size>
    refc        32-byte blob key -> <u32 number of AC entries referencing it>
    arefs       32-byte action key -> concatenated 32-byte keys of the blobs it references
    stats       counter name -> <u64> or <f64>
    quarantine  kind byte + 32-byte key -> msgpack {reason, at, data}

Sizes live in `meta` so eviction never has to read blob values; `refc`/`arefs` make "is this blob
still referenced by a kept action" an O(1) lookup instead of decoding every action result.
Every mutation of these tables happens inside one write transaction, so they stay consistent
across crashes (LMDB commits are atomic).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import lmdb
import msgpack

from maestro.errors import CacheError, IntegrityError

if TYPE_CHECKING:
    from .action import ActionResult

BLOB = b"c"
ACTION = b"a"

META = struct.Struct("<QQ")
REFC = struct.Struct("<I")
U64 = struct.Struct("<Q")
F64 = struct.Struct("<d")

# Counter names (keys in the stats db).
HITS = b"hits"
MISSES = b"misses"
EVICTIONS = b"evictions"
QUARANTINED = b"quarantined"
BLOB_BYTES = b"blob_bytes"
ACTION_BYTES = b"action_bytes"
CPU_SAVED = b"cpu_seconds_saved"
WALL_SAVED = b"wall_seconds_saved"
FLOAT_COUNTERS = frozenset({CPU_SAVED, WALL_SAVED})

DB_NAMES = ("cas", "ac", "meta", "refc", "arefs", "stats", "quarantine")

DATA_FILE = "data.mdb"
LOCK_FILE = "lock.mdb"
FILE_MODE = 0o600
"""Mode of every file the cache writes (LMDB files, snapshots, restores): they hold captured test
output, which other local users must not read. Directories are 0700."""

AC_FORMAT = 2
"""Version of the envelope around stored action values (`seal_action`).

It sits in the envelope's ``schema_version`` field, where a Maestro that predates the envelope
reads an ActionResult's schema version: such a reader sees a newer entry and treats it as a miss
it leaves alone, instead of quarantining an entry it cannot parse. The ActionResult inside (and
the remote wire form, which is that ActionResult alone) keeps its own SCHEMA_VERSION.
"""


@dataclass(frozen=True, slots=True)
class Dbs:
    """Handles of the named sub-databases of one environment."""

    cas: Any
    ac: Any
    meta: Any
    refc: Any
    arefs: Any
    stats: Any
    quarantine: Any


def open_dbs(env: lmdb.Environment, *, create: bool = True) -> Dbs:
    """The handles; with ``create``, missing databases are made in one write transaction (one
    commit and one fsync for a new cache, instead of one per database: a first run waits for it)."""
    if not create:
        return Dbs(**{name: env.open_db(name.encode(), create=False) for name in DB_NAMES})
    with env.begin(write=True) as txn:
        handles = {name: env.open_db(name.encode(), txn=txn, create=True) for name in DB_NAMES}
    return Dbs(**handles)


def get_int(txn: lmdb.Transaction, dbs: Dbs, name: bytes) -> int:
    raw = txn.get(name, db=dbs.stats)
    return int(U64.unpack(raw)[0]) if raw is not None else 0


def get_float(txn: lmdb.Transaction, dbs: Dbs, name: bytes) -> float:
    raw = txn.get(name, db=dbs.stats)
    return float(F64.unpack(raw)[0]) if raw is not None else 0.0


def add_int(txn: lmdb.Transaction, dbs: Dbs, name: bytes, delta: int) -> None:
    if delta:
        txn.put(name, U64.pack(max(0, get_int(txn, dbs, name) + delta)), db=dbs.stats)


def set_int(txn: lmdb.Transaction, dbs: Dbs, name: bytes, value: int) -> None:
    txn.put(name, U64.pack(max(0, value)), db=dbs.stats)


def add_float(txn: lmdb.Transaction, dbs: Dbs, name: bytes, delta: float) -> None:
    if delta:
        txn.put(name, F64.pack(get_float(txn, dbs, name) + delta), db=dbs.stats)


def incref(txn: lmdb.Transaction, dbs: Dbs, keys: Iterable[bytes]) -> None:
    for key in keys:
        raw = txn.get(key, db=dbs.refc)
        count = REFC.unpack(raw)[0] if raw is not None else 0
        txn.put(key, REFC.pack(count + 1), db=dbs.refc)


def decref(txn: lmdb.Transaction, dbs: Dbs, keys: Iterable[bytes]) -> list[bytes]:
    """Drop one reference from each key; returns the keys no action references any more."""
    orphans: list[bytes] = []
    for key in keys:
        raw = txn.get(key, db=dbs.refc)
        count = REFC.unpack(raw)[0] if raw is not None else 0
        if count <= 1:
            txn.delete(key, db=dbs.refc)
            orphans.append(key)
        else:
            txn.put(key, REFC.pack(count - 1), db=dbs.refc)
    return orphans


def split_keys(packed: bytes | memoryview) -> list[bytes]:
    return [bytes(packed[i : i + 32]) for i in range(0, len(packed), 32)]


def delete_blob(txn: lmdb.Transaction, dbs: Dbs, key: bytes) -> int:
    """Remove a blob and its metadata; returns the bytes freed (0 if absent)."""
    data = txn.pop(key, db=dbs.cas)
    txn.delete(BLOB + key, db=dbs.meta)
    if data is None:
        return 0
    add_int(txn, dbs, BLOB_BYTES, -len(data))
    return len(data)


def delete_action(txn: lmdb.Transaction, dbs: Dbs, key: bytes) -> tuple[int, list[bytes]]:
    """Remove an action entry; returns (bytes freed, blob keys left unreferenced)."""
    data = txn.pop(key, db=dbs.ac)
    txn.delete(ACTION + key, db=dbs.meta)
    refs = txn.pop(key, db=dbs.arefs)
    orphans = decref(txn, dbs, split_keys(refs)) if refs else []
    if data is None:
        return 0, orphans
    add_int(txn, dbs, ACTION_BYTES, -len(data))
    return len(data), orphans


class UnsealedActionError(IntegrityError):
    """A stored action value without the digest envelope: written by an older Maestro, or edited.

    Nothing vouches for its bytes, so it is handled as corrupt (quarantined, a miss)."""

    code = "unsealed_action"


def seal_action(key: bytes, payload: bytes) -> bytes:
    """The stored form of an action result: its encoded bytes plus sha256(key + payload).

    The key is hashed too, so a value copied under another action's key fails the check."""
    return msgpack.packb(
        {
            "schema_version": AC_FORMAT,
            "sha256": hashlib.sha256(key + payload).digest(),
            "payload": payload,
        },
        use_bin_type=True,
    )


def unseal_action(key: bytes, value: bytes | memoryview) -> bytes:
    """The payload of a sealed action value, after checking its digest.

    Raises NewerSchemaError (a newer envelope: not ours to judge), UnsealedActionError (no
    envelope), IntegrityError (digest mismatch) or CacheError (not an envelope at all)."""
    # here, not at the top: opening the cache and a miss need no model (pydantic's import)
    from .action import NewerSchemaError, unpack_map

    envelope = unpack_map(value, "action entry")
    version = envelope.get("schema_version")
    if not isinstance(version, int) or version < AC_FORMAT:
        raise UnsealedActionError("action entry has no value digest (older format, or edited)")
    if version > AC_FORMAT:
        raise NewerSchemaError(
            f"action entry has format {version}, this Maestro reads {AC_FORMAT}",
            hint="upgrade Maestro to use entries written by newer versions",
        )
    digest, payload = envelope.get("sha256"), envelope.get("payload")
    if not isinstance(digest, bytes) or not isinstance(payload, bytes):
        raise CacheError("action entry envelope lacks its digest or payload")
    if hashlib.sha256(key + payload).digest() != digest:
        raise IntegrityError("action entry does not match its value digest")
    return payload


def load_action(key: bytes, value: bytes | memoryview) -> ActionResult:
    """Check and decode a stored action value; the errors of `unseal_action` and `decode_action`."""
    from .action import decode_action

    return decode_action(unseal_action(key, value))


def action_problem(key: bytes, value: bytes | memoryview) -> str | None:
    """Why a stored action value must be quarantined, or None (sound, or newer than us)."""
    from .action import NewerSchemaError

    try:
        load_action(key, value)
    except NewerSchemaError:
        return None
    except CacheError as exc:
        return exc.message
    return None


def quarantine(
    txn: lmdb.Transaction,
    dbs: Dbs,
    kind: bytes,
    key: bytes,
    data: bytes | memoryview,
    reason: str,
    now: int,
) -> None:
    """Move a bad entry out of the live tables, keeping its bytes for a post-mortem."""
    record = msgpack.packb({"reason": reason, "at": now, "data": bytes(data)}, use_bin_type=True)
    txn.put(kind + key, record, db=dbs.quarantine)
    if kind == BLOB:
        delete_blob(txn, dbs, key)
    else:
        delete_action(txn, dbs, key)
    add_int(txn, dbs, QUARANTINED, 1)
