"""The daemon sync's outbox: a bounded, persisted queue of uploads and telemetry batches.

One SQLite file (WAL) in the workspace state dir, so queued work survives a daemon restart or a
`kill -9` (a committed row is durable, an interrupted insert is rolled back). Bounded by count
and bytes: when full, the oldest entries are dropped (they are only an optimisation: the results
stay in the local cache). Uploads are keyed by action digest, so re-queuing an action replaces
its entry instead of growing the queue. Safe to use from several threads.

Only a `RedactedBlob` can be pushed (what the redaction module cleared): bytes that skipped the
egress gate cannot enter the outbox. What is read back is plain bytes again (the file could have
been written by anything), which the upload path scans once more before it sends them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maestro.redaction import RedactedBlob

from . import layout as L

log = logging.getLogger(__name__)

DEFAULT_MAX_ITEMS = 10_000
DEFAULT_MAX_BYTES = 256 * 1024 * 1024

_SIDE_FILES = ("-wal", "-shm", "-journal")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL UNIQUE,
    value BLOB NOT NULL,
    enqueued REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS telemetry (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    payload BLOB NOT NULL,
    enqueued REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True, slots=True)
class _Outbox:
    """One queue table: rows in arrival order (``seq``), each named by ``key``, carrying
    the blob ``value``."""

    table: str
    key: str
    value: str


_UPLOADS = _Outbox("uploads", "action", "value")
_TELEMETRY = _Outbox("telemetry", "seq", "payload")


@dataclass(frozen=True, slots=True)
class QueuedUpload:
    action: str
    value: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class QueuedBatch:
    seq: int
    payload: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class QueueCounts:
    uploads: int
    upload_bytes: int
    telemetry: int


class SyncQueue:
    def __init__(
        self,
        path: Path,
        *,
        max_items: int = DEFAULT_MAX_ITEMS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.path = path
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.dropped = 0
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError:
            # A damaged outbox only costs uploads that will happen again on the next run.
            aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
            log.warning("sync queue %s is damaged; moved aside to %s", path, aside)
            with contextlib.suppress(OSError):
                path.rename(aside)
            self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        # Queued results carry test names and failure messages: the files are private like the
        # cache's. SQLite creates -wal and -shm with the database file's mode; older ones are
        # tightened here.
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, L.FILE_MODE))
        for file in (self.path, *(self.path.with_name(self.path.name + s) for s in _SIDE_FILES)):
            with contextlib.suppress(FileNotFoundError):
                if stat.S_IMODE(file.lstat().st_mode) & 0o077:
                    file.chmod(L.FILE_MODE)
        db = sqlite3.connect(self.path, timeout=10, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            db.execute("SELECT count(*) FROM uploads").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- uploads -----------------------------------------------------------------------------

    def push_upload(self, action: str, value: RedactedBlob) -> None:
        if not isinstance(value, RedactedBlob):
            raise TypeError("the sync queue takes a RedactedBlob (maestro.redaction)")
        with self._lock, self._tx():
            self._db.execute("DELETE FROM uploads WHERE action = ?", (action,))
            self._db.execute(
                "INSERT INTO uploads (action, value, enqueued) VALUES (?, ?, ?)",
                (action, value.data, time.time()),
            )
            self._trim(_UPLOADS)

    def peek_uploads(self, n: int) -> list[QueuedUpload]:
        return [QueuedUpload(*row) for row in self._peek(_UPLOADS, n)]

    def done_upload(self, action: str) -> None:
        self._done(_UPLOADS, action)

    def failed_upload(self, action: str) -> None:
        self._failed(_UPLOADS, action)

    def clear_uploads(self) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM uploads").rowcount

    # -- telemetry ---------------------------------------------------------------------------

    def push_telemetry(self, payload: RedactedBlob) -> None:
        if not isinstance(payload, RedactedBlob):
            raise TypeError("the sync queue takes a RedactedBlob (maestro.redaction)")
        with self._lock, self._tx():
            self._db.execute(
                "INSERT INTO telemetry (payload, enqueued) VALUES (?, ?)",
                (payload.data, time.time()),
            )
            self._trim(_TELEMETRY)

    def peek_telemetry(self, n: int) -> list[QueuedBatch]:
        return [QueuedBatch(*row) for row in self._peek(_TELEMETRY, n)]

    def done_telemetry(self, seq: int) -> None:
        self._done(_TELEMETRY, seq)

    def failed_telemetry(self, seq: int) -> None:
        self._failed(_TELEMETRY, seq)

    # -- state -------------------------------------------------------------------------------

    def counts(self) -> QueueCounts:
        with self._lock:
            n, size = self._db.execute(
                "SELECT count(*), coalesce(sum(length(value)), 0) FROM uploads"
            ).fetchone()
            (t,) = self._db.execute("SELECT count(*) FROM telemetry").fetchone()
        return QueueCounts(int(n), int(size), int(t))

    # -- one outbox table ----------------------------------------------------------------------

    def _peek(self, box: _Outbox, n: int) -> list[tuple[Any, bytes, int]]:
        """The ``n`` oldest rows: key, value, attempts."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {box.key}, {box.value}, attempts FROM {box.table} ORDER BY seq LIMIT ?",
                (n,),
            ).fetchall()
        return [(key, bytes(value), attempts) for key, value, attempts in rows]

    def _done(self, box: _Outbox, key: object) -> None:
        with self._lock:
            self._db.execute(f"DELETE FROM {box.table} WHERE {box.key} = ?", (key,))

    def _failed(self, box: _Outbox, key: object) -> None:
        with self._lock:
            self._db.execute(
                f"UPDATE {box.table} SET attempts = attempts + 1 WHERE {box.key} = ?", (key,)
            )

    def _trim(self, box: _Outbox) -> None:
        """Drop the oldest rows beyond the bounds (caller holds the lock, inside a transaction)."""
        table, size_expr = box.table, f"length({box.value})"
        n, size = self._db.execute(
            f"SELECT count(*), coalesce(sum({size_expr}), 0) FROM {table}"
        ).fetchone()
        while n > self.max_items or (size > self.max_bytes and n > 1):
            row = self._db.execute(
                f"SELECT seq, {size_expr} FROM {table} ORDER BY seq LIMIT 1"
            ).fetchone()
            self._db.execute(f"DELETE FROM {table} WHERE seq = ?", (row[0],))
            n, size = n - 1, size - int(row[1])
            self.dropped += 1
