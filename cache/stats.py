"""Cache statistics: one model from the LMDB counters to `maestro cache stats`, the daemon's
`cache_stats` answer and the editor's `maestro/cacheStats`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, computed_field


class CacheStats(BaseModel):
    """Counters persisted in the cache, shared by every process that uses it.

    `bytes` counts stored values (blobs + action results), the quantity the size cap bounds;
    `file_bytes` is the LMDB data file, which also holds metadata, page slack and free pages.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    path: str = Field(description="the cache directory")
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

    @computed_field  # type: ignore[prop-decorator]
    @property
    def hit_rate(self) -> float | None:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None
