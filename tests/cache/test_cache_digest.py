from __future__ import annotations

import hashlib

import pytest

from maestro.cache import EMPTY_DIGEST, Digest, digest_bytes
from maestro.cache.sizes import format_size, parse_size, size_field
from maestro.errors import CacheError


def test_digest_is_plain_sha256_of_bytes_like_reapi() -> None:
    d = digest_bytes(b"hello")
    assert d.hash == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert d.size == 5
    assert EMPTY_DIGEST.hash == hashlib.sha256(b"").hexdigest()
    assert EMPTY_DIGEST.hash.startswith("e3b0c442")


def test_digest_rejects_malformed_hashes() -> None:
    with pytest.raises(CacheError):
        Digest("XYZ", 1)
    with pytest.raises(CacheError):
        Digest("A" * 64, 1)  # uppercase is not canonical
    with pytest.raises(CacheError):
        Digest("a" * 64, -1)


def test_digest_text_form_roundtrips() -> None:
    d = digest_bytes(b"abc")
    assert Digest.parse(str(d)) == d
    with pytest.raises(CacheError):
        Digest.parse(d.hash)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1GB", 10**9),
        ("1GiB", 2**30),
        ("1G", 2**30),
        ("500MB", 500 * 10**6),
        ("1.5 MiB", 3 * 2**19),
        ("2048", 2048),
        ("10kb", 10_000),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GB", "1 XB", "-1GB", "1,5GB"])
def test_parse_size_rejects_garbage(text: str) -> None:
    with pytest.raises(CacheError):
        parse_size(text)


def test_size_field_reads_units_and_passes_the_rest_on() -> None:
    assert size_field("2KiB") == 2048
    assert size_field("512") == "512" and size_field(7) == 7 and size_field(None) is None
    with pytest.raises(ValueError, match="not a size"):
        size_field("lots")


def test_format_size() -> None:
    assert format_size(512) == "512 B"
    assert format_size(3 * 2**20 // 2) == "1.5 MiB"
