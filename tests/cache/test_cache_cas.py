from __future__ import annotations

from pathlib import Path

import pytest
from cache_helpers import raw_put

from maestro.cache import EMPTY_DIGEST, Cache, digest_bytes
from maestro.errors import IntegrityError


def test_put_then_get_roundtrips_and_survives_reopen(cache: Cache, cache_root: Path) -> None:
    d = cache.put_blob(b"payload")
    assert d == digest_bytes(b"payload")
    assert cache.get_blob(d) == b"payload"
    assert cache.get_blob(d.hash) == b"payload"
    cache.close()
    with Cache.open() as again:
        assert again.get_blob(d) == b"payload"
        assert again.path == (cache_root / "lmdb").resolve()


def test_expected_digest_mismatch_raises_and_stores_nothing(cache: Cache) -> None:
    wrong = digest_bytes(b"something else")
    with pytest.raises(IntegrityError):
        cache.put_blob(b"payload", expected=wrong)
    assert not cache.has_blob(digest_bytes(b"payload"))
    assert cache.stats().blobs == 0
    assert cache.put_blob(b"payload", expected=digest_bytes(b"payload")).size == 7


def test_empty_blob_always_exists(cache: Cache) -> None:
    assert cache.has_blob(EMPTY_DIGEST)
    assert cache.get_blob(EMPTY_DIGEST) == b""
    assert cache.put_blob(b"") == EMPTY_DIGEST
    assert cache.stats().blobs == 0


def test_put_blobs_and_find_missing(cache: Cache) -> None:
    digests = cache.put_blobs([b"a", b"b", b"a"])
    assert digests[0] == digests[2]
    absent = digest_bytes(b"never stored")
    assert cache.has_blobs([*digests, absent, EMPTY_DIGEST]) == {absent}
    assert cache.get_blobs([digests[1], absent]) == [b"b", None]
    assert cache.stats().blobs == 2
    assert cache.stats().blob_bytes == 2


def test_corrupt_blob_is_a_miss_is_quarantined_and_can_be_re_put(cache_root: Path) -> None:
    with Cache.open() as c:
        good = c.put_blob(b"original bytes")
        path = c.path
    raw_put(path, b"cas", good.key, b"0riginal bytes")  # same length, one byte flipped

    with Cache.open() as c:
        assert c.get_blob(good) is None
        assert not c.has_blob(good)
        s = c.stats()
        assert s.quarantined == 1
        assert s.blobs == 0 and s.blob_bytes == 0
        assert c.put_blob(b"original bytes") == good
        assert c.get_blob(good) == b"original bytes"


def test_verify_reports_and_quarantines_corruption(cache_root: Path) -> None:
    with Cache.open() as c:
        good = c.put_blob(b"fine")
        bad = c.put_blob(b"will rot")
        path = c.path
    raw_put(path, b"cas", bad.key, b"has rotted")

    with Cache.open() as c:
        report = c.verify()
        assert report.blobs_checked == 2
        assert report.ok == 1
        assert [(p.kind, p.key) for p in report.corrupt] == [("blob", bad.hash)]
        assert not report.clean
        again = c.verify()
        assert again.clean and again.blobs_checked == 1
        assert c.get_blob(good) == b"fine"
        assert c.stats().quarantined == 1
        assert c.stats().blob_bytes == len(b"fine")  # byte counter follows the quarantine


def test_verify_repairs_drifted_counters(cache_root: Path) -> None:
    with Cache.open() as c:
        c.put_blob(b"x" * 100)
        path = c.path
    raw_put(path, b"stats", b"blob_bytes", (12345).to_bytes(8, "little"))
    with Cache.open() as c:
        assert c.stats().blob_bytes == 12345
        report = c.verify()
        assert report.clean
        assert any("blob_bytes" in r for r in report.repairs)
        assert c.stats().blob_bytes == 100


def test_same_path_opened_twice_shares_one_environment(cache: Cache) -> None:
    other = Cache.open(cache.path)
    assert other._live is cache._live
    d = other.put_blob(b"shared")
    other.close()
    assert cache.get_blob(d) == b"shared"  # closing one handle leaves the other usable


def test_closed_cache_raises_a_clear_error(cache_root: Path) -> None:
    c = Cache.open()
    c.close()
    c.close()  # idempotent
    with pytest.raises(Exception, match="closed"):
        c.put_blob(b"x")


def test_re_put_repairs_an_undetected_corrupt_copy(cache_root: Path) -> None:
    with Cache.open() as c:
        d = c.put_blob(b"precious")
        path = c.path
    raw_put(path, b"cas", d.key, b"precioUs")
    with Cache.open() as c:
        c.put_blob(b"precious")  # e.g. the same output produced again, before any read
        assert c.get_blob(d) == b"precious"
        assert c.verify().clean
        assert c.stats().blob_bytes == len(b"precious")
