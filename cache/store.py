"""The `Cache`: CAS + action cache in one LMDB environment shared by all of a user's workspaces.

Integrity: blobs are hashed on write (optionally against an expected digest) and re-hashed on every
read. Action values are sealed with a digest of their bytes (`layout.seal_action`) and checked on
every read. A corrupt blob, or an action entry that is undecodable, unsealed or does not match its
digest, is quarantined and reported as a miss, never returned. An action hit is served only when
every blob it references exists and verifies.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import lmdb

from maestro.errors import CacheError, IntegrityError, WorkspaceError
from maestro.paths import cache_dir

from . import layout as L
from .digest import EMPTY_DIGEST, Digest, check_hex, trusted_digest
from .eviction import GcReport, collect

if TYPE_CHECKING:
    from .action import ActionResult
    from .snapshot import Manifest, RestoreReport
    from .stats import CacheStats
    from .verify import VerifyReport

log = logging.getLogger(__name__)

T = TypeVar("T")

MAP_SIZE = 64 << 30
"""Address space reserved for the map; on 64-bit this costs nothing until pages are written."""

ATIME_RESOLUTION_S = 60
"""Access times are only rewritten when older than this: LRU needs order, not precision."""

FLUSH_EVERY_S = 5.0
FLUSH_MAX_PENDING = 10_000
FRESH_MAX = 200_000
"""Bound on the per-process memory of keys whose access time is already recent on disk."""

LOW_WATER = 0.9
"""Automatic gc frees down to this fraction of the cap so it does not run on every put."""

_EMPTY_KEY = EMPTY_DIGEST.key


@dataclass
class _Pending:
    """Read-side bookkeeping not yet written: touches and hit/miss counters.

    Reads must not pay for a write transaction (a commit waits for fsync), so access
    times and counters accumulate here and ride along with the next write, or are flushed after
    FLUSH_EVERY_S / FLUSH_MAX_PENDING, and on close. A kill -9 loses at most those few seconds of
    LRU order and hit counts, never data.
    """

    touches: dict[bytes, int] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0
    cpu_saved: float = 0.0
    wall_saved: float = 0.0
    since: float = field(default_factory=time.monotonic)

    def empty(self) -> bool:
        return not (self.touches or self.hits or self.misses)


class _DecodedActions:
    """Action results decoded recently, each with the exact stored bytes it came from.

    A long-lived process (the daemon) reads the same results at every run; decoding and
    validating one of a large suite (tens of thousands of test outcomes) costs far more than
    comparing its bytes with the ones decoded last time. A hit needs the stored value to be
    byte-for-byte the same, so a result rewritten by any process is decoded afresh. Results are
    treated as immutable everywhere (updates are ``model_copy``), so sharing one is safe.
    """

    MAX_BYTES = 8 << 20
    """Stored bytes kept; decoded (and dumped) they take about ten times as much memory:
    packaging's largest 12 results, 9.5 MB stored, 36k outcomes, were 64 MB decoded + 24 MB
    dumped (tracemalloc)."""

    def __init__(self) -> None:
        # key -> [stored bytes, decoded result, its JSON-mode dump once asked for]
        self._entries: OrderedDict[bytes, list[Any]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: bytes, raw: bytes | memoryview) -> ActionResult | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != raw:
                return None
            self._entries.move_to_end(key)
            found: ActionResult = entry[1]
            return found

    def json_of(self, key: bytes, result: ActionResult) -> dict[str, Any] | None:
        """The JSON-mode dump of `result` if it is the very result kept for `key` (made once)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[1] is not result:
                return None
            if entry[2] is None:
                entry[2] = result.model_dump(mode="json")
            dumped: dict[str, Any] = entry[2]
            return dumped

    def put(self, key: bytes, raw: bytes | memoryview, result: ActionResult) -> None:
        data = bytes(raw)
        if len(data) > self.MAX_BYTES // 2:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old[0])
            self._entries[key] = [data, result, None]
            self._bytes += len(data)
            while self._bytes > self.MAX_BYTES and self._entries:
                dropped = self._entries.popitem(last=False)[1][0]  # [bytes, result, dump]
                self._bytes -= len(dropped)


class _SharedEnv:
    """One LMDB environment per resolved path per process (LMDB forbids opening it twice)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pid = os.getpid()
        self.users = 0
        self.lock = threading.Lock()
        self.pending = _Pending()
        # Keys whose stored access time is known to be within this ATIME_RESOLUTION_S window:
        # touching them again is skipped entirely, so a hot read loop costs no bookkeeping.
        self.fresh: set[bytes] = set()
        self.fresh_window = 0
        self.decoded = _DecodedActions()
        try:
            make_private(path)
            self.env = lmdb.open(
                str(path),
                map_size=MAP_SIZE,
                max_dbs=len(L.DB_NAMES) + 1,
                max_readers=512,
                mode=L.FILE_MODE,
                # One flush per commit, not two (the meta page written through a second, synced
                # descriptor): atomicity and consistency stay, a power cut may undo the last
                # commit. For a cache that is a re-run; a run's commit is on its critical path.
                metasync=False,
            )
            self.dbs = L.open_dbs(self.env)
            # which file this is: `Cache.detached` tells when the directory was deleted under it
            opened = os.stat(path / L.DATA_FILE)
            self.identity = (opened.st_dev, opened.st_ino)
        except lmdb.Error as exc:
            raise CacheError(
                f"cannot open the cache at {path}: {exc}",
                hint="check permissions and free space; if the file is damaged, "
                "`maestro cache restore` a snapshot or delete the directory",
            ) from exc
        except OSError as exc:
            raise CacheError(f"cannot create the cache directory {path}: {exc}") from exc


def make_private(path: Path) -> None:
    """Create `path` (and its parents) or tighten it: the directory 0700, its LMDB files 0600.

    Caches made before these modes were enforced are 0755 with 0644 files, readable by every
    local user; they are tightened here, once, with one log line."""
    # The daemon's helper for its socket directory: create 0700, refuse one owned by another
    # user or a non-directory, tighten a loose one.
    from maestro.daemon.address import _private_dir

    path.parent.mkdir(parents=True, exist_ok=True)
    loose: list[str] = []
    with contextlib.suppress(FileNotFoundError):
        before = stat.S_IMODE(path.lstat().st_mode)
        if before & 0o077:
            loose.append(f"directory {before:o}")
    try:
        _private_dir(path)
    except WorkspaceError as exc:
        raise CacheError(
            f"the cache directory {path} is not a directory owned by uid {os.getuid()}",
            hint="remove it, or point MAESTRO_CACHE_DIR at a directory of your own",
        ) from exc
    for name in (L.DATA_FILE, L.LOCK_FILE):
        file = path / name
        try:
            st = file.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
            loose.append(f"{name} {stat.S_IMODE(st.st_mode):o}")
            file.chmod(L.FILE_MODE)
    if loose:
        log.info(
            "made the cache at %s private to its user (was: %s): it holds captured test output",
            path,
            ", ".join(loose),
        )


_ENVS: dict[Path, _SharedEnv] = {}
_ENVS_LOCK = threading.Lock()


def _acquire(path: Path) -> _SharedEnv:
    key = path.resolve()
    with _ENVS_LOCK:
        shared = _ENVS.get(key)
        if shared is not None and shared.pid != os.getpid():
            # Inherited across fork(): the parent's handle must not be used (nor closed) here.
            shared = None
        if shared is None:
            shared = _SharedEnv(key)
            _ENVS[key] = shared
        shared.users += 1
        return shared


def _release(shared: _SharedEnv) -> None:
    with _ENVS_LOCK:
        shared.users -= 1
        if shared.users == 0:
            if _ENVS.get(shared.path) is shared:
                del _ENVS[shared.path]
            shared.env.close()


def is_open_in_process(path: Path) -> bool:
    """Whether this process holds the environment at `path` (restore refuses to replace it)."""
    shared = _ENVS.get(path.resolve())
    return shared is not None and shared.pid == os.getpid()


def _key_of(ref: Digest | str) -> bytes:
    return ref.key if isinstance(ref, Digest) else check_hex(ref)


def _hash(data: bytes) -> tuple[bytes, Digest]:
    raw = hashlib.sha256(data).digest()
    return raw, trusted_digest(raw.hex(), len(data))


def _now() -> int:
    return int(time.time())


class Cache:
    """Content-addressed blobs and action results with integrity checks, stats and a size cap.

    Instances are cheap handles: several `Cache.open()` calls on one path in a process share one
    LMDB environment, which closes with the last handle. Safe across threads and processes.
    """

    def __init__(self, shared: _SharedEnv, max_bytes: int | None) -> None:
        if max_bytes is not None and max_bytes < 0:
            raise CacheError(f"negative cache size cap {max_bytes}")
        self._shared: _SharedEnv | None = shared
        self.max_bytes = max_bytes

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | None = None, *, max_bytes: int | None = None) -> Cache:
        """Open (creating if needed) the cache at `path`, default `cache_dir()/"lmdb"`."""
        return cls(_acquire(path if path is not None else cache_dir() / "lmdb"), max_bytes)

    @property
    def path(self) -> Path:
        return self._live.path

    def detached(self) -> bool:
        """Whether this process's cache file was deleted or replaced since it was opened (`rm -rf`
        of the cache directory, to start afresh): what it reads there, no other process and no
        later one would; what it writes there is lost when it closes."""
        shared = self._live
        try:
            now = os.stat(shared.path / L.DATA_FILE)
        except FileNotFoundError:
            return True
        return (now.st_dev, now.st_ino) != shared.identity

    @property
    def shared_with_team(self) -> bool:
        """Whether what is stored here also reaches other machines (a team cache mirror): then
        a run also stores its results under `keys.lookup_pointer` of their lookup keys."""
        return False

    def adopt(self, action_hex: str, result: ActionResult) -> None:
        """Store a result another machine ran (its blobs are here) under its own key, for this
        machine's later lookups and `explain`; a mirror does not send it back."""
        self.put_action(action_hex, result)

    @property
    def _live(self) -> _SharedEnv:
        if self._shared is None:
            raise CacheError("the cache is closed", hint="open it again with Cache.open()")
        if self._shared.pid != os.getpid():
            raise CacheError(
                "cache handle used after fork()",
                hint="open the cache in the child process instead of inheriting it",
            )
        return self._shared

    def close(self) -> None:
        if self._shared is None:
            return
        if self._shared.pid == os.getpid():
            try:
                self.flush()
            except CacheError:
                log.warning("could not flush cache bookkeeping on close", exc_info=True)
            _release(self._shared)
        self._shared = None

    def __enter__(self) -> Cache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- transactions ------------------------------------------------------------------------

    def _write(self, body: Callable[[lmdb.Transaction, L.Dbs], T], *, grow: int = 0) -> T:
        """Run `body` in a write transaction that also carries pending bookkeeping."""
        shared = self._live
        for attempt in (0, 1):
            try:
                with shared.env.begin(write=True) as txn:
                    self._flush_into(txn, shared)
                    return body(txn, shared.dbs)
            except lmdb.MapFullError as exc:
                if attempt == 0 and self.max_bytes is not None:
                    log.warning("cache map full; collecting before retrying")
                    self.gc(max(0, int(self.max_bytes * LOW_WATER) - grow))
                    continue
                raise CacheError(
                    f"the cache at {shared.path} is full ({MAP_SIZE >> 30} GiB map)",
                    hint="set a size cap: `maestro cache gc --max-size 10GB`",
                ) from exc
            except lmdb.Error as exc:
                raise CacheError(
                    f"cache write failed at {shared.path}: {exc}",
                    hint="check free disk space and permissions",
                ) from exc
        raise AssertionError("unreachable")

    def _flush_into(self, txn: lmdb.Transaction, shared: _SharedEnv) -> None:
        with shared.lock:
            pending, shared.pending = shared.pending, _Pending()
        if pending.empty():
            return
        dbs = shared.dbs
        for mkey, atime in pending.touches.items():
            raw = txn.get(mkey, db=dbs.meta)
            if raw is not None:
                old, size = L.META.unpack(raw)
                if atime - old >= ATIME_RESOLUTION_S:
                    txn.put(mkey, L.META.pack(atime, size), db=dbs.meta)
        with shared.lock:
            if len(shared.fresh) < FRESH_MAX:
                shared.fresh.update(pending.touches)
        L.add_int(txn, dbs, L.HITS, pending.hits)
        L.add_int(txn, dbs, L.MISSES, pending.misses)
        L.add_float(txn, dbs, L.CPU_SAVED, pending.cpu_saved)
        L.add_float(txn, dbs, L.WALL_SAVED, pending.wall_saved)

    def _note(
        self, touches: Iterable[bytes] = (), *, hit: ActionResult | None = None, miss: bool = False
    ) -> None:
        shared = self._live
        now = _now()
        with shared.lock:
            window = now // ATIME_RESOLUTION_S
            if window != shared.fresh_window:
                shared.fresh.clear()
                shared.fresh_window = window
            pending = shared.pending
            fresh = shared.fresh
            for mkey in touches:
                if mkey not in fresh:
                    pending.touches[mkey] = now
            if hit is not None:
                pending.hits += 1
                pending.cpu_saved += hit.timing.cpu_s
                pending.wall_saved += hit.timing.wall_s
            if miss:
                pending.misses += 1
            due = (
                len(pending.touches) >= FLUSH_MAX_PENDING
                or time.monotonic() - pending.since >= FLUSH_EVERY_S
            )
        if due:
            self.flush()

    def flush(self) -> None:
        """Write pending access times and hit/miss counters now."""
        shared = self._live
        if not shared.pending.empty():
            self._write(lambda txn, dbs: None)

    # -- CAS ---------------------------------------------------------------------------------

    def put_blob(self, data: bytes, expected: Digest | None = None) -> Digest:
        """Store `data`; with `expected`, refuse (IntegrityError, nothing stored) on mismatch."""
        key, digest = _hash(data)
        if expected is not None and expected != digest:
            raise IntegrityError(
                f"blob does not match its digest: expected {expected}, got {digest}",
                hint="the upload or download was truncated or altered; fetch it again",
            )
        self._put_many([(key, data)])
        return digest

    def put_blobs(self, blobs: Sequence[bytes]) -> list[Digest]:
        """Store many blobs in one write transaction (one fsync instead of one per blob)."""
        return self.put_run(blobs, ())

    def put_run(
        self, blobs: Sequence[bytes], actions: Sequence[tuple[str, ActionResult]]
    ) -> list[Digest]:
        """A run's blobs and the results that reference them, in one write transaction (one
        fsync per run); the blobs' digests."""
        hashed = [_hash(data) for data in blobs]
        pairs = [(key, data) for (key, _), data in zip(hashed, blobs, strict=True)]
        put_blobs, grow, existing = self._blob_writer(pairs)
        put_actions, grow_actions = self._action_writer(actions)
        if grow or actions:

            def body(txn: lmdb.Transaction, dbs: L.Dbs) -> int:
                put_blobs(txn, dbs)
                put_actions(txn, dbs)
                return L.get_int(txn, dbs, L.BLOB_BYTES) + L.get_int(txn, dbs, L.ACTION_BYTES)

            total = self._write(body, grow=grow + grow_actions)
            self._note(existing)
            self._maybe_gc(total)
        return [digest for _, digest in hashed]

    def _put_many(self, pairs: Sequence[tuple[bytes, bytes]]) -> None:
        put_blobs, grow, existing = self._blob_writer(pairs)
        if not grow:
            return

        def body(txn: lmdb.Transaction, dbs: L.Dbs) -> int:
            put_blobs(txn, dbs)
            return L.get_int(txn, dbs, L.BLOB_BYTES) + L.get_int(txn, dbs, L.ACTION_BYTES)

        total = self._write(body, grow=grow)
        self._note(existing)
        self._maybe_gc(total)

    def _blob_writer(
        self, pairs: Sequence[tuple[bytes, bytes]]
    ) -> tuple[Callable[[lmdb.Transaction, L.Dbs], None], int, list[bytes]]:
        """What stores ``pairs`` in a write transaction, the bytes they add at most, and the
        list it fills with the blobs already there (a re-put counts as a use)."""
        pairs = [(key, data) for key, data in pairs if data]
        existing: list[bytes] = []
        if not pairs:
            return (lambda txn, dbs: None), 0, existing
        incoming = sum(len(data) for _, data in pairs)
        if self.max_bytes is not None and max(len(data) for _, data in pairs) > self.max_bytes:
            raise CacheError(
                f"blob larger than the cache cap ({self.max_bytes} bytes)",
                hint="raise the cap with --max-size",
            )

        def body(txn: lmdb.Transaction, dbs: L.Dbs) -> None:
            meta = L.META.pack(_now(), 0)[:8]  # the atime half, shared by the whole batch
            added = 0
            existing.clear()
            for key, data in pairs:
                if not txn.put(key, data, db=dbs.cas, overwrite=False):
                    if txn.get(key, db=dbs.cas) == data:
                        existing.append(L.BLOB + key)  # a re-put counts as a use
                        continue
                    log.warning("repairing corrupt blob %s on re-put", key.hex())
                    txn.put(key, data, db=dbs.cas)
                    old = txn.get(L.BLOB + key, db=dbs.meta)
                    if old is not None:
                        added -= L.META.unpack(old)[1]
                txn.put(L.BLOB + key, meta + L.U64.pack(len(data)), db=dbs.meta)
                added += len(data)
            L.add_int(txn, dbs, L.BLOB_BYTES, added)

        return body, incoming, existing

    def get_blob(self, ref: Digest | str) -> bytes | None:
        """The blob's bytes after re-hashing them; None if absent or corrupt (then quarantined)."""
        return self.get_blobs([ref])[0]

    def get_blobs(self, refs: Sequence[Digest | str]) -> list[bytes | None]:
        """Batch `get_blob` in one read transaction."""
        shared = self._live
        out: list[bytes | None] = []
        bad: list[bytes] = []
        touched: list[bytes] = []
        sha256 = hashlib.sha256
        with shared.env.begin(db=shared.dbs.cas) as txn:
            for ref in refs:
                key = ref.key if isinstance(ref, Digest) else check_hex(ref)
                data = txn.get(key)
                if data is None:
                    if key == _EMPTY_KEY:
                        data = b""
                elif sha256(data).digest() == key:
                    touched.append(L.BLOB + key)
                else:
                    bad.append(key)
                    data = None
                out.append(data)
        for key in bad:
            self._quarantine_blob(key, "sha256 mismatch on read")
        self._note(touched)
        return out

    def has_blob(self, ref: Digest | str) -> bool:
        """Presence by hash (no re-hash); touches the blob as REAPI servers extend lifetimes."""
        return not self.has_blobs([ref])

    def has_blobs(self, refs: Iterable[Digest | str]) -> set[Digest | str]:
        """The subset of `refs` that is missing (REAPI FindMissingBlobs)."""
        shared = self._live
        missing: set[Digest | str] = set()
        present: list[bytes] = []
        with shared.env.begin(db=shared.dbs.meta) as txn:
            for ref in refs:
                key = _key_of(ref)
                if key == _EMPTY_KEY:
                    continue
                if txn.get(L.BLOB + key) is None:
                    missing.add(ref)
                else:
                    present.append(L.BLOB + key)
        self._note(present)
        return missing

    def _quarantine_blob(self, key: bytes, reason: str) -> None:
        def body(txn: lmdb.Transaction, dbs: L.Dbs) -> None:
            data = txn.get(key, db=dbs.cas)
            if data is None or hashlib.sha256(data).digest() == key:
                return  # already handled, or repaired by another process meanwhile
            L.quarantine(txn, dbs, L.BLOB, key, data, reason, _now())

        log.warning("quarantined corrupt blob %s: %s", key.hex(), reason)
        self._write(body)

    # -- action cache ------------------------------------------------------------------------

    def put_action(self, action_hex: str, result: ActionResult) -> None:
        """Store `result` under the action digest, replacing any previous entry."""
        self.put_actions([(action_hex, result)])

    def put_actions(self, items: Sequence[tuple[str, ActionResult]]) -> None:
        """Store many results in one write transaction (one fsync for a whole run)."""
        self.put_run((), items)

    def _action_writer(
        self, items: Sequence[tuple[str, ActionResult]]
    ) -> tuple[Callable[[lmdb.Transaction, L.Dbs], None], int]:
        """What stores ``items`` in a write transaction, and the bytes they add."""
        entries = []
        for action_hex, result in items:
            key = check_hex(action_hex, "action digest")
            refs = sorted({d.key for d in result.referenced_digests() if d.size})
            entries.append((key, L.seal_action(key, result.encode()), refs))

        def body(txn: lmdb.Transaction, dbs: L.Dbs) -> None:
            for key, value, refs in entries:
                L.delete_action(txn, dbs, key)
                txn.put(key, value, db=dbs.ac)
                txn.put(L.ACTION + key, L.META.pack(_now(), len(value)), db=dbs.meta)
                if refs:
                    txn.put(key, b"".join(refs), db=dbs.arefs)
                    L.incref(txn, dbs, refs)
                L.add_int(txn, dbs, L.ACTION_BYTES, len(value))

        return body, sum(len(value) for _, value, _ in entries)

    def action_json(self, action_hex: str, result: ActionResult) -> dict[str, Any]:
        """``result.model_dump(mode="json")``; made once while `result` is the one this process
        decoded for `action_hex` (the daemon answers every run with the same stored results).
        The dict may be shared: do not mutate it."""
        kept = self._live.decoded.json_of(check_hex(action_hex, "action digest"), result)
        return kept if kept is not None else result.model_dump(mode="json")

    def has_action(self, action_hex: str) -> bool:
        """Whether this cache holds an entry for the action, sound or not (no decoding, no
        counting): a missing result is told from one held that cannot be used."""
        key = check_hex(action_hex, "action digest")
        with self._live.env.begin() as txn:
            return txn.get(key, db=self._live.dbs.ac) is not None

    def get_action(self, action_hex: str, *, count: bool = True) -> ActionResult | None:
        """The stored result if it decodes and every blob it references exists and verifies.

        ``count=False``: a read that is not a cache lookup (or whose caller decides afterwards
        whether it served the action, see ``count_lookup``) leaves the hit/miss counters alone.
        """
        key = check_hex(action_hex, "action digest")
        shared = self._live
        bad_blob: bytes | None = None
        bad_action: str | None = None
        with shared.env.begin() as txn:
            raw = txn.get(key, db=shared.dbs.ac)
            if raw is None:
                self._note(miss=count)
                return None
            result: ActionResult | None = None
            decoded: ActionResult | None = shared.decoded.get(key, raw)
            if decoded is None:
                # here, not at the top: opening the cache and a miss need no model (pydantic)
                from .action import NewerSchemaError

                try:
                    decoded = L.load_action(key, raw)
                except NewerSchemaError as exc:
                    log.info("action %s: %s", action_hex, exc.message)
                except CacheError as exc:
                    bad_action = exc.message
                else:
                    shared.decoded.put(key, raw, decoded)
            if decoded is not None:
                result = decoded
                for digest in decoded.referenced_digests():
                    if not digest.size:
                        continue
                    data = txn.get(digest.key, db=shared.dbs.cas)
                    if data is None or len(data) != digest.size:
                        log.debug("action %s misses blob %s", action_hex, digest)
                        result = None
                        break
                    if hashlib.sha256(data).digest() != digest.key:
                        bad_blob, result = digest.key, None
                        break
        if result is None:
            if bad_action is not None:
                self._quarantine_action(key, bad_action)
            if bad_blob is not None:
                self._quarantine_blob(bad_blob, f"sha256 mismatch (referenced by {action_hex})")
            self._note(miss=count)
            return None
        touches = [L.ACTION + key, *(L.BLOB + d.key for d in result.referenced_digests())]
        self._note(touches, hit=result if count else None)
        return result

    def count_lookup(self, served: ActionResult | None) -> None:
        """Count one lookup the caller decided: a hit iff ``served`` replaces running the action.

        A stored result that is re-run anyway (it failed) is a miss: `cache stats` reports what
        the cache saved, not what it holds."""
        if served is not None:
            self._note(hit=served)
        else:
            self._note(miss=True)

    def _quarantine_action(self, key: bytes, reason: str) -> None:
        def body(txn: lmdb.Transaction, dbs: L.Dbs) -> bool:
            data = txn.get(key, db=dbs.ac)
            # Re-checked: another process may have replaced the entry with a sound one meanwhile.
            if data is None or L.action_problem(key, data) is None:
                return False
            L.quarantine(txn, dbs, L.ACTION, key, data, reason, _now())
            return True

        if self._write(body):
            log.warning("quarantined action entry %s: %s", key.hex(), reason)

    # -- maintenance -------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """Persisted counters, including this process's not-yet-flushed hits and misses."""
        from .stats import CacheStats

        self.flush()
        shared = self._live
        with shared.env.begin() as txn:
            dbs = shared.dbs
            blob_bytes = L.get_int(txn, dbs, L.BLOB_BYTES)
            action_bytes = L.get_int(txn, dbs, L.ACTION_BYTES)
            data_file = shared.path / L.DATA_FILE
            return CacheStats(
                path=str(self.path),
                hits=L.get_int(txn, dbs, L.HITS),
                misses=L.get_int(txn, dbs, L.MISSES),
                blobs=txn.stat(dbs.cas)["entries"],
                actions=txn.stat(dbs.ac)["entries"],
                bytes=blob_bytes + action_bytes,
                blob_bytes=blob_bytes,
                action_bytes=action_bytes,
                cpu_seconds_saved=L.get_float(txn, dbs, L.CPU_SAVED),
                wall_seconds_saved=L.get_float(txn, dbs, L.WALL_SAVED),
                evictions=L.get_int(txn, dbs, L.EVICTIONS),
                quarantined=txn.stat(dbs.quarantine)["entries"],
                max_bytes=self.max_bytes,
                file_bytes=data_file.stat().st_size if data_file.exists() else 0,
            )

    def gc(self, max_bytes: int | None = None) -> GcReport:
        """Evict LRU entries until stored bytes <= `max_bytes` (default: this handle's cap)."""
        target = max_bytes if max_bytes is not None else self.max_bytes
        if target is None:
            raise CacheError("no size cap to collect to", hint="pass --max-size, e.g. 10GB")
        return self._write(lambda txn, dbs: collect(txn, dbs, target, _now()))

    def _maybe_gc(self, total: int) -> None:
        if self.max_bytes is not None and total > self.max_bytes:
            self.gc(int(self.max_bytes * LOW_WATER))

    def purge_quarantine(self) -> int:
        """Drop quarantined entries (kept for post-mortems); returns how many."""

        def body(txn: lmdb.Transaction, dbs: L.Dbs) -> int:
            count: int = txn.stat(dbs.quarantine)["entries"]
            txn.drop(dbs.quarantine, delete=False)
            return count

        return self._write(body)

    def verify(self) -> VerifyReport:
        """Check every blob and action entry against its digest; quarantine and list bad ones."""
        from .verify import verify_env

        self.flush()
        shared = self._live
        return verify_env(shared.env, shared.dbs)

    def snapshot(self, dest_dir: Path) -> Manifest:
        """Write a compacted, consistent copy plus a manifest to `dest_dir` (must be empty)."""
        from .snapshot import take_snapshot

        self.flush()
        return take_snapshot(self._live.env, dest_dir)

    @classmethod
    def restore(
        cls, snapshot_dir: Path, target_path: Path | None = None, *, force: bool = False
    ) -> RestoreReport:
        """Verify a snapshot completely, then install it at `target_path`; refuses on mismatch."""
        from .snapshot import restore_snapshot

        target = target_path if target_path is not None else cache_dir() / "lmdb"
        return restore_snapshot(snapshot_dir, target, force=force)
