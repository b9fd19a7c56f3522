"""Validation of action-cache values for tenants not in raw mode.

A validated AC value must be a Maestro `ActionResult` (msgpack). We keep its referenced CAS
digests with the entry so a hit can be refused when any of them is gone (the bazel-remote users'
complaint: "AC entries whose outputs are gone"). Entries from a newer Maestro schema are accepted
(the server must not be older than its clients to be useful); their references are read
leniently from the known fields.
"""

from __future__ import annotations

from typing import Any

import msgpack

from maestro.cache.action import NewerSchemaError, decode_action
from maestro.cache.digest import Digest
from maestro.errors import CacheError

REF_FIELDS = ("stdout", "stderr", "junit")


class InvalidActionResultError(ValueError):
    """The AC body is not a valid Maestro ActionResult (HTTP 400)."""


def _lenient_refs(data: bytes) -> list[Digest]:
    raw: Any = msgpack.unpackb(data, raw=False, strict_map_key=True)
    refs = []
    for name in REF_FIELDS:
        value = raw.get(name) if isinstance(raw, dict) else None
        if isinstance(value, dict):
            try:
                refs.append(Digest(str(value["hash"]), int(value["size"])))
            except (KeyError, TypeError, ValueError, CacheError) as exc:
                raise InvalidActionResultError(f"bad {name} digest: {exc}") from exc
    return refs


def referenced_blobs(data: bytes) -> tuple[tuple[bytes, int], ...]:
    """(sha256, size) of every CAS blob the ActionResult in `data` needs; raises if invalid."""
    try:
        refs = decode_action(data).referenced_digests()
    except NewerSchemaError:
        refs = _lenient_refs(data)
    except CacheError as exc:
        raise InvalidActionResultError(exc.message) from exc
    return tuple(sorted({(d.key, d.size) for d in refs}))
