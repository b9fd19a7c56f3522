"""Structured (one JSON object per line) access logs that never contain secrets.

What is logged is an explicit allowlist: no headers (Authorization, cookies), no query string (a
client might put a credential there), only the key *id* of the caller, never a key or token.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

log = logging.getLogger("maestro.coordinator.access")

_UA_MAX = 120


def access_record(
    *,
    method: str,
    path: str,
    route: str,
    status: int,
    seconds: float,
    bytes_in: int,
    bytes_out: int,
    remote: str | None,
    user_agent: str | None,
    tenant: str | None,
    key_id: str | None,
) -> dict[str, Any]:
    return {
        "ts": round(time.time(), 3),
        "method": method[:16],
        "path": path[:300],
        "route": route,
        "status": status,
        "ms": round(seconds * 1000, 3),
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "remote": remote,
        "ua": (user_agent or "")[:_UA_MAX] or None,
        "tenant": tenant,
        "key_id": key_id,
    }


def emit(record: dict[str, Any]) -> None:
    if log.isEnabledFor(logging.INFO):
        log.info(json.dumps(record, separators=(",", ":")))
