"""Content-addressed storage and action cache on LMDB."""

from .action import ActionResult, Provenance, TestOutcome, Timing
from .digest import EMPTY_DIGEST, Digest, digest_bytes
from .eviction import GcReport
from .snapshot import Manifest, RestoreReport
from .stats import CacheStats
from .store import Cache
from .verify import VerifyReport

__all__ = [
    "EMPTY_DIGEST",
    "ActionResult",
    "Cache",
    "CacheStats",
    "Digest",
    "GcReport",
    "Manifest",
    "Provenance",
    "RestoreReport",
    "TestOutcome",
    "Timing",
    "VerifyReport",
    "digest_bytes",
]
