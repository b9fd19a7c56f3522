"""API keys, short-lived tokens, and the per-request authorization decision.

- An API key is `mk_<key id>_<secret>`; the store keeps the key id, a random salt and
  HMAC-SHA256(salt, secret). The secret is 256 random bits, so a fast salted hash is enough (no
  password-style stretching needed) and keeps `POST /v1/token` cheap. Comparisons are constant-time.
- A token is `mt_` + a JWT (HS256, PyJWT) whose header names the signing key (`kid`) and whose
  claims are the key id (`sub`), tenant (`ten`), issuer and expiry. Several signing keys may be
  valid at once (`TokenKeys`): new tokens are signed with one, tokens of the others still verify,
  and a token whose `kid` is retired is refused with an error that says so. The signature is
  verified before any claim is read; expiry is checked against the coordinator's clock.
- Rotation with overlap (`maestro coordinator key rotate`): the data dir's keyring
  (`token-keys.json`, 0600) holds the signing key and the previous ones, each verifying until its
  `verify_until`; the server re-reads the file when it changes, so a rotation needs no restart
  and logs nobody out (the overlap defaults to the token TTL: every token the old key signed
  expires before it stops verifying). After that a token naming it is refused as retired.
  Replicas sharing state in Redis keep the same keyring there (`SharedKeyringSource`): `key
  rotate` swaps it in one transaction and every replica reads it again within a second, at once
  when a token names a key it does not know yet (minted by a replica that already did).
- Tokens are stateless, which lets replicas sharing the keys verify them, but every request also
  reads the key record from the StateBackend: revoking a key (or changing its role) takes effect
  on the next request, whatever tokens were minted from it (embedded LMDB); replicas keep
  records read from Redis for at most `record_cache_ttl_s` and drop them when the change is
  announced (state.py), so there the bound is that TTL, milliseconds in practice.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from maestro.errors import CoordinatorAuthError

from .models import Role
from .records import KeyRecord, TenantRecord
from .state import StateBackend
from .store import Store

if TYPE_CHECKING:
    from .settings import Settings
    from .state import RedisState

log = logging.getLogger(__name__)

KEY_PREFIX = "mk_"
TOKEN_PREFIX = "mt_"
SECRET_FILE = "token-secret"
KEYRING_FILE = "token-keys.json"
DEFAULT_KID = "default"
"""The `kid` of a single configured `token_secret` or of the generated one."""
ALGORITHM = "HS256"
ISSUER = "maestro-coordinator"
MAX_TOKEN_CHARS = 1024
VERIFIED_TOKENS = 4096
"""Tokens whose signature checked out, kept so a client's next requests skip the check."""
MIN_SECRET_BYTES = 32
"""HS256 keys shorter than its digest are below RFC 7518's minimum (section 3.2)."""
KID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_REFRESH_HINT = "exchange the API key for a new token at POST /v1/token"


class TokenRejectedError(CoordinatorAuthError):
    """A bearer token that is not (or no longer) acceptable; `reason` labels the metric."""

    code = "token_rejected"

    def __init__(self, message: str, *, reason: str, hint: str = _REFRESH_HINT) -> None:
        super().__init__(message, status=401, hint=hint)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TokenKeys:
    """The HMAC keys of tokens: `signing_kid` signs new ones, every key in `keys` verifies, and
    a token naming a `retired` kid is refused as such (its secret need not be kept)."""

    signing_kid: str
    keys: Mapping[str, bytes] = field(repr=False)
    retired: frozenset[str] = frozenset()
    verify_until: Mapping[str, float] = field(default_factory=dict)
    """Unix time after which a key's tokens are refused as retired (the rotation overlap)."""

    def __post_init__(self) -> None:
        for kid, secret in self.keys.items():
            if not KID_RE.fullmatch(kid):
                raise ValueError(f"token key id {kid!r}: use 1-64 of A-Z a-z 0-9 . _ -")
            if len(secret) < MIN_SECRET_BYTES:
                raise ValueError(
                    f"token key {kid!r} is {len(secret)} bytes; at least {MIN_SECRET_BYTES} "
                    "are needed (e.g. `openssl rand -hex 32`)"
                )
        if self.signing_kid not in self.keys:
            raise ValueError(f"the signing key {self.signing_kid!r} is not among the token keys")
        both = self.retired & self.keys.keys()
        if both:
            raise ValueError(f"token keys both valid and retired: {', '.join(sorted(both))}")

    @classmethod
    def single(cls, secret: bytes, retired: frozenset[str] = frozenset()) -> TokenKeys:
        return cls(DEFAULT_KID, {DEFAULT_KID: secret}, retired)


def token_keys_from_settings(settings: Settings, generated: bytes | None = None) -> TokenKeys:
    """The configured keys (`token_keys`, else `token_secret`), else the `generated` secret;
    ValueError names what is wrong with them."""
    retired = frozenset(settings.token_retired_kids)
    if settings.token_keys:
        keys = {k: v.get_secret_value().encode() for k, v in settings.token_keys.items()}
        signing = settings.token_signing_kid or next(iter(keys))
        return TokenKeys(signing, keys, retired)
    if settings.token_secret is not None:
        return TokenKeys.single(settings.token_secret.get_secret_value().encode(), retired)
    if generated is None:
        raise ValueError("no token keys configured and none generated")
    return TokenKeys.single(generated, retired)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: resolved on every request from a token or key."""

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
        keys: TokenKeys | Callable[[], TokenKeys],
        *,
        ttl_s: int,
        accept_api_keys: bool,
        clock: Callable[[], float],
        refresh: Callable[[str | None], Awaitable[None]] | None = None,
    ) -> None:
        self._state = state
        self._keys = keys
        self._refresh = refresh
        self._ttl = ttl_s
        self._accept_keys = accept_api_keys
        self._clock = clock
        self._verified: dict[str, tuple[str, bytes, dict[str, Any]]] = {}
        """token -> (kid, the secret it verified under, its claims); oldest first."""

    @property
    def keys(self) -> TokenKeys:
        """The keys in force: fixed, or read from the keyring as it is now."""
        keys = self._keys
        return keys if isinstance(keys, TokenKeys) else keys()

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
        if self._refresh is not None:  # a token is minted next: with the signing key of now
            await self._refresh(None)
        return await self._principal(record)

    async def _principal(self, record: KeyRecord) -> Principal | None:
        tenant = await self._state.get_tenant(record.tenant)
        if tenant is None:
            return None
        return Principal(tenant=tenant, role=record.role, key_id=record.key_id)

    def mint(self, principal: Principal) -> tuple[str, float]:
        """A signed token for an authenticated key, and its expiry (unix time)."""
        now = self._clock()
        expires = now + self._ttl
        claims = {
            "iss": ISSUER,
            "sub": principal.key_id,
            "ten": principal.tenant.name,
            "exp": round(expires, 3),
        }
        keys = self.keys
        kid = keys.signing_kid
        body = jwt.encode(claims, keys.keys[kid], algorithm=ALGORITHM, headers={"kid": kid})
        return TOKEN_PREFIX + body, expires

    def _verified_claims(self, token: str) -> dict[str, Any]:
        """The claims of a token whose signature checks out under the key its `kid` names."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_CHARS:
            raise TokenRejectedError("not a coordinator token", reason="invalid")
        keys = self.keys
        # A client sends the same token for its whole life: the exact string verified before
        # under a key still in force needs no second signature check (CPU on the event loop,
        # per request). Any other string, one changed bit included, is checked in full.
        cached = self._verified.get(token)
        if cached is not None:
            self._refuse_retired(keys, cached[0])
            if keys.keys.get(cached[0]) == cached[1]:
                return cached[2]
            del self._verified[token]
        body = token[len(TOKEN_PREFIX) :]
        try:
            # The header only picks the key; nothing else is read before the signature checks.
            kid = jwt.get_unverified_header(body).get("kid")
        except jwt.PyJWTError:
            raise TokenRejectedError("malformed token", reason="invalid") from None
        if not isinstance(kid, str):
            raise TokenRejectedError("token without a key id (kid)", reason="invalid")
        self._refuse_retired(keys, kid)
        secret = keys.keys.get(kid)
        if secret is None:
            raise TokenRejectedError(f"token signed with unknown key {kid!r}", reason="invalid")
        try:
            decoded = jwt.decode_complete(
                body,
                secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                # expiry is checked below against the coordinator's own clock
                options={"verify_exp": False, "require": ["exp", "sub", "iss"]},
            )
        except jwt.PyJWTError:
            raise TokenRejectedError(
                "invalid token signature or claims", reason="invalid"
            ) from None
        # One canonical spelling per token: no malleable trailing bits in the signature.
        if body.rsplit(".", 1)[-1] != _b64(decoded["signature"]):
            raise TokenRejectedError("non-canonical token encoding", reason="invalid")
        claims: dict[str, Any] = decoded["payload"]
        if len(self._verified) >= VERIFIED_TOKENS:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (kid, secret, claims)
        return claims

    def _refuse_retired(self, keys: TokenKeys, kid: str) -> None:
        until = keys.verify_until.get(kid)
        if kid in keys.retired or (until is not None and self._clock() >= until):
            raise TokenRejectedError(f"token signed with retired key {kid!r}", reason="retired_key")

    async def check_token(self, token: str) -> Principal:
        """Verify signature and expiry, then the key's *current* state (revocation, role)."""
        if self._refresh is not None:
            await self._refresh(_unverified_kid(token))
        claims = self._verified_claims(token)
        try:
            key_id, tenant, expires = str(claims["sub"]), str(claims["ten"]), float(claims["exp"])
        except (KeyError, TypeError, ValueError):
            raise TokenRejectedError("token claims are malformed", reason="invalid") from None
        if self._clock() >= expires:
            raise TokenRejectedError("token expired", reason="expired")
        record = await self._state.get_key(key_id)
        if record is None or record.revoked_at is not None or record.tenant != tenant:
            raise TokenRejectedError(
                "the token's API key is revoked or unknown",
                reason="invalid",
                hint="ask a tenant admin for a new key: maestro coordinator key create TENANT",
            )
        principal = await self._principal(record)
        if principal is None:
            raise TokenRejectedError("the token's tenant no longer exists", reason="invalid")
        return principal

    async def check_bearer(self, credential: str) -> Principal | None:
        """A token, or (if enabled) an API key used directly by clients that cannot refresh.

        None for an unusable key; a token that is refused raises `TokenRejectedError`, whose
        message says why (expired, retired signing key, ...)."""
        if credential.startswith(TOKEN_PREFIX):
            return await self.check_token(credential)
        if self._accept_keys and credential.startswith(KEY_PREFIX):
            return await self.check_key(credential)
        return None


def _unverified_kid(token: str) -> str | None:
    """The `kid` a token's header names, unchecked: only to pick which keys to look at."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_CHARS:
        return None
    try:
        kid = jwt.get_unverified_header(token[len(TOKEN_PREFIX) :]).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None


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


# -- the data dir's keyring: rotation with overlap --------------------------------------------


class KeyringEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: str = Field(repr=False, pattern=r"^[0-9a-f]{64,}$")
    """Hex; never printed or logged."""
    created_at: float
    verify_until: float | None = None
    """Set when a newer key took over: its tokens verify until then."""


class Keyring(BaseModel):
    """`<data_dir>/token-keys.json`: which key signs, and every key that still verifies."""

    model_config = ConfigDict(extra="forbid")

    signing: str
    keys: dict[str, KeyringEntry]
    retired: list[str] = Field(default_factory=list)

    def token_keys(self) -> TokenKeys:
        return TokenKeys(
            self.signing,
            {kid: bytes.fromhex(e.secret) for kid, e in self.keys.items()},
            frozenset(self.retired),
            {kid: e.verify_until for kid, e in self.keys.items() if e.verify_until is not None},
        )


@dataclass(frozen=True, slots=True)
class Rotation:
    """What `key rotate` did (no secret in it): printed and logged as is."""

    new_kid: str
    old_kid: str
    old_verifies_until: float
    retired: tuple[str, ...]


def read_keyring(data_dir: Path) -> Keyring | None:
    """The keyring, None when there is none yet; ValueError when it is damaged."""
    path = data_dir / KEYRING_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    return _parse_keyring(raw, str(path))


def write_keyring(data_dir: Path, ring: Keyring) -> None:
    """Replace the keyring atomically, 0600 from its creation."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data_dir / KEYRING_FILE
    tmp = path.with_name(f".{KEYRING_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(ring.model_dump_json(indent=2))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _rotated(
    ring: Keyring | None, first: bytes, *, overlap_s: float, now: float
) -> tuple[Keyring, Rotation]:
    """`ring` with a new signing key; the previous one verifies for `overlap_s` more, and keys
    whose overlap has ended are retired (their secrets dropped). Without a ring yet, the secret
    in use (`first`) becomes key `default`."""
    if ring is None:
        ring = Keyring(
            signing=DEFAULT_KID,
            keys={DEFAULT_KID: KeyringEntry(secret=first.hex(), created_at=now)},
        )
    else:
        ring = ring.model_copy(deep=True)
    ended = [
        k for k, e in ring.keys.items() if e.verify_until is not None and e.verify_until <= now
    ]
    for kid in ended:
        del ring.keys[kid]
    old = ring.signing
    new = f"k{int(now)}-{secrets.token_hex(3)}"
    ring.keys[old].verify_until = now + overlap_s
    ring.keys[new] = KeyringEntry(secret=secrets.token_bytes(32).hex(), created_at=now)
    ring.signing = new
    ring.retired = sorted({*ring.retired, *ended})
    return ring, Rotation(new, old, now + overlap_s, tuple(ended))


def rotate_keyring(data_dir: Path, *, overlap_s: float, now: float | None = None) -> Rotation:
    """Rotate the data dir's keyring (`_rotated`); the first rotation adopts the secret the
    server generated (`token-secret`) as key `default`."""
    now = time.time() if now is None else now
    ring = read_keyring(data_dir)
    first = load_or_create_secret(data_dir) if ring is None else b""
    ring, done = _rotated(ring, first, overlap_s=overlap_s, now=now)
    write_keyring(data_dir, ring)
    return done


def _parse_keyring(raw: bytes, where: str) -> Keyring:
    try:
        return Keyring.model_validate_json(raw)
    except ValidationError as exc:
        raise ValueError(f"{where} is not a valid keyring: {exc.error_count()} errors") from None


async def rotate_shared_keyring(
    state: RedisState, *, overlap_s: float, now: float | None = None
) -> Rotation:
    """Rotate the keyring the replicas share in Redis (`_rotated`), in one transaction against
    concurrent rotations; the first one adopts the replicas' shared secret as key `default`."""
    first = await state.token_secret()
    if first is None:
        raise ValueError("the state backend shares no token secret")
    done: list[Rotation] = []

    def change(raw: bytes | None) -> bytes:
        ring = None if raw is None else _parse_keyring(raw, "the shared keyring (Redis)")
        now_ = time.time() if now is None else now
        ring, rotation = _rotated(ring, first, overlap_s=overlap_s, now=now_)
        done[:] = [rotation]
        return ring.model_dump_json().encode()

    await state.swap_token_keyring(change)
    return done[0]


class KeyringSource:
    """The data dir's token keys as they are now: the keyring, re-read when the file changes
    (`key rotate` from another process takes effect on the next request), else the generated
    secret alone."""

    def __init__(self, data_dir: Path, fallback: bytes) -> None:
        self.path = data_dir / KEYRING_FILE
        self.data_dir = data_dir
        self._fallback = TokenKeys.single(fallback)
        self._seen: tuple[int, int] | None = None
        self._keys = self._fallback

    def __call__(self) -> TokenKeys:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return self._fallback
        seen = (st.st_mtime_ns, st.st_size)
        if seen != self._seen:
            with contextlib.suppress(ValueError):  # a damaged file keeps the keys in force
                ring = read_keyring(self.data_dir)
                if ring is not None:
                    self._keys = ring.token_keys()
            self._seen = seen
        return self._keys


class SharedKeyringSource:
    """The token keys of replicas that share state in Redis: the keyring there (`key rotate`
    swaps it), else the shared secret alone. Read again at most every `every_s` seconds, at
    once when `changes()` moves (a rotation was announced), and at once (at most every
    `min_gap_s`) before a token is signed or for a token naming a key not known here yet (a
    replica that read the rotation first signed it)."""

    def __init__(
        self,
        state: StateBackend,
        shared: bytes,
        *,
        every_s: float = 1.0,
        min_gap_s: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        changes: Callable[[], int] | None = None,
    ) -> None:
        self._state = state
        self._changes = changes
        self._seen_change = changes() if changes is not None else 0
        self._keys = TokenKeys.single(shared)
        self._fallback = self._keys
        self._every = every_s
        self._min_gap = min_gap_s
        self._clock = clock
        self._read_at: float | None = None
        self._background: asyncio.Task[None] | None = None

    def __call__(self) -> TokenKeys:
        return self._keys

    async def refresh(self, kid: str | None) -> None:
        """Before verifying a token naming `kid`, or (None) before signing one: a token is
        always signed with the key that signs now (tokens are fetched once per TTL). The
        periodic re-read for a token of a known key runs in the background: that request
        goes on with the keys in force instead of awaiting Redis."""
        now = self._clock()
        since = None if self._read_at is None else now - self._read_at
        keys = self._keys
        soon = kid is None or (kid not in keys.keys and kid not in keys.retired)
        announced = self._changes is not None and self._changes() != self._seen_change
        if not announced and since is not None and since < (self._min_gap if soon else self._every):
            return
        if self._changes is not None:
            self._seen_change = self._changes()
        self._read_at = now
        if not soon and not announced and since is not None:
            if self._background is None:
                self._background = asyncio.create_task(self._read_in_background())
            return
        await self._read()

    async def _read_in_background(self) -> None:
        try:
            await self._read()
        except Exception as exc:  # Redis away: the keys in force stay, the next read retries
            log.warning("could not re-read the shared keyring: %r", exc)
        finally:
            self._background = None

    async def _read(self) -> None:
        raw = await self._state.token_keyring()
        if raw is None:
            self._keys = self._fallback
            return
        try:
            self._keys = _parse_keyring(raw, "the shared keyring (Redis)").token_keys()
        except ValueError as exc:  # a damaged keyring keeps the keys in force
            log.error("%s; keeping the token keys in force", exc)
