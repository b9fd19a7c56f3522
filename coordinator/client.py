"""Async client of the coordinator, for the daemon's sync (read-through, write-behind).

- Holds an API key, exchanges it for a token at POST /v1/token and refreshes the token
  `refresh_margin_s` before it expires (one refresh at a time, under a lock); a 401 on a data
  request triggers one refresh-and-retry (e.g. the server rotated its signing keys).
- Every CAS GET is verified: the body must hash to the requested digest, otherwise
  `IntegrityError` is raised and nothing is returned, so the caller never stores bad bytes.
- Misses are `None`/`False`; everything else that is not a success raises `CoordinatorError`
  (or `CoordinatorAuthError` for credentials) carrying the HTTP `status` and the server's own
  message and hint, so callers classify errors by status and back off without confusing them
  with misses.
- A 429 (or a 503 with Retry-After) is the coordinator asking us to back off: the advised delay
  (`retryAfterMs` in the body, else the `Retry-After` header) is kept in `backoff_until`, and
  until then every call raises `CoordinatorBackoffError` at once, without touching the network,
  so the daemon keeps working from its local cache and its uploads wait.

Every body it sends is a `RedactedBlob` (only `maestro.redaction` makes one), so bytes that
skipped redaction are a type error; JSON bodies (telemetry, policy decisions, team model
metadata, flag changes) get a last scan right before they go: with `enforce` (the
`secrets.redaction.enforce` flag) a body in which a secret is found is refused with
`EgressBlockedError`, without it it is sent, counted and warned about (kinds only). CAS/AC bodies
are cleared by their caller's last scan (RemoteSync.clear), not scanned twice.

The client never logs keys or tokens.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Literal

import aiohttp
import zstandard
from pydantic import ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from maestro.cache.digest import Digest, check_hex, digest_bytes
from maestro.errors import (
    CoordinatorAuthError,
    CoordinatorError,
    CoordinatorUnreachableError,
    IntegrityError,
)
from maestro.redaction import RedactedBlob, Redactor

from .models import ErrorBody, TokenResponse

log = logging.getLogger(__name__)

Kind = Literal["cas", "ac"]
MAX_BACKOFF_S = 600.0
"""Advice beyond this is capped: a broken or hostile server cannot silence a client for days."""


class EgressBlockedError(CoordinatorError):
    """The last scan before a body left found a secret, and redaction is enforced."""

    def __init__(self, what: str, kinds: tuple[str, ...]) -> None:
        super().__init__(
            f"{what} not sent: it holds a secret ({', '.join(kinds)})",
            hint="the secret was not redacted upstream; secrets.redaction.enforce blocks it",
        )
        self.kinds = kinds


class CoordinatorBackoffError(CoordinatorError):
    """The coordinator asked us to wait (429 / 503 + Retry-After) until `until` (epoch s)."""

    code = "coordinator_backoff"

    def __init__(self, message: str, *, until: float, status: int = 429, rule: str | None = None):
        super().__init__(message, status=status, hint="working from the local cache meanwhile")
        self.until = until
        self.rule = rule


def retry_advice(headers: Mapping[str, str], body: bytes) -> tuple[float, str | None] | None:
    """Seconds to wait and the refusing rule, from a 429/503 answer (None: no advice)."""
    seconds: float | None = None
    rule: str | None = None
    try:
        parsed = json.loads(body) if body[:1] == b"{" else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        ms = parsed.get("retryAfterMs")
        if isinstance(ms, int | float) and not isinstance(ms, bool) and ms >= 0:
            seconds = ms / 1000
        if isinstance(parsed.get("rule"), str):
            rule = parsed["rule"][:100]
    if seconds is None:
        header = headers.get("retry-after", "").strip()
        if header.isdigit():
            seconds = float(header)
        elif header:
            try:
                seconds = parsedate_to_datetime(header).timestamp() - time.time()
            except (TypeError, ValueError):
                seconds = None
    if seconds is None:
        return None
    return min(MAX_BACKOFF_S, max(0.0, seconds)), rule


def _answer_error(what: str, status: int, body: bytes) -> CoordinatorError:
    """The typed error for a non-success answer, with the server's ErrorBody when it sent one."""
    detail, hint = body[:300].decode(errors="replace").strip(), None
    try:
        parsed = ErrorBody.model_validate_json(body)
        detail, hint = parsed.message, parsed.hint
    except ValidationError:
        pass
    message = f"{what}: HTTP {status}" + (f": {detail}" if detail else "")
    cls = CoordinatorAuthError if status in (401, 403) else CoordinatorError
    return cls(message, status=status, hint=hint)


def _stale_token(exc: BaseException) -> bool:
    return isinstance(exc, CoordinatorAuthError) and exc.status == 401


def _log_refresh(state: RetryCallState) -> None:
    log.info("coordinator answered 401; refreshing the token once")


class CoordinatorClient:
    def __init__(
        self,
        base_url: str,
        tenant: str,
        api_key: str,
        *,
        refresh_margin_s: float = 60.0,
        timeout_s: float = 30.0,
        compress_min_bytes: int = 4096,
        clock: Callable[[], float] = time.time,
        redactor: Redactor | None = None,
        enforce: bool = True,
        on_backoff: Callable[[float, str | None], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tenant = tenant
        self._api_key = api_key
        self._margin = refresh_margin_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._compress_min = compress_min_bytes
        self._clock = clock
        self._token: TokenResponse | None = None
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self.backoff_until: float | None = None
        """Epoch seconds until which the coordinator asked us not to call (None: no advice)."""
        self.backoff_rule: str | None = None
        self.on_backoff = on_backoff
        """Told (until, rule) when the coordinator asks us to back off, in the caller's thread."""
        self.redactor = redactor or Redactor.from_environ(os.environ)
        self.redactor.add_known(api_key, kind="maestro-api-key")
        self.enforce = enforce
        self.egress_blocked = 0
        self.egress_flagged = 0

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # auto_decompress off: we decode zstd ourselves and verify the result.
            self._session = aiohttp.ClientSession(timeout=self._timeout, auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> CoordinatorClient:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- tokens ------------------------------------------------------------------------------

    @property
    def token_info(self) -> TokenResponse | None:
        """The current token's metadata (role, expiry): lets the daemon skip uploads for readers."""
        return self._token

    async def token(self, *, force: bool = False) -> str:
        """A valid token, refreshed when within `refresh_margin_s` of expiry."""
        current = self._token
        if not force and current is not None and current.expires_at - self._margin > self._clock():
            return current.token
        async with self._lock:
            current = self._token
            if (
                not force
                and current is not None
                and current.expires_at - self._margin > self._clock()
            ):
                return current.token
            self._token = await self._exchange()
            return self._token.token

    async def _exchange(self) -> TokenResponse:
        try:
            async with self.session.post(
                f"{self.base_url}/v1/token", json={"api_key": self._api_key}
            ) as resp:
                body = await resp.read()
                if resp.status == 401:
                    raise CoordinatorAuthError(
                        "the coordinator rejected the API key (unknown or revoked)",
                        status=401,
                        hint="create a new key: maestro coordinator key create TENANT",
                    )
                if resp.status != 200:
                    raise _answer_error("token exchange failed", resp.status, body)
        except aiohttp.ClientError as exc:
            raise CoordinatorUnreachableError(f"coordinator unreachable: {exc}") from exc
        token = TokenResponse.model_validate_json(body)
        # Trust our clock for expiry: a skewed server clock must not make us refresh late.
        local_expiry = self._clock() + token.expires_in
        return token.model_copy(update={"expires_at": min(token.expires_at, local_expiry)})

    # -- requests ----------------------------------------------------------------------------

    def _url(self, kind: Kind, hash_hex: str) -> str:
        check_hex(hash_hex)
        return f"{self.base_url}/{self.tenant}/{kind}/{hash_hex.lower()}"

    async def _request(
        self,
        method: str,
        url: str,
        *,
        data: RedactedBlob | None = None,
        headers: dict[str, str] | None = None,
        compress: bool = False,
    ) -> tuple[int, bytes, dict[str, str]]:
        if data is not None and not isinstance(data, RedactedBlob):
            raise TypeError("the coordinator client sends only a RedactedBlob")
        body = data.data if data is not None else None
        if compress and body is not None and len(body) >= self._compress_min:
            size = len(body)
            body = zstandard.ZstdCompressor(level=3).compress(body)
            headers = {
                **(headers or {}),
                "Content-Encoding": "zstd",
                "X-Digest-SizeBytes": str(size),
            }
        # A 401 means our token is stale (expired early, or signed with a key the server has
        # since retired): mint a fresh one and ask once more.
        retrying = AsyncRetrying(
            stop=stop_after_attempt(2),
            retry=retry_if_exception(_stale_token),
            before_sleep=_log_refresh,
            reraise=True,
        )
        self._check_backoff()
        async for attempt in retrying:
            with attempt:
                token = await self.token(force=attempt.retry_state.attempt_number > 1)
                all_headers = {"Authorization": f"Bearer {token}", **(headers or {})}
                try:
                    async with self.session.request(
                        method, url, data=body, headers=all_headers
                    ) as resp:
                        body = await resp.read()
                        status = resp.status
                        resp_headers = {k.lower(): v for k, v in resp.headers.items()}
                except aiohttp.ClientError as exc:
                    raise CoordinatorUnreachableError(f"coordinator unreachable: {exc}") from exc
                if status in (401, 403):
                    raise _answer_error(f"{method} {url}", status, body)
                if status in (429, 503):
                    self._note_backoff(status, resp_headers, body)
                return status, body, resp_headers
        raise AssertionError("unreachable: the last attempt re-raises")

    @property
    def backing_off(self) -> bool:
        return self.backoff_until is not None and self.backoff_until > self._clock()

    def _check_backoff(self) -> None:
        until = self.backoff_until
        if until is None:
            return
        if until <= self._clock():
            self.backoff_until = self.backoff_rule = None
            log.info("coordinator back-off over; resuming requests")
            return
        raise CoordinatorBackoffError(
            f"the coordinator asked us to back off for {until - self._clock():.1f} s more",
            until=until,
            rule=self.backoff_rule,
        )

    def _note_backoff(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        advice = retry_advice(headers, body)
        if advice is None:
            return
        seconds, rule = advice
        until = self._clock() + seconds
        self.backoff_until = max(until, self.backoff_until or 0.0)
        self.backoff_rule = rule
        log.info(
            "coordinator answered %d (%s): backing off %.1f s", status, rule or "no rule", seconds
        )
        if self.on_backoff is not None:
            try:
                self.on_backoff(self.backoff_until, rule)
            except Exception:  # a listener's bug must not turn a backoff into another error
                log.exception("back-off listener failed")
        raise CoordinatorBackoffError(
            f"the coordinator asked us to back off for {seconds:.1f} s ({rule or status})",
            until=self.backoff_until,
            status=status,
            rule=rule,
        )

    def last_scan(self, payload: RedactedBlob, what: str) -> RedactedBlob:
        """The egress gate's last scan: ``payload`` cleared to go, or EgressBlockedError."""
        vetted = self.redactor.vet(payload.data, enforce=self.enforce)
        if not vetted.kinds:
            return payload
        if vetted.blob is None:
            self.egress_blocked += 1
            log.warning("%s blocked: the last scan found %s", what, ", ".join(vetted.kinds))
            raise EgressBlockedError(what, vetted.kinds)
        self.egress_flagged += 1
        log.warning(
            "%s holds a secret (%s) and is sent: secrets.redaction.enforce is off",
            what,
            ", ".join(vetted.kinds),
        )
        return vetted.blob

    async def request_json(
        self, method: str, path: str, payload: RedactedBlob | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        """A control endpoint (`path` under the base URL), its JSON body last-scanned; 200 and
        404 are answers, anything else raises CoordinatorError."""
        headers = None
        if payload is not None:
            payload = self.last_scan(payload, f"{method} {path}")
            headers = {"Content-Type": "application/json"}
        status, resp, resp_headers = await self._request(
            method, f"{self.base_url}{path}", data=payload, headers=headers
        )
        if status not in (200, 404):
            raise _answer_error(f"{method} {path}", status, resp)
        return status, resp, resp_headers

    async def _post_json(self, method: str, path: str, payload: RedactedBlob, what: str) -> bytes:
        cleared = self.last_scan(payload, what)
        status, resp, _ = await self._request(
            method,
            f"{self.base_url}{path}",
            data=cleared,
            headers={"Content-Type": "application/json"},
        )
        if status != 200:
            raise _answer_error(what, status, resp)
        return resp

    async def ingest_telemetry(self, payload: RedactedBlob) -> None:
        """Send a redacted telemetry batch to the tenant's ingest endpoint (a RemoteSync
        telemetry transport: `RemoteSync(..., telemetry_transport=send_telemetry)`)."""
        await self._post_json(
            "POST", f"/v1/tenants/{self.tenant}/telemetry", payload, "POST telemetry"
        )

    async def post_decisions(self, payload: RedactedBlob) -> None:
        """Send policy decision records (``{"decisions": [...]}``, redacted) to the tenant."""
        await self._post_json(
            "POST", f"/v1/tenants/{self.tenant}/policy/decisions", payload, "POST policy decisions"
        )

    async def publish_team_model(self, meta: RedactedBlob) -> bytes:
        """Publish team model metadata (admin; its .skops already a CAS blob of the tenant)."""
        return await self._post_json(
            "PUT", f"/v1/tenants/{self.tenant}/model", meta, "PUT team model"
        )

    async def get(self, kind: Kind, hash_hex: str) -> bytes | None:
        """Entry bytes or None on a miss; CAS bodies are verified against `hash_hex`."""
        status, body, headers = await self._request(
            "GET", self._url(kind, hash_hex), headers={"Accept-Encoding": "zstd"}
        )
        if status == 404:
            return None
        if status != 200:
            raise _answer_error(f"GET {kind}/{hash_hex}", status, body)
        if headers.get("content-encoding", "").lower() == "zstd":
            try:
                body = zstandard.ZstdDecompressor().decompressobj().decompress(body)
            except zstandard.ZstdError as exc:
                raise IntegrityError(f"undecodable zstd body for {kind}/{hash_hex}") from exc
        if kind == "cas" and hashlib.sha256(body).hexdigest() != hash_hex.lower():
            raise IntegrityError(
                f"coordinator sent a blob that does not match {hash_hex}",
                hint="nothing was stored locally; the server or the network corrupted it",
            )
        return body

    async def head(self, kind: Kind, hash_hex: str) -> bool:
        status, _, _ = await self._request("HEAD", self._url(kind, hash_hex))
        if status in (200, 404):
            return status == 200
        raise CoordinatorError(f"HEAD {kind}/{hash_hex}: HTTP {status}", status=status)

    async def put(self, kind: Kind, hash_hex: str, data: RedactedBlob) -> None:
        """Upload an entry the caller cleared (RemoteSync.clear ran the last scan)."""
        status, resp, _ = await self._request(
            "PUT",
            self._url(kind, hash_hex),
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            compress=True,
        )
        if status != 200:
            raise _answer_error(f"PUT {kind}/{hash_hex}", status, resp)

    async def get_cas(self, digest: Digest | str) -> bytes | None:
        return await self.get("cas", digest.hash if isinstance(digest, Digest) else digest)

    async def has_cas(self, digest: Digest | str) -> bool:
        return await self.head("cas", digest.hash if isinstance(digest, Digest) else digest)

    async def put_cas(self, data: RedactedBlob) -> Digest:
        if not isinstance(data, RedactedBlob):
            raise TypeError("the coordinator client sends only a RedactedBlob")
        digest = digest_bytes(data.data)
        await self.put("cas", digest.hash, data)
        return digest

    async def get_ac(self, action_hex: str) -> bytes | None:
        return await self.get("ac", action_hex)

    async def put_ac(self, action_hex: str, value: RedactedBlob) -> None:
        await self.put("ac", action_hex, value)


async def send_telemetry(client: CoordinatorClient, payload: RedactedBlob) -> None:
    """Telemetry transport for RemoteSync: the coordinator's ingest endpoint."""
    await client.ingest_telemetry(payload)
