"""Stored records (tenants, API keys) and the binary encodings of cache entries.

AC entries are stored as a small self-describing record rather than the bare value so that the
read path can (1) detect on-disk corruption of opaque values, which have no content hash of their
own, and (2) check the referenced CAS blobs without decoding msgpack on every hit:

    b"A1" | flags u8 | sha256(value) 32 | nrefs u32 | nrefs * (sha256 32 | size u64) | value
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from maestro.errors import CoordinatorError

from .models import RESERVED_TENANTS, TENANT_RE, Role
from .tenancy import TenantPolicy, changed_policy

_AC_HEAD = struct.Struct("<2sB32sI")
_REF = struct.Struct("<32sQ")
AC_MAGIC = b"A1"
FLAG_RAW = 1
USAGE = struct.Struct("<QQQ")
"""Per-tenant usage: stored bytes, CAS entries, AC entries."""


def check_tenant_name(name: str) -> None:
    if not TENANT_RE.fullmatch(name) or name in RESERVED_TENANTS:
        raise CoordinatorError(
            f"invalid tenant name {name!r}",
            hint="1-63 of a-z 0-9 _ -, starting with a letter or digit; not a reserved word",
        )


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TenantRecord(_Record):
    """A tenant: a name in URLs and an immutable numeric id that prefixes every storage key.

    Ids are never reused, so a tenant deleted and re-created under the same name cannot see
    entries of its predecessor.
    """

    id: int
    name: str
    created_at: datetime
    raw_ac: bool = False
    quota_bytes: int | None = None
    policy: TenantPolicy | None = None
    """Priority, rates and shares set by an operator; None: the configured default."""

    @property
    def prefix(self) -> bytes:
        return self.id.to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class TenantUpdate:
    """A change to a tenant's settings; None leaves a setting as it is."""

    raw_ac: bool | None = None
    quota_bytes: int | None = None
    clear_quota: bool = False
    policy_changes: Mapping[str, Any] | None = None
    """Fields of TenantPolicy to change (applied to the stored policy, atomically)."""
    clear_policy: bool = False

    def apply(self, record: TenantRecord) -> TenantRecord:
        changes: dict[str, Any] = {}
        if self.raw_ac is not None:
            changes["raw_ac"] = self.raw_ac
        if self.quota_bytes is not None or self.clear_quota:
            changes["quota_bytes"] = None if self.clear_quota else self.quota_bytes
        if self.clear_policy:
            changes["policy"] = None
        if self.policy_changes:
            base = None if self.clear_policy else record.policy
            changes["policy"] = changed_policy(base, self.policy_changes)
        return record.model_copy(update=changes)


class KeyRecord(_Record):
    """An API key: only a salted hash of its secret part is stored."""

    key_id: str
    tenant: str
    role: Role
    salt: str
    secret_hash: str
    created_at: datetime
    label: str = ""
    revoked_at: datetime | None = None

    def revoked(self) -> KeyRecord:
        """This key revoked now; an already revoked key keeps its first revocation time."""
        if self.revoked_at is not None:
            return self
        return self.model_copy(update={"revoked_at": datetime.now(UTC)})


@dataclass(frozen=True, slots=True)
class AcRecord:
    raw: bool
    value: bytes
    refs: tuple[tuple[bytes, int], ...]

    def encode(self) -> bytes:
        head = _AC_HEAD.pack(
            AC_MAGIC,
            FLAG_RAW if self.raw else 0,
            hashlib.sha256(self.value).digest(),
            len(self.refs),
        )
        return head + b"".join(_REF.pack(k, s) for k, s in self.refs) + self.value


class CorruptRecordError(ValueError):
    """A stored AC record fails its checksum or framing."""


def decode_ac(data: bytes) -> AcRecord:
    """Parse and verify an AC record; raises CorruptRecordError on any damage."""
    if len(data) < _AC_HEAD.size:
        raise CorruptRecordError("truncated header")
    magic, flags, checksum, nrefs = _AC_HEAD.unpack_from(data)
    if magic != AC_MAGIC:
        raise CorruptRecordError("bad magic")
    start = _AC_HEAD.size + nrefs * _REF.size
    if start > len(data):
        raise CorruptRecordError("truncated references")
    value = data[start:]
    if hashlib.sha256(value).digest() != checksum:
        raise CorruptRecordError("value checksum mismatch")
    refs = tuple(_REF.unpack_from(data, _AC_HEAD.size + i * _REF.size) for i in range(nrefs))
    return AcRecord(raw=bool(flags & FLAG_RAW), value=value, refs=refs)
