"""API keys, short-lived tokens, and the per-request authorization decision.

- An API key is `mk_<key id>_<secret>`; the store keeps the key id, a random salt and
  HMAC-SHA256(salt, secret). The secret is 256 random bits, so a fast salted hash is enough (no
  password-style stretching needed) and keeps `POST /v1/token` cheap. Comparisons are constant-time.
- A token is `mt_<payload>.<sig>`: base64url JSON {key id, tenant, expiry} signed with
  HMAC-SHA256 under the server's token secret. Tokens are stateless, which lets replicas sharing
  the secret verify them, but every request also re-reads the key record from the StateBackend
  (LMDB or Redis): revoking a key (or changing its role) takes effect on the next request,
  whatever tokens were minted from it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .models import Role
from .records import KeyRecord, TenantRecord
from .state import StateBackend
from .store import Store

KEY_PREFIX = "mk_"
TOKEN_PREFIX = "mt_"
SECRET_FILE = "token-secret"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: resolved on every request from a token or key, never cached."""

    tenant: TenantRecord
    role: Role
    key_id: str


@dataclass(frozen=True, slots=True)
class NewKey:
    record: KeyRecord
    plaintext: str
    """Shown once to the operator; never stored or logged."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _hash_secret(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode(), hashlib.sha256).digest()


def new_key(tenant: str, role: Role, label: str = "") -> NewKey:
    """A fresh key (record + plaintext); the caller stores the record."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    record = KeyRecord(
        key_id=key_id,
        tenant=tenant,
        role=role,
        salt=salt.hex(),
        secret_hash=_hash_secret(salt, secret).hex(),
        created_at=datetime.now(UTC),
        label=label,
    )
    return NewKey(record, f"{KEY_PREFIX}{key_id}_{secret}")


def create_key(store: Store, tenant: str, role: Role, label: str = "") -> NewKey:
    """Create and store a key in the embedded store (admin CLI, tests)."""
    key = new_key(tenant, role, label)
    store.add_key(key.record)
    return key


def load_or_create_secret(data_dir: Path) -> bytes:
    """The token-signing secret kept beside the store (0600), created on first use."""
    path = data_dir / SECRET_FILE
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(path.read_text().strip())
    secret = secrets.token_bytes(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret.hex())
    return secret


class Authenticator:
    """Turns credentials into a Principal (or None) against the live shared state."""

    def __init__(
        self,
        state: StateBackend,
        secret: bytes,
        *,
        ttl_s: int,
        accept_api_keys: bool,
        clock: Callable[[], float],
    ) -> None:
        self._state = state
        self._secret = secret
        self._ttl = ttl_s
        self._accept_keys = accept_api_keys
        self._clock = clock

    async def check_key(self, api_key: str) -> Principal | None:
        """Verify an API key; None for malformed, unknown, revoked or mismatching keys."""
        if not api_key.startswith(KEY_PREFIX):
            return None
        key_id, sep, secret = api_key[len(KEY_PREFIX) :].partition("_")
        if not sep or not secret:
            return None
        record = await self._state.get_key(key_id)
        if record is None or record.revoked_at is not None:
            return None
        try:
            expected = bytes.fromhex(record.secret_hash)
            salt = bytes.fromhex(record.salt)
        except ValueError:
            return None
        if not hmac.compare_digest(_hash_secret(salt, secret), expected):
            return None
        return await self._principal(record)

    async def _principal(self, record: KeyRecord) -> Principal | None:
        tenant = await self._state.get_tenant(record.tenant)
        if tenant is None:
            return None
        return Principal(tenant=tenant, role=record.role, key_id=record.key_id)

    def mint(self, principal: Principal) -> tuple[str, float]:
        """A signed token for an authenticated key, and its expiry (unix time)."""
        expires = self._clock() + self._ttl
        payload = json.dumps(
            {"k": principal.key_id, "t": principal.tenant.name, "e": round(expires, 3)},
            separators=(",", ":"),
        ).encode()
        body = _b64(payload)
        sig = hmac.new(self._secret, (TOKEN_PREFIX + body).encode(), hashlib.sha256).digest()
        return f"{TOKEN_PREFIX}{body}.{_b64(sig)}", expires

    async def check_token(self, token: str) -> Principal | None:
        """Verify signature and expiry, then the key's *current* state (revocation, role)."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        body, sep, sig_text = token[len(TOKEN_PREFIX) :].partition(".")
        if not sep or len(token) > 1024:
            return None
        try:
            sig = _unb64(sig_text)
            if _b64(sig) != sig_text:
                return None  # one canonical spelling per token: no malleable trailing bits
            expected = hmac.new(
                self._secret, (TOKEN_PREFIX + body).encode(), hashlib.sha256
            ).digest()
            if not hmac.compare_digest(sig, expected):
                return None
            claims = json.loads(_unb64(body))
            key_id, tenant, expires = str(claims["k"]), str(claims["t"]), float(claims["e"])
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
            return None
        if self._clock() >= expires:
            return None
        record = await self._state.get_key(key_id)
        if record is None or record.revoked_at is not None or record.tenant != tenant:
            return None
        return await self._principal(record)

    async def check_bearer(self, credential: str) -> Principal | None:
        """A token, or (if enabled) an API key used directly by clients that cannot refresh."""
        if credential.startswith(TOKEN_PREFIX):
            return await self.check_token(credential)
        if self._accept_keys and credential.startswith(KEY_PREFIX):
            return await self.check_key(credential)
        return None


def credential_from_header(value: str | None) -> str | None:
    """The bearer credential of an Authorization header: `Bearer X`, or `Basic` with X as the
    password (bazel's --remote_cache=https://user:X@host, curl -u, ccache's user:password form)."""
    if not value:
        return None
    scheme, _, rest = value.strip().partition(" ")
    scheme = scheme.lower()
    rest = rest.strip()
    if scheme == "bearer":
        return rest or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(rest, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        _, sep, password = decoded.partition(":")
        return password if sep and password else None
    return None
