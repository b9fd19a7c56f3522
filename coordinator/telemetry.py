"""Team telemetry ingest: daemons send their runs' rows, redacted; the team model learns from them.

- ``POST /v1/tenants/{tenant}/telemetry`` (read-write or admin role of the tenant): a JSON
  object or array of rows, at most `MAX_BATCH_BYTES`. Every string in it, keys included, goes
  through `maestro.redaction` (known secrets of the server's environment plus the detectors)
  *before* anything is written: the daemon redacts before sending, this is the second line, so
  a daemon that forgot (or an old one) cannot put a credential into the team's data.
- ``GET /v1/tenants/{tenant}/telemetry`` (admin): the tenant's rows as JSON lines, for the CI job
  that trains the team model (`maestro model train` on them, then the model upload in
  team_model.py).

Rows are appended to ``<data_dir>/telemetry/<tenant id>/<UTC date>.jsonl`` by the replica that
received them (a tenant id is never reused, so a re-created tenant starts clean); the export
reads the replica's own files. Writes and redaction run in the coordinator's thread pool.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import BaseModel

from maestro.redaction import Redactor

from .bodies import ApiError, json_reply, small_body
from .openapi import AUTH_ERRORS, Operation, Response, err, operation

if TYPE_CHECKING:
    from .app import Coordinator
    from .records import TenantRecord

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = 1 << 20
NDJSON = {"application/x-ndjson": {"schema": {"type": "string"}}}
MAX_EXPORT_BYTES = 256 << 20


class TelemetryAccepted(BaseModel):
    tenant: str
    rows: int
    redacted: int
    """Rows in which at least one secret was replaced by its marker."""


class TelemetryStore:
    """Per-tenant JSON-lines files under one directory (blocking: call from the pool)."""

    def __init__(self, directory: Path, redactor: Redactor) -> None:
        self.dir = directory
        self.redactor = redactor

    def _tenant_dir(self, tenant: TenantRecord) -> Path:
        return self.dir / str(tenant.id)

    def ingest(self, tenant: TenantRecord, rows: list[Any]) -> tuple[int, int]:
        """Redact and append; returns (rows written, rows that held a secret)."""
        lines: list[bytes] = []
        changed = 0
        for row in rows:
            raw = json.dumps(row, sort_keys=True, separators=(",", ":")).encode()
            clean = self.redactor.redact_json(row).data
            if clean != raw:
                changed += 1
            lines.append(clean + b"\n")
        directory = self._tenant_dir(tenant)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = directory / f"{datetime.now(UTC).date().isoformat()}.jsonl"
        # One write of whole lines with O_APPEND: concurrent batches never interleave a line.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, b"".join(lines))
        finally:
            os.close(fd)
        return len(lines), changed

    def export(self, tenant: TenantRecord) -> bytes:
        directory = self._tenant_dir(tenant)
        if not directory.is_dir():
            return b""
        out = bytearray()
        for path in sorted(directory.glob("*.jsonl")):
            out += path.read_bytes()
            if len(out) > MAX_EXPORT_BYTES:
                break
        return bytes(out[:MAX_EXPORT_BYTES])


class TelemetryRoutes:
    def __init__(self, coordinator: Coordinator, store: TelemetryStore) -> None:
        self.c = coordinator
        self.store = store
        self.rows = _rows_counter(coordinator)

    @operation(
        post=Operation(
            "Ingest telemetry rows (read-write or admin); every string is redacted first",
            "ingest_telemetry",
            {
                "200": Response("Accepted.", TelemetryAccepted),
                "400": err("Not a JSON object or array."),
                **AUTH_ERRORS,
                "413": err("Batch over 1 MiB."),
            },
            body={"application/json": {"schema": {}}},
        ),
        get=Operation(
            "The tenant's telemetry rows as JSON lines (admin role)",
            "export_telemetry",
            {"200": Response("Rows, one JSON object a line.", content=NDJSON), **AUTH_ERRORS},
        ),
    )
    async def telemetry(self, request: web.Request) -> web.Response:
        if request.method not in ("GET", "POST"):
            raise ApiError(405, "method_not_allowed", "GET or POST", headers={"Allow": "GET, POST"})
        if request.method == "GET":
            principal = await self.c.tenant_principal(request, write=False, admin=True)
            body = await self.c.run(self.store.export, principal.tenant)
            return web.Response(body=body, content_type="application/x-ndjson")
        principal = await self.c.tenant_principal(request, write=True, admin=False)
        raw = await small_body(
            request, MAX_BATCH_BYTES, f"telemetry batches are at most {MAX_BATCH_BYTES} B"
        )
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise ApiError(400, "bad_request", "expected a JSON object or array") from None
        rows = parsed if isinstance(parsed, list) else [parsed]
        if not all(isinstance(r, dict) for r in rows):
            raise ApiError(400, "bad_request", "every row must be a JSON object")
        written, redacted = await self.c.run(self.store.ingest, principal.tenant, rows)
        self.rows.labels(principal.tenant.name).inc(written)
        if redacted:
            log.info(
                "tenant %s: %d telemetry rows held secrets, redacted before storage",
                principal.tenant.name,
                redacted,
            )
        return json_reply(
            TelemetryAccepted(tenant=principal.tenant.name, rows=written, redacted=redacted)
        )


def _rows_counter(coordinator: Coordinator) -> Any:
    from prometheus_client import Counter

    return Counter(
        "maestro_coordinator_telemetry_rows",
        "Telemetry rows ingested (after redaction).",
        ("tenant",),
        registry=coordinator.metrics.registry,
    )


def add_routes(app: web.Application, coordinator: Coordinator) -> TelemetryRoutes:
    redactor = Redactor.from_environ(os.environ)
    routes = TelemetryRoutes(
        coordinator, TelemetryStore(coordinator.settings.data_dir / "telemetry", redactor)
    )
    app.router.add_get("/v1/tenants/{tenant}/telemetry", routes.telemetry)
    app.router.add_post("/v1/tenants/{tenant}/telemetry", routes.telemetry)
    return routes
