"""The daemon sends its runs' telemetry to the team coordinator by itself.

Every `every_s` (`[tool.maestro.remote] telemetry_upload_every_s`, default 60 s; 0: never) the
workspace's telemetry store is read from the last run sent on (a watermark in the state dir, so
a restarted daemon neither resends nor skips), and the new runs' rows, one per (run, test), are
queued on the sync engine as redacted JSON batches; the engine sends them to
`POST /v1/tenants/{tenant}/telemetry` with its own retries, circuit breaker and backoff, and its
egress gate scans them once more.

Bounded: at most `max_rows` rows per batch (a run with more tests sends its first `max_rows`)
and `max_batches` batches per round; no round adds
batches while `max_queued` are still waiting (a coordinator that is down or refusing does not
grow the queue), while the coordinator asks for backoff (429/503 with Retry-After), or while the
key's role may not write (a read key: nothing is queued, the watermark stays).

Rows hold what the team model learns from: changed files and symbols, the test, its target, its
graph distance, outcome, duration and (speculative runs) whether the result was used. Strings
were redacted when the store wrote them and are redacted again when the batch is made.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maestro.tasks import run_every
from maestro.wire import TelemetryQueued

if TYPE_CHECKING:
    from maestro.cache.remote import RemoteSync
    from maestro.model.telemetry import Run

log = logging.getLogger(__name__)

WATERMARK_FILE = "telemetry-upload.json"
EVERY_S = 60.0
MAX_ROWS = 500
MAX_BATCHES = 4
MAX_QUEUED = 16
WRITE_ROLES = frozenset({"read-write", "admin"})


def rows_of(run: Run) -> list[dict[str, Any]]:
    """One row per (run, test), the columns of `maestro model export`."""
    return [
        {
            "run_id": run.id,
            "ts": round(run.ts, 3),
            "kind": run.kind,
            "changed_files": list(run.change.files),
            "changed_symbols": list(run.change.symbols),
            "test": result.test,
            "target": result.target,
            "distance": run.change.distances.get(result.target),
            "outcome": result.outcome,
            "duration": round(result.duration, 4),
            "used": run.used.get(result.test),
        }
        for result in run.results
    ]


class TelemetryUploader:
    """Queues new telemetry rows on a sync engine every `every_s` (see the module docstring)."""

    def __init__(
        self,
        engine: RemoteSync,
        telemetry_path: Path,
        state_dir: Path,
        *,
        every_s: float = EVERY_S,
        max_rows: int = MAX_ROWS,
        max_batches: int = MAX_BATCHES,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self.engine = engine
        self.telemetry_path = telemetry_path
        self.watermark_path = state_dir / WATERMARK_FILE
        self.every_s = every_s
        self.max_rows = max_rows
        self.max_batches = max_batches
        self.max_queued = max_queued
        self.counters = TelemetryQueued()

    # -- watermark ----------------------------------------------------------------------------

    def watermark(self) -> int:
        try:
            value = json.loads(self.watermark_path.read_text()).get("last_run_id", 0)
        except (OSError, ValueError, AttributeError):
            return 0
        return value if isinstance(value, int) and value >= 0 else 0

    def _save_watermark(self, run_id: int) -> None:
        tmp = self.watermark_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"last_run_id": run_id}))
        os.replace(tmp, self.watermark_path)

    # -- one round ----------------------------------------------------------------------------

    def _blocked(self) -> str | None:
        engine = self.engine
        if not engine.upload_configured:
            return "uploads are off (upload = false)"
        if engine.role not in WRITE_ROLES:
            return f"role {engine.role or 'not known yet'} may not write"
        if engine.backoff_until() is not None:
            return "the coordinator asked to back off"
        if engine.queue.counts().telemetry >= self.max_queued:
            return f"{self.max_queued} batches still waiting to be sent"
        return None

    def round(self) -> int:
        """Queue what is new (blocking: SQLite reads); returns the batches queued."""
        self.counters.rounds += 1
        self.counters.last_round_at = time.time()
        blocked = self._blocked()
        self.counters.skipped = blocked
        if blocked is not None or not self.telemetry_path.exists():
            return 0
        from maestro.model.telemetry import Telemetry

        mark = self.watermark()
        queued = 0
        try:
            store = Telemetry(self.telemetry_path)
        except sqlite3.Error as exc:
            log.warning("telemetry upload: the store cannot be read now: %s", exc)
            return 0
        try:
            while (
                queued < self.max_batches and self.engine.queue.counts().telemetry < self.max_queued
            ):
                rows: list[dict[str, Any]] = []
                last = mark
                # whole runs per batch, but never more than `max_rows` rows in one
                for run in store.runs(days=None, after_id=mark, limit=self.max_rows):
                    run_rows = rows_of(run)
                    if rows and len(rows) + len(run_rows) > self.max_rows:
                        break
                    rows.extend(run_rows[: self.max_rows])
                    last = run.id
                if last == mark:
                    break
                if rows:
                    self.engine.upload_telemetry(self.engine.redactor.redact_json(rows))
                    queued += 1
                    self.counters.batches_queued += 1
                    self.counters.rows_queued += len(rows)
                mark = last
                self._save_watermark(mark)
        except sqlite3.Error as exc:  # the daemon's writer holds it: next round
            log.warning("telemetry upload: reading the store failed: %s", exc)
        finally:
            store.close()
        if queued:
            log.info(
                "telemetry: %d batches queued for the coordinator (up to run %d)", queued, mark
            )
        return queued

    async def run_forever(self) -> None:
        """Rounds every `every_s` until cancelled; the first soon after the start."""
        await run_every(self.every_s, self.round, "telemetry upload round")
