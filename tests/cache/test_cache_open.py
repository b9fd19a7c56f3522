"""Opening the cache: what it costs before the first result can be looked up."""

from __future__ import annotations

from pathlib import Path

import lmdb

from maestro.cache import Cache
from maestro.cache import layout as L


def _last_txnid(path: Path) -> int:
    env = lmdb.open(str(path), readonly=True, lock=False, max_dbs=len(L.DB_NAMES) + 1)
    try:
        return int(env.info()["last_txnid"])
    finally:
        env.close()


def test_a_new_cache_creates_its_databases_in_one_commit(tmp_path: Path) -> None:
    path = tmp_path / "lmdb"
    cache = Cache.open(path)
    cache.close()
    assert _last_txnid(path) == 1  # one commit (one fsync), not one per database
    cache = Cache.open(path)  # an existing cache: nothing to commit
    cache.close()
    assert _last_txnid(path) == 1
