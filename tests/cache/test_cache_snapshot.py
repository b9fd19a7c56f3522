from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cache_helpers import action_key, flip_failed_to_passed, make_result, raw_get, raw_put

from maestro.cache import Cache, digest_bytes
from maestro.cache.files import sha256_file
from maestro.cache.snapshot import MANIFEST_FILE
from maestro.errors import CacheError, IntegrityError


def populate(c: Cache) -> list[bytes]:
    blobs = [f"blob {n}".encode() * (n + 1) for n in range(20)]
    digests = c.put_blobs(blobs)
    for n in range(5):
        c.put_action(action_key(n), make_result(stdout=digests[n], stderr=digests[n + 5]))
    return blobs


def test_snapshot_restore_roundtrip(cache_root: Path, tmp_path: Path) -> None:
    with Cache.open() as c:
        blobs = populate(c)
        stats_before = c.stats()
        manifest = c.snapshot(tmp_path / "snap")
    assert (manifest.blob_count, manifest.action_count) == (20, 5)
    assert manifest.total_bytes == stats_before.bytes
    on_disk = json.loads((tmp_path / "snap" / MANIFEST_FILE).read_text())
    assert on_disk["data_sha256"] == sha256_file(tmp_path / "snap" / "data.mdb")

    target = tmp_path / "restored"
    report = Cache.restore(tmp_path / "snap", target)
    assert report.replaced is None
    with Cache.open(target) as r:
        assert all(r.get_blob(h) is not None for h in manifest.blobs)
        for data in blobs:
            assert r.get_blob(digest_bytes(data)) == data
        for n in range(5):
            assert r.get_action(action_key(n)) is not None
        assert r.verify().clean
        assert r.stats().bytes == stats_before.bytes


def test_snapshot_refuses_a_non_empty_destination(cache: Cache, tmp_path: Path) -> None:
    dest = tmp_path / "full"
    dest.mkdir()
    (dest / "something").write_text("x")
    with pytest.raises(CacheError, match="not empty"):
        cache.snapshot(dest)


def test_snapshot_refuses_to_preserve_corruption(cache_root: Path, tmp_path: Path) -> None:
    with Cache.open() as c:
        d = c.put_blob(b"soon bad")
        path = c.path
    raw_put(path, b"cas", d.key, b"now bad!")
    with Cache.open() as c, pytest.raises(IntegrityError, match="verify"):
        c.snapshot(tmp_path / "snap")
    assert not (tmp_path / "snap" / "data.mdb").exists()


def test_restore_refuses_a_damaged_data_file(cache_root: Path, tmp_path: Path) -> None:
    with Cache.open() as c:
        populate(c)
        c.snapshot(tmp_path / "snap")
    data = tmp_path / "snap" / "data.mdb"
    raw = bytearray(data.read_bytes())
    at = raw.find(b"blob 7")
    raw[at] ^= 0x01
    data.write_bytes(bytes(raw))
    target = tmp_path / "restored"
    with pytest.raises(IntegrityError, match="sha256"):
        Cache.restore(tmp_path / "snap", target)
    assert not target.exists()


def test_restore_rehashes_blobs_even_if_the_manifest_was_doctored(
    cache_root: Path, tmp_path: Path
) -> None:
    with Cache.open() as c:
        populate(c)
        c.snapshot(tmp_path / "snap")
    snap = tmp_path / "snap"
    manifest = json.loads((snap / MANIFEST_FILE).read_text())
    victim = next(iter(manifest["blobs"]))
    size = manifest["blobs"][victim]
    raw_put(snap, b"cas", bytes.fromhex(victim), b"X" * size)  # same size, wrong content
    (snap / "lock.mdb").unlink(missing_ok=True)
    manifest["data_sha256"] = sha256_file(snap / "data.mdb")
    manifest["data_bytes"] = (snap / "data.mdb").stat().st_size
    (snap / MANIFEST_FILE).write_text(json.dumps(manifest))
    target = tmp_path / "restored"
    with pytest.raises(IntegrityError, match=f"blob {victim} does not hash"):
        Cache.restore(snap, target)
    assert not target.exists()
    assert not list(tmp_path.glob(".restored.restore-*"))  # the staged copy is cleaned up


def test_snapshot_refuses_to_preserve_an_edited_action_result(
    cache_root: Path, tmp_path: Path
) -> None:
    with Cache.open() as c:
        c.put_action(action_key(1), make_result(exit_code=1))
        path = c.path
    flip_failed_to_passed(path, action_key(1))
    with Cache.open() as c, pytest.raises(IntegrityError, match="verify"):
        c.snapshot(tmp_path / "snap")
    assert not (tmp_path / "snap" / "data.mdb").exists()
    with Cache.open() as c:  # verify quarantines it; then the snapshot goes through
        assert len(c.verify().corrupt) == 1
        assert c.snapshot(tmp_path / "snap").action_count == 0


def test_restore_rechecks_action_digests_even_if_the_manifest_was_doctored(
    cache_root: Path, tmp_path: Path
) -> None:
    with Cache.open() as c:
        c.put_action(action_key(1), make_result(exit_code=1))
        c.snapshot(tmp_path / "snap")
    snap = tmp_path / "snap"
    flip_failed_to_passed(snap, action_key(1))
    edited = raw_get(snap, b"ac", bytes.fromhex(action_key(1)))
    assert edited is not None
    (snap / "lock.mdb").unlink(missing_ok=True)
    manifest = json.loads((snap / MANIFEST_FILE).read_text())
    manifest["actions"][action_key(1)] = hashlib.sha256(edited).hexdigest()
    manifest["data_sha256"] = sha256_file(snap / "data.mdb")
    manifest["data_bytes"] = (snap / "data.mdb").stat().st_size
    (snap / MANIFEST_FILE).write_text(json.dumps(manifest))
    target = tmp_path / "restored"
    with pytest.raises(IntegrityError, match=f"action {action_key(1)}"):
        Cache.restore(snap, target)
    assert not target.exists()


def test_restore_over_an_existing_cache_needs_force(cache_root: Path, tmp_path: Path) -> None:
    with Cache.open() as c:
        populate(c)
        c.snapshot(tmp_path / "snap")
        c.put_blob(b"only in the live cache")
    with pytest.raises(CacheError, match="--force"):
        Cache.restore(tmp_path / "snap")
    with Cache.open() as c, pytest.raises(CacheError, match="open in this process"):
        Cache.restore(tmp_path / "snap", force=True)
    report = Cache.restore(tmp_path / "snap", force=True)
    assert report.replaced is not None and (report.replaced / "data.mdb").exists()
    with Cache.open() as c:
        assert c.stats().blobs == 20
        assert not c.has_blob(digest_bytes(b"only in the live cache"))


def test_restore_from_something_that_is_not_a_snapshot(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="not a cache snapshot"):
        Cache.restore(tmp_path, tmp_path / "target")
