"""Telemetry: every run's change set and per-test outcomes, in SQLite in the workspace state dir.

Why SQLite and not an LMDB sub-database like the cache: telemetry is an append-mostly log that is
read by *time window* and joined (runs x results x changed files), and later patched (`used`
flips when a speculative result is served to an explicit request). SQLite gives that with
indexes, transactions and WAL (the daemon writes while `maestro model export` reads), from the
standard library, in one file that is easy to inspect or delete. The cache's LMDB environment is
shared by every workspace of the user and sized for blobs; telemetry is per workspace.

Nothing here knows about processes: the daemon calls `record_run` after a run and `mark_used`
when a speculative result is served.

Every string a row holds (node ids, changed paths and symbols) goes through the redaction module
before it is written, as results do before they enter the cache: a parametrized test whose id
holds a token leaves a marker here, not the token. Redaction is deterministic, so `mark_used`
finds rows by the node ids callers hold.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO

from maestro.nodeids import file_of

if TYPE_CHECKING:
    from maestro.redaction import Redactor

SCHEMA_VERSION = 1
DEFAULT_WINDOW_DAYS = 14.0
DAY = 86400.0

Outcome = Literal["passed", "failed", "skipped"]
RunKind = Literal["explicit", "speculative"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    files TEXT NOT NULL,      -- JSON list of changed workspace-relative paths
    symbols TEXT NOT NULL,    -- JSON list of changed functions/classes (qualified names)
    distances TEXT NOT NULL,  -- JSON {test file: graph distance from the nearest changed file}
    closure_hits TEXT NOT NULL, -- JSON {test file: changed files in its closure}
    executed TEXT NOT NULL DEFAULT '{}' -- JSON {test node: 1/0 executed a changed function}
);
CREATE INDEX IF NOT EXISTS runs_ts ON runs (ts);
CREATE TABLE IF NOT EXISTS results (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    test TEXT NOT NULL,       -- pytest node id
    outcome TEXT NOT NULL,
    duration REAL NOT NULL,
    used INTEGER,             -- speculative runs: 1 once served to an explicit request, else 0
    PRIMARY KEY (run_id, test)
);
"""


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """What changed before a run, and where each impacted test file sits relative to it."""

    files: tuple[str, ...]
    symbols: tuple[str, ...] = ()
    distances: Mapping[str, int] = field(default_factory=dict)  # test file -> hops
    closure_hits: Mapping[str, int] = field(default_factory=dict)  # test file -> changed files
    # test node -> 1 if its last execution record holds a changed function, 0 if its record
    # does not; absent: no record
    executed: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TestResult:
    __test__ = False  # not a pytest test class

    test: str  # node id, "path/to/test_x.py::Class::test_y"
    outcome: Outcome
    duration: float

    @property
    def target(self) -> str:
        return file_of(self.test)


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    ts: float
    kind: RunKind
    change: ChangeSet
    results: tuple[TestResult, ...]
    used: Mapping[str, bool | None]


class Telemetry:
    """The telemetry store of one workspace (`telemetry.sqlite3` in its state dir)."""

    def __init__(self, path: Path, *, redactor: Redactor | None = None) -> None:
        from maestro.redaction import Redactor

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # the engine's redactor for stored results is built the same way (secret-named
        # variables of the environment, detectors on)
        self.redactor = redactor or Redactor.from_environ(os.environ)
        self._db = sqlite3.connect(str(path), timeout=10.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
        if "executed" not in columns:  # stores written before the executed-function feature
            self._db.execute("ALTER TABLE runs ADD COLUMN executed TEXT NOT NULL DEFAULT '{}'")
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))

    @classmethod
    def for_workspace(cls, root: Path, *, redactor: Redactor | None = None) -> Telemetry:
        from maestro.paths import workspace_state_dir

        return cls(workspace_state_dir(root) / "telemetry.sqlite3", redactor=redactor)

    def _clean(self, texts: Sequence[str]) -> list[str]:
        """``texts`` redacted, in one pass over their join when that keeps them apart."""
        if not texts:
            return []
        joined = str(self.redactor.redact("\n".join(texts))).split("\n")
        if len(joined) == len(texts):
            return joined
        return [str(self.redactor.redact(t)) for t in texts]  # a value spanned lines

    def _clean_keys(self, mapping: Mapping[str, int]) -> dict[str, int]:
        keys = list(mapping)
        return dict(zip(self._clean(keys), (mapping[k] for k in keys), strict=True))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------------

    def record_run(
        self,
        change: ChangeSet,
        results: Iterable[TestResult],
        *,
        kind: RunKind = "explicit",
        ts: float | None = None,
    ) -> int:
        """Store one run; speculative results start as unused. Returns the run id."""
        when = time.time() if ts is None else ts
        used = 0 if kind == "speculative" else None
        rows = list(results)
        tests = self._clean([r.test for r in rows])
        with self._tx():
            cur = self._db.execute(
                "INSERT INTO runs (ts, kind, files, symbols, distances, closure_hits, executed) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    when,
                    kind,
                    json.dumps(sorted(self._clean(change.files))),
                    json.dumps(sorted(self._clean(change.symbols))),
                    json.dumps(self._clean_keys(change.distances), sort_keys=True),
                    json.dumps(self._clean_keys(change.closure_hits), sort_keys=True),
                    json.dumps(self._clean_keys(change.executed), sort_keys=True),
                ),
            )
            run_id = cur.lastrowid
            assert run_id is not None
            self._db.executemany(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?)",
                [
                    (run_id, test, r.outcome, float(r.duration), used)
                    for test, r in zip(tests, rows, strict=True)
                ],
            )
        return run_id

    def mark_used(self, run_id: int, tests: Iterable[str] | None = None) -> int:
        """A speculative result was served to an explicit request; returns rows updated."""
        with self._tx():
            if tests is None:
                cur = self._db.execute(
                    "UPDATE results SET used = 1 WHERE run_id = ? AND used IS NOT NULL", (run_id,)
                )
                return cur.rowcount
            n = 0
            for test in self._clean(list(tests)):
                n += self._db.execute(
                    "UPDATE results SET used = 1 WHERE run_id = ? AND test = ? "
                    "AND used IS NOT NULL",
                    (run_id, test),
                ).rowcount
            return n

    def prune(self, older_than_days: float, *, now: float | None = None) -> int:
        """Drop runs older than the window; returns how many."""
        cutoff = (time.time() if now is None else now) - older_than_days * DAY
        with self._tx():
            return self._db.execute("DELETE FROM runs WHERE ts < ?", (cutoff,)).rowcount

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    # -- reading -----------------------------------------------------------------------------------

    def runs(
        self,
        *,
        days: float | None = DEFAULT_WINDOW_DAYS,
        now: float | None = None,
        kind: RunKind | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> Iterator[Run]:
        """Runs in the sliding window (oldest first); `days=None` means everything. With
        `after_id`: only runs recorded after that one, in the order they were recorded (an
        exporter's watermark), at most `limit` of them."""
        cutoff = -1.0 if days is None else (time.time() if now is None else now) - days * DAY
        sql = (
            "SELECT id, ts, kind, files, symbols, distances, closure_hits, executed FROM runs "
            "WHERE ts >= ?"
        )
        args: list[object] = [cutoff]
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        if after_id is not None:
            sql += " AND id > ?"
            args.append(after_id)
        sql += " ORDER BY id" if after_id is not None else " ORDER BY ts, id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        rows = self._db.execute(sql, args).fetchall()
        for rid, ts, rkind, files, symbols, distances, hits, executed in rows:
            res = self._db.execute(
                "SELECT test, outcome, duration, used FROM results WHERE run_id = ? ORDER BY test",
                (rid,),
            ).fetchall()
            yield Run(
                id=rid,
                ts=ts,
                kind=rkind,
                change=ChangeSet(
                    tuple(json.loads(files)),
                    tuple(json.loads(symbols)),
                    json.loads(distances),
                    json.loads(hits),
                    json.loads(executed),
                ),
                results=tuple(TestResult(t, o, d) for t, o, d, _ in res),
                used={t: (None if u is None else bool(u)) for t, _, _, u in res},
            )

    def counts(self) -> dict[str, int]:
        one = self._db.execute
        return {
            "runs": one("SELECT COUNT(*) FROM runs").fetchone()[0],
            "speculative_runs": one(
                "SELECT COUNT(*) FROM runs WHERE kind='speculative'"
            ).fetchone()[0],
            "results": one("SELECT COUNT(*) FROM results").fetchone()[0],
            "failures": one("SELECT COUNT(*) FROM results WHERE outcome='failed'").fetchone()[0],
        }

    def speculation_usage(self, *, days: float = DEFAULT_WINDOW_DAYS) -> tuple[int, int]:
        """(used, total) speculative results in the window."""
        cutoff = time.time() - days * DAY
        row = self._db.execute(
            "SELECT COALESCE(SUM(r.used), 0), COUNT(*) FROM results r "
            "JOIN runs u ON u.id = r.run_id WHERE u.kind = 'speculative' AND u.ts >= ?",
            (cutoff,),
        ).fetchone()
        return int(row[0]), int(row[1])

    # -- export ------------------------------------------------------------------------------------

    def export_raw_csv(self, out: TextIO, *, days: float | None = DEFAULT_WINDOW_DAYS) -> int:
        """One row per (run, test): the raw log, no features. Returns rows written."""
        writer = csv.writer(out)
        writer.writerow(RAW_COLUMNS)
        n = 0
        for run in self.runs(days=days):
            for r in run.results:
                used = run.used.get(r.test)
                writer.writerow(
                    [
                        run.id,
                        f"{run.ts:.3f}",
                        run.kind,
                        ";".join(run.change.files),
                        ";".join(run.change.symbols),
                        r.test,
                        r.target,
                        run.change.distances.get(r.target, ""),
                        r.outcome,
                        f"{r.duration:.6f}",
                        "" if used is None else int(used),
                    ]
                )
                n += 1
        return n


RAW_COLUMNS: Sequence[str] = (
    "run_id", "ts", "kind", "changed_files", "changed_symbols", "test", "target", "distance",
    "outcome", "duration", "used",
)  # fmt: skip


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
