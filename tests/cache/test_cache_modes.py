"""The cache holds captured test output: its directory is 0700 and its files 0600, for new caches,
caches left with looser modes, snapshots, restores and the sync queue."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest
from cache_helpers import action_key, make_result

from maestro.cache import Cache
from maestro.cache.sync_queue import SyncQueue
from maestro.errors import CacheError
from maestro.redaction import Redactor


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """A typical umask (022), so the modes checked are the cache's doing, not the test runner's."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def test_a_new_cache_directory_is_private(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "lmdb"
    with Cache.open(path) as c:
        c.put_action(action_key(1), make_result(stdout=c.put_blob(b"captured output")))
    assert mode(path) == "0o700"
    assert mode(path / "data.mdb") == "0o600"
    assert mode(path / "lock.mdb") == "0o600"


def test_an_existing_loose_cache_is_tightened_on_open_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "lmdb"
    path.mkdir()
    env = lmdb.open(str(path), max_dbs=16, map_size=1 << 20)  # what an older Maestro left
    env.close()
    path.chmod(0o755)
    (path / "data.mdb").chmod(0o644)
    (path / "lock.mdb").chmod(0o644)
    caplog.set_level(logging.INFO, logger="maestro.cache")
    with Cache.open(path) as c:
        c.put_blob(b"still usable")
    assert mode(path) == "0o700"
    assert mode(path / "data.mdb") == "0o600"
    assert mode(path / "lock.mdb") == "0o600"
    tightened = [r for r in caplog.records if "private" in r.getMessage()]
    assert len(tightened) == 1, [r.getMessage() for r in caplog.records]
    assert str(path) in tightened[0].getMessage()
    caplog.clear()
    with Cache.open(path):
        pass
    assert not [r for r in caplog.records if "private" in r.getMessage()]


def test_snapshot_and_restore_write_private_files(tmp_path: Path) -> None:
    with Cache.open(tmp_path / "lmdb") as c:
        c.put_action(action_key(1), make_result(stdout=c.put_blob(b"captured output")))
        c.snapshot(tmp_path / "snap")
    snap = tmp_path / "snap"
    assert mode(snap) == "0o700"
    assert mode(snap / "data.mdb") == "0o600"
    assert mode(snap / "manifest.json") == "0o600"
    target = tmp_path / "restored"
    Cache.restore(snap, target)
    assert mode(target) == "0o700"
    assert mode(target / "data.mdb") == "0o600"
    with Cache.open(target) as r:
        assert r.get_action(action_key(1)) is not None
    assert mode(target / "lock.mdb") == "0o600"


def test_restore_makes_the_replaced_cache_private_too(tmp_path: Path) -> None:
    with Cache.open(tmp_path / "lmdb") as c:
        c.put_blob(b"captured output")
        c.snapshot(tmp_path / "snap")
    old = tmp_path / "old"
    old.mkdir(mode=0o755)
    (old / "data.mdb").write_bytes(b"an older cache")
    (old / "data.mdb").chmod(0o644)
    report = Cache.restore(tmp_path / "snap", old, force=True)
    assert report.replaced is not None
    assert mode(report.replaced) == "0o700"
    assert mode(report.replaced / "data.mdb") == "0o600"


def test_sync_queue_files_are_private(tmp_path: Path) -> None:
    q = SyncQueue(tmp_path / "sync-queue.sqlite")
    q.push_upload(action_key(1), Redactor(detectors=False).redact_blob(make_result().encode()))
    try:
        files = sorted(tmp_path.glob("sync-queue.sqlite*"))
        assert files
        assert {p.name: mode(p) for p in files} == {p.name: "0o600" for p in files}
    finally:
        q.close()


def test_a_cache_path_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lmdb"
    path.write_text("not a cache")
    with pytest.raises(CacheError, match="not a directory owned by"):
        Cache.open(path)
