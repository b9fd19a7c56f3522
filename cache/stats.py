"""User-facing cache statistics (`maestro cache stats`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters persisted in the cache, shared by every process that uses it.

    `bytes` counts stored values (blobs + action results), the quantity the size cap bounds;
    `file_bytes` is the LMDB data file, which also holds metadata, page slack and free pages.
    """

    hits: int
    misses: int
    blobs: int
    actions: int
    bytes: int
    blob_bytes: int
    action_bytes: int
    cpu_seconds_saved: float
    wall_seconds_saved: float
    evictions: int
    quarantined: int
    max_bytes: int | None
    file_bytes: int

    @property
    def hit_rate(self) -> float | None:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["hit_rate"] = self.hit_rate
        return data
