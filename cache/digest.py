"""Content digests: the REAPI/Bazel `Digest` (sha256 hex, size), interoperable with bazel-remote."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from maestro.errors import CacheError

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Digest:
    """SHA-256 of a blob's raw bytes plus its length (lets callers budget before fetching)."""

    hash: str
    size: int

    def __post_init__(self) -> None:
        if not _HEX64.fullmatch(self.hash):
            raise CacheError(
                f"not a sha256 hex digest: {self.hash!r}",
                hint="digests are 64 lowercase hex characters",
            )
        if self.size < 0:
            raise CacheError(f"negative blob size {self.size} for {self.hash}")

    @property
    def key(self) -> bytes:
        """The 32 raw bytes used as the LMDB key (half the size of the hex form)."""
        return bytes.fromhex(self.hash)

    def __str__(self) -> str:
        return f"{self.hash}/{self.size}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse the `hash/size` form printed by `str()` (also bazel-remote's log form)."""
        hash_, sep, size = text.partition("/")
        if not sep or not size.isdigit():
            raise CacheError(f"not a digest: {text!r}", hint="expected <sha256 hex>/<size>")
        return cls(hash_.lower(), int(size))


def trusted_digest(hash_hex: str, size: int) -> Digest:
    """Build a Digest from values we computed ourselves, skipping validation (hot path)."""
    digest = object.__new__(Digest)
    object.__setattr__(digest, "hash", hash_hex)
    object.__setattr__(digest, "size", size)
    return digest


def digest_bytes(data: bytes | bytearray | memoryview) -> Digest:
    """Digest of `data` exactly as REAPI defines it: sha256 of the raw bytes, no framing."""
    return trusted_digest(hashlib.sha256(data).hexdigest(), len(data))


def check_hex(text: str, what: str = "digest") -> bytes:
    """Validate a 64-char sha256 hex string and return its 32 raw bytes."""
    lowered = text.lower()
    if not _HEX64.fullmatch(lowered):
        raise CacheError(
            f"not a sha256 hex {what}: {text!r}", hint="expected 64 hexadecimal characters"
        )
    return bytes.fromhex(lowered)


EMPTY_DIGEST = digest_bytes(b"")
"""The empty blob (e3b0c442...): always present, never stored, as bazel-remote does."""
