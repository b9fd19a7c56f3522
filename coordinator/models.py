"""Pydantic models at the coordinator's HTTP boundary (JSON bodies), shared by server and client.

Cache bodies themselves are raw bytes (the Bazel HTTP cache protocol); only the control endpoints
speak JSON, and their schemas are what /openapi.json publishes.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

TENANT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
RESERVED_TENANTS = frozenset({"v1", "metrics", "healthz", "openapi.json", "status", "cas", "ac"})


class Role(StrEnum):
    """What a key may do inside its tenant: read < read-write < admin."""

    READ = "read"
    READ_WRITE = "read-write"
    ADMIN = "admin"

    @property
    def can_write(self) -> bool:
        return self is not Role.READ

    @property
    def is_admin(self) -> bool:
        return self is Role.ADMIN


class ApiModel(BaseModel):
    """Unknown fields are ignored so client and server can grow additively."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class TokenRequest(ApiModel):
    """POST /v1/token body. The key may instead come as `Authorization: Bearer <key>`."""

    # long enough that a token sent as a key is refused as a credential (401), not as a body
    api_key: str = Field(min_length=1, max_length=1024)


class TokenResponse(ApiModel):
    token: str
    token_type: str = "Bearer"
    expires_in: int = Field(description="seconds until expiry; refresh before it")
    expires_at: float = Field(description="unix time of expiry")
    tenant: str
    role: Role
    key_id: str


class ErrorBody(ApiModel):
    """Every error response: a stable code, a human message, and an optional remediation hint."""

    error: str
    message: str
    hint: str | None = None


class TenantStatus(ApiModel):
    """GET /v1/tenants/{tenant} (admin role): usage against quota and the AC mode."""

    tenant: str
    raw_ac: bool
    quota_bytes: int | None = Field(default=None, description="absent: no quota")
    used_bytes: int
    cas_entries: int
    ac_entries: int


class Health(ApiModel):
    status: str = "ok"
    version: str


class KeyCreateRequest(ApiModel):
    """POST /v1/tenants/{tenant}/keys body (admin role of that tenant)."""

    role: Role
    label: str = Field(default="", max_length=200)


class KeyInfo(ApiModel):
    """A key's public record: never its secret or hash."""

    key_id: str
    tenant: str
    role: Role
    label: str
    created_at: datetime
    revoked_at: datetime | None = None


class KeyCreated(ApiModel):
    api_key: str = Field(description="the key itself: shown once, store it now")
    key: KeyInfo
