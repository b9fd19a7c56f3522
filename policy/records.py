"""Decision records: kept locally (bounded, queryable, 0600), exported as JSON or Parquet.

SQLite in the workspace state directory: one row per decision with the columns a query needs
(execution id, point, result, the test files it concerned) and the record as JSON. The oldest
rows go when there are more than ``max_records``.

A long-lived process (the daemon, the coordinator) writes in the background: ``add`` hands the
record to one writer thread (a bounded queue: a caller waits only when it is full) that stores
what has queued up in one transaction, so a decision's caller does not pay for SQLite. Every
read waits for what was added before it, so the process reads its own writes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import orjson

from maestro.errors import PolicyError
from maestro.nodeids import file_of
from maestro.policy.model import DecisionRecord

FILE_NAME = "policy-decisions.sqlite"
DEFAULT_MAX_RECORDS = 20_000
MAX_PENDING = 1024
"""Records a background log holds before ``add`` waits for the writer."""
WRITER_IDLE_S = 5.0
"""A writer with nothing to write for this long ends (the coordinator keeps a log per tenant);
the next record starts another."""

log = logging.getLogger(__name__)

_SCHEMA = """
create table if not exists decisions (
    seq integer primary key autoincrement,
    id text unique not null,
    time text not null,
    point text not null,
    execution_id text not null,
    result text not null,
    targets text not null,
    body blob not null
);
create index if not exists decisions_execution on decisions(execution_id);
"""


class DecisionLog:
    """The decisions of one workspace. Thread-safe. With ``background``, records are written
    by a writer thread (module docstring): :meth:`close` writes what is pending."""

    def __init__(
        self, path: Path, *, max_records: int = DEFAULT_MAX_RECORDS, background: bool = False
    ) -> None:
        self.path = path
        self.max_records = max_records
        self._lock = threading.Lock()
        self._pending: queue.Queue[DecisionRecord | None] | None = (
            queue.Queue(MAX_PENDING) if background else None
        )
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # created 0600 before SQLite opens it: records hold (redacted) inputs
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.executescript(_SCHEMA)
            self._db.execute("pragma journal_mode=wal")
            # a decision lost to a power cut is acceptable; an fsync per decision is not
            self._db.execute("pragma synchronous=normal")
        except sqlite3.DatabaseError as exc:
            raise PolicyError(f"cannot open the decision log: {exc}", where=str(path)) from None

    @classmethod
    def for_workspace(
        cls, root: Path, *, max_records: int = DEFAULT_MAX_RECORDS, background: bool = False
    ) -> DecisionLog:
        from maestro.paths import workspace_state_dir

        path = workspace_state_dir(root) / FILE_NAME
        return cls(path, max_records=max_records, background=background)

    def close(self) -> None:
        """Write what is pending, stop the writer, close the database."""
        if self._pending is not None:
            self._pending.put(None)  # the stop mark, behind every record added before
            self._start_writer()
            with self._writer_lock:
                writer = self._writer
            if writer is not None:
                writer.join()
        with self._lock:
            self._db.close()

    def add(self, record: DecisionRecord) -> None:
        if self._pending is None:
            self._store([record])
            return
        self._pending.put(record)  # waits only while MAX_PENDING records are queued
        self._start_writer()

    def flush(self) -> None:
        """Wait until every record added so far is stored (a no-op without a writer)."""
        if self._pending is not None:
            self._pending.join()

    def _start_writer(self) -> None:
        with self._writer_lock:
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_loop, name="policy-decision-log", daemon=True
                )
                self._writer.start()

    def _write_loop(self) -> None:
        pending = self._pending
        assert pending is not None
        while True:
            try:
                batch = [pending.get(timeout=WRITER_IDLE_S)]
            except queue.Empty:
                with self._writer_lock:  # add() puts first, then starts a writer if none
                    if pending.empty():
                        self._writer = None
                        return
                continue
            while True:  # what queued up meanwhile goes in the same transaction
                try:
                    batch.append(pending.get_nowait())
                except queue.Empty:
                    break
            records = [r for r in batch if r is not None]
            try:
                if records:
                    self._store(records)
            except sqlite3.Error:
                log.exception("%d policy decisions not stored in %s", len(records), self.path)
            finally:
                for _ in batch:
                    pending.task_done()
            if len(records) < len(batch):  # close() asked to stop
                with self._writer_lock:
                    self._writer = None
                return

    def _store(self, records: list[DecisionRecord]) -> None:
        rows = [
            (
                r.id, r.time, r.point, r.execution_id, r.result,
                orjson.dumps(sorted(set(r.targets))).decode(),
                r.model_dump_json(by_alias=True, exclude={"summary"}).encode(),
            )
            for r in records
        ]  # fmt: skip
        with self._lock:
            self._db.execute("begin")  # one transaction per batch
            try:
                self._db.executemany(
                    "insert or replace into decisions(id, time, point, execution_id, result,"
                    " targets, body) values (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._db.execute(
                    "delete from decisions where seq <= (select max(seq) from decisions) - ?",
                    (self.max_records,),
                )
            except BaseException:
                self._db.execute("rollback")
                raise
            self._db.execute("commit")

    def update(self, record: DecisionRecord) -> None:
        """Store a record again (a queued run's ``waited_ms`` is known when it starts)."""
        self.add(record)

    def query(
        self,
        *,
        execution_id: str | None = None,
        test: str | None = None,
        point: str | None = None,
        result: str | None = None,
        limit: int = 100,
    ) -> list[DecisionRecord]:
        """Newest first."""
        where: list[str] = []
        args: list[object] = []
        if execution_id:
            where.append("execution_id = ?")
            args.append(execution_id)
        if point:
            where.append("point = ?")
            args.append(point)
        if result:
            where.append("result = ?")
            args.append(result)
        if test:
            # a decision about the whole suite (no targets) concerns every test
            where.append("(targets = '[]' or instr(targets, ?) > 0)")
            args.append(orjson.dumps(file_of(test)).decode())
        sql = "select body from decisions"
        if where:
            sql += " where " + " and ".join(where)
        sql += " order by seq desc limit ?"
        args.append(max(0, limit))
        self.flush()
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [DecisionRecord.model_validate_json(row[0]) for row in rows]

    def get(self, record_id: str) -> DecisionRecord | None:
        self.flush()
        with self._lock:
            row = self._db.execute(
                "select body from decisions where id = ?", (record_id,)
            ).fetchone()
        return DecisionRecord.model_validate_json(row[0]) if row else None

    def after(self, seq: int, *, limit: int = 500) -> tuple[int, list[DecisionRecord]]:
        """Records stored after position ``seq`` (oldest first) and the last position: what a
        daemon has not yet sent to the coordinator."""
        self.flush()
        with self._lock:
            rows = self._db.execute(
                "select seq, body from decisions where seq > ? order by seq limit ?", (seq, limit)
            ).fetchall()
        last = rows[-1][0] if rows else seq
        return int(last), [DecisionRecord.model_validate_json(r[1]) for r in rows]

    def count(self) -> int:
        self.flush()
        with self._lock:
            (n,) = self._db.execute("select count(*) from decisions").fetchone()
        return int(n)

    def iter_all(self) -> Iterator[DecisionRecord]:
        self.flush()
        with self._lock:
            rows = self._db.execute("select body from decisions order by seq").fetchall()
        for row in rows:
            yield DecisionRecord.model_validate_json(row[0])

    def export(self, out: Path, fmt: Literal["json", "parquet"]) -> int:
        """Write every record to ``out``; returns how many."""
        records = list(self.iter_all())
        if fmt == "json":
            data = [r.model_dump(mode="json", by_alias=True) for r in records]
            out.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
            return len(records)
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "id": [r.id for r in records],
                "time": [r.time for r in records],
                "point": [r.point for r in records],
                "execution_id": [r.execution_id for r in records],
                "schema": [r.schema_ for r in records],
                "result": [r.result for r in records],
                "rule_ids": [[x.rule for x in r.rules] for r in records],
                "remediations": [[x.remediation for x in r.rules] for r in records],
                "retry_after_ms": pa.array([r.retry_after_ms for r in records], pa.int64()),
                "waited_ms": pa.array([r.waited_ms for r in records], pa.int64()),
                "targets": [r.targets for r in records],
                "input": [orjson.dumps(r.input).decode() for r in records],
                "rules": [
                    orjson.dumps([x.model_dump() for x in r.rules]).decode() for r in records
                ],
                "policy": [r.policy for r in records],
                "error": [r.error for r in records],
            }
        )
        with contextlib.suppress(FileNotFoundError):
            out.unlink()
        pq.write_table(table, out)
        return len(records)
