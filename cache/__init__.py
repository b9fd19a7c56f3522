"""Content-addressed storage and action cache on LMDB.

The names below load on first use (PEP 562): a client that needs one light submodule (the wire
contract imports maestro.cache.stats) must not pay for LMDB and every other submodule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from maestro.lazy import lazy_names

if TYPE_CHECKING:
    from .action import ActionResult, Provenance, TestOutcome, Timing
    from .digest import EMPTY_DIGEST, Digest, digest_bytes
    from .eviction import GcReport
    from .snapshot import Manifest, RestoreReport
    from .stats import CacheStats
    from .store import Cache
    from .verify import VerifyReport

_HOME = {
    "ActionResult": "action",
    "Provenance": "action",
    "TestOutcome": "action",
    "Timing": "action",
    "EMPTY_DIGEST": "digest",
    "Digest": "digest",
    "digest_bytes": "digest",
    "GcReport": "eviction",
    "Manifest": "snapshot",
    "RestoreReport": "snapshot",
    "CacheStats": "stats",
    "Cache": "store",
    "VerifyReport": "verify",
}


__getattr__ = lazy_names(__name__, _HOME, globals())

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
