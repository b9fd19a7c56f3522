"""The coordinator's aiohttp application: Bazel HTTP cache layout per tenant, tokens, operations.

Request pipeline for `/<tenant>/{cas,ac}/<sha256>`:

    405 unless GET/HEAD/PUT -> 401 without valid credentials -> 403 if the caller's tenant is not
    the path's tenant (whether or not that tenant exists: errors never reveal another tenant) or
    the role cannot write -> 400 for a malformed digest -> the storage operation.

Shared state (tenants, keys, usage) comes from a StateBackend (state.py: embedded LMDB or
Redis) and entries from a BlobBackend (blobs.py: embedded LMDB or an upstream Bazel HTTP cache),
so several replicas can serve one team. LMDB writes and the hashing of large blobs run in a small
thread pool so a commit's fsync never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import zstandard
from aiohttp import web

import maestro
from maestro.errors import CoordinatorError

from . import accesslog, dashboard, flags_routes, team_model, telemetry
from .admission import PRIORITY_KEY, Gate
from .auth import (
    Authenticator,
    KeyringSource,
    Principal,
    SharedKeyringSource,
    TokenKeys,
    TokenRejectedError,
    credential_from_header,
    load_or_create_secret,
    new_key,
    token_keys_from_settings,
)
from .blobs import (
    INLINE_HASH_BYTES,
    UNKNOWN,
    BlobBackend,
    HttpBlobs,
    LmdbBlobs,
    SmallBlobCache,
    UpstreamError,
    sha256_of,
)
from .bodies import JSON_BODY_ERRORS, ApiError, json_body, json_reply
from .bulk_receive import TAKEN_OVER, BulkReceiver, Received
from .eviction import LruTracker, RedisLru, evict_for
from .hardening import (
    CLIENT_CLOSED,
    BytePacer,
    LoopSharePacer,
    SlowUploadError,
    is_client_abort,
    receive_body,
)
from .metrics import CONTENT_TYPE, Metrics, MetricsListener, sees_tenants
from .models import (
    ErrorBody,
    Health,
    KeyCreated,
    KeyCreateRequest,
    KeyInfo,
    TenantStatus,
    TokenRequest,
    TokenResponse,
)
from .openapi import (
    AUTH_ERRORS,
    BINARY,
    Operation,
    Response,
    err,
    openapi_document,
    operation,
    public_document,
)
from .records import AcRecord, KeyRecord, TenantRecord
from .settings import Settings
from .state import LmdbState, RedisState, StateBackend
from .store import AC, CAS, QuotaExceededError, StorageFullError, Store
from .validate import InvalidActionResultError, referenced_blobs

log = logging.getLogger(__name__)
T = TypeVar("T")

ENTRY_ROUTE = "/{tenant}/{kind:cas|ac}/{hash}"
ALLOWED = "GET, HEAD, PUT"
AC_FRAMING = 512  # an AC record's header and references beyond its value, generously
_HEX = frozenset("0123456789abcdef")


PRINCIPAL = web.RequestKey("principal", Principal)


def _is_backend_outage(exc: BaseException) -> bool:
    """Redis down or timing out: a 503 with Retry-After, not a 500."""
    return type(exc).__module__.startswith("redis") and type(exc).__name__ in (
        "ConnectionError",
        "TimeoutError",
        "BusyLoadingError",
        "MaxConnectionsError",
    )


AUTH_FAILURE = web.RequestKey("auth_failure", ApiError)


def _unauthorized(
    message: str = "missing or invalid credentials", *, hint: str | None = None
) -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        message,
        hint=hint
        or "exchange an API key at POST /v1/token and send `Authorization: Bearer <token>`",
        headers={"WWW-Authenticate": 'Bearer realm="maestro-coordinator"'},
    )


def _accepts_zstd(header: str | None) -> bool:
    if not header:
        return False
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() == "zstd":
            q = params.replace(" ", "").lower()
            return q not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


_ENTRY_NOUNS = {"cas": "a CAS blob", "ac": "an action-cache entry"}
_GET_ENTRY = Operation(
    "Read {noun}",
    "get_{kind}",
    {
        "200": Response(
            "Hit: its bytes.",
            content=BINARY,
            headers={
                "Content-Encoding": {
                    "description": "zstd when the client sent Accept-Encoding: zstd",
                    "schema": {"type": "string"},
                }
            },
        ),
        "400": err("Malformed digest."),
        **AUTH_ERRORS,
        "404": err("Miss."),
    },
    parameters=[{"name": "Accept-Encoding", "in": "header", "schema": {"type": "string"}}],
    nouns=_ENTRY_NOUNS,
)
_HEAD_ENTRY = Operation(
    "Check that {noun} exists",
    "head_{kind}",
    {
        "200": Response("Present; Content-Length is its size."),
        "400": Response("Malformed digest."),
        "401": Response("Unauthorized."),
        "403": Response("Forbidden."),
        "404": Response("Miss."),
    },
    nouns=_ENTRY_NOUNS,
)
_PUT_ENTRY = Operation(
    "Store {noun} (roles read-write, admin)",
    "put_{kind}",
    {
        "200": Response("Stored (or already present)."),
        "400": err(
            "Malformed digest, sha256 mismatch (nothing stored), bad zstd, or an invalid "
            "ActionResult."
        ),
        **AUTH_ERRORS,
        "411": err("Content-Length missing."),
        "413": err("Body over {max_blob_bytes} bytes."),
        "415": err("Unsupported Content-Encoding."),
        "507": err("Tenant quota or server storage exhausted."),
    },
    body=BINARY,
    parameters=[
        {
            "name": "Content-Encoding",
            "in": "header",
            "schema": {"type": "string", "enum": ["zstd", "identity"]},
        },
        {
            "name": "X-Digest-SizeBytes",
            "in": "header",
            "description": "uncompressed size (checked when present)",
            "schema": {"type": "integer", "minimum": 0},
        },
    ],
    nouns=_ENTRY_NOUNS,
)


class Coordinator:
    """Request handlers and their shared state (backends, authenticator, metrics, thread pool)."""

    def __init__(
        self,
        settings: Settings,
        state: StateBackend,
        blobs: BlobBackend,
        pool: ThreadPoolExecutor,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.state = state
        self.blobs = blobs
        self.metrics = Metrics()
        self.pool = pool
        self._clock = clock
        self._auth: Authenticator | None = None
        self._openapi: bytes | None = None
        blobs.on_corrupt = self._count_corrupt
        # Priority levels, fair queues and rate limits in front of the cache routes.
        self.lru = LruTracker()
        self.bulk_pacer: BytePacer | None = None
        if settings.bulk_upload_bytes_per_s:
            self.bulk_pacer = BytePacer(
                settings.bulk_upload_bytes_per_s,
                idle=self._bulk_unpaced if settings.bulk_upload_pace_idle_s else None,
            )
        elif settings.fairness and 0 < settings.bulk_loop_share < 1:
            self.bulk_pacer = LoopSharePacer(settings.bulk_loop_share, idle=self._interactive_idle)
        if self.bulk_pacer is not None:
            self.metrics.watch_pacer(self.bulk_pacer)
        self.bulk_receiver = (
            BulkReceiver(settings.bulk_receive_threads, nice=settings.bulk_receive_nice)
            if settings.bulk_receive_threads and settings.fairness
            else None
        )
        self.gate = Gate.from_settings(
            settings,
            self.metrics.registry,
            self.principal_or_none,
            frozenset(
                {ENTRY_ROUTE, "/v1/tenants/{tenant}/telemetry", "/v1/tenants/{tenant}/model"}
            ),
            redis=state.r if isinstance(state, RedisState) else None,
        )

    def _count_corrupt(self, tenant: Any, kind: str) -> None:
        self.metrics.corrupt.labels(tenant.name, kind).inc()

    async def start(self) -> None:
        """Resolve the token keys: configured, else a secret shared through the state backend
        (Redis: every replica gets the same one), else the local file."""
        keys: TokenKeys | KeyringSource | SharedKeyringSource | None = None
        refresh = None
        if not self.settings.token_keys and self.settings.token_secret is None:
            # keys rotated by `maestro coordinator key rotate`: the data dir's, or the keyring
            # the replicas share in the state backend
            shared = await self.state.token_secret()
            if shared is None:
                data_dir = self.settings.data_dir
                keys = KeyringSource(data_dir, load_or_create_secret(data_dir))
            else:
                changes = (
                    self.state.rotations_announced if isinstance(self.state, RedisState) else None
                )
                keys = SharedKeyringSource(self.state, shared, changes=changes)
                refresh = keys.refresh
        if isinstance(self.state, RedisState):
            self.state.start_invalidation()
        self._auth = Authenticator(
            self.state,
            keys or token_keys_from_settings(self.settings),
            ttl_s=self.settings.token_ttl_s,
            accept_api_keys=self.settings.accept_api_keys,
            clock=self._clock,
            refresh=refresh,
        )

    @property
    def auth(self) -> Authenticator:
        if self._auth is None:
            raise RuntimeError("Coordinator.start() has not run")
        return self._auth

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, func, *args)

    # -- middleware -------------------------------------------------------------------------

    @web.middleware
    async def observe(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Errors as JSON, metrics, access log; the only place that turns exceptions into 5xx."""
        start = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            try:
                response = await handler(request)
            except ApiError as exc:
                response = json_reply(exc.body, exc.status, exc.headers)
            except web.HTTPException as exc:
                code = exc.reason.lower().replace(" ", "_") if exc.reason else "http_error"
                response = json_reply(
                    ErrorBody(error=code, message=exc.reason or "error"),
                    exc.status,
                    {k: v for k, v in exc.headers.items() if k.lower() in ("allow",)},
                )
            except Exception as exc:
                if is_client_abort(exc):
                    self.metrics.client_aborts.inc()
                    log.info("client went away during %s %s: %s", request.method, request.path, exc)
                    response = json_reply(
                        ErrorBody(error="client_aborted", message="the client closed the request"),
                        CLIENT_CLOSED,
                    )
                elif _is_backend_outage(exc):
                    log.warning("state backend failure serving %s: %r", request.method, exc)
                    response = json_reply(
                        ErrorBody(
                            error="backend_unavailable",
                            message="the shared state backend does not answer",
                            hint="retry later",
                        ),
                        503,
                        {"Retry-After": "1"},
                    )
                else:
                    log.exception("unhandled error serving %s %s", request.method, request.path)
                    response = json_reply(
                        ErrorBody(
                            error="internal_error", message="internal error (see server log)"
                        ),
                        500,
                    )
        finally:
            self.metrics.in_flight.dec()
        if response.headers.get("Connection", "").lower() == "close" or request.get(TAKEN_OVER):
            response.force_close()
        elapsed = time.perf_counter() - start
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        method = self.metrics.method_label(request.method)
        self.metrics.requests.labels(route, method, str(response.status)).inc()
        self.metrics.latency.labels(route, method).observe(elapsed)
        if self.settings.access_log:
            principal = request.get(PRINCIPAL)
            accesslog.emit(
                accesslog.access_record(
                    method=request.method,
                    path=request.rel_url.path,
                    route=route,
                    status=response.status,
                    seconds=elapsed,
                    bytes_in=request.content_length or 0,
                    bytes_out=response.content_length or 0,
                    remote=request.remote,
                    user_agent=request.headers.get("User-Agent"),
                    tenant=principal.tenant.name if principal else None,
                    key_id=principal.key_id if principal else None,
                )
            )
        return response

    # -- auth -------------------------------------------------------------------------------

    async def principal_or_none(self, request: web.Request) -> Principal | None:
        """The caller, or None when it has no valid credentials (the handler then answers)."""
        try:
            return await self.authenticate(request)
        except ApiError:
            return None

    async def authenticate(self, request: web.Request) -> Principal:
        """Checked once per request: the admission gate and the handler share the answer."""
        known: Principal | None = request.get(PRINCIPAL)
        if known is not None:
            return known
        failed: ApiError | None = request.get(AUTH_FAILURE)
        if failed is not None:
            raise failed
        try:
            return await self._authenticate(request)
        except ApiError as exc:
            request[AUTH_FAILURE] = exc
            raise

    async def _authenticate(self, request: web.Request) -> Principal:
        credential = credential_from_header(request.headers.get("Authorization"))
        if credential is None:
            self.metrics.auth_failures.labels("missing").inc()
            raise _unauthorized("missing credentials")
        try:
            principal = await self.auth.check_bearer(credential)
        except TokenRejectedError as exc:
            self.metrics.auth_failures.labels(exc.reason).inc()
            raise _unauthorized(exc.message, hint=exc.hint) from None
        if principal is None:
            self.metrics.auth_failures.labels("invalid").inc()
            raise _unauthorized("invalid, expired or revoked credentials")
        request[PRINCIPAL] = principal
        return principal

    def _forbidden(self, message: str) -> ApiError:
        self.metrics.auth_failures.labels("forbidden").inc()
        return ApiError(403, "forbidden", message)

    async def tenant_principal(
        self, request: web.Request, *, write: bool = False, admin: bool = False
    ) -> Principal:
        """The caller, checked against the tenant its path names (its own when the path names
        none) and for the role the route needs."""
        principal = await self.authenticate(request)
        if principal.tenant.name != request.match_info.get("tenant", principal.tenant.name):
            raise self._forbidden("this credential does not grant access to that tenant")
        if admin and not principal.role.is_admin:
            raise self._forbidden("the admin role of this tenant is required")
        if write and not principal.role.can_write:
            raise self._forbidden(f"role {principal.role} cannot write")
        return principal

    # -- control endpoints ------------------------------------------------------------------

    @operation(
        post=Operation(
            "Exchange an API key for a short-lived bearer token",
            "create_token",
            {
                "200": Response("A token; refresh before expires_at.", TokenResponse),
                "400": err("Malformed body."),
                "401": err("Invalid or revoked API key."),
                "413": err("Body too large."),
            },
            auth=False,
            body=TokenRequest,
            body_required=False,
        )
    )
    async def token(self, request: web.Request) -> web.Response:
        """Exchange an API key (JSON body or Authorization header) for a short-lived token."""
        api_key: str | None = None
        if request.can_read_body:
            body = await json_body(
                request,
                TokenRequest,
                4096,
                "token requests are small JSON bodies",
                'a JSON body {"api_key": "mk_..."}',
            )
            api_key = body.api_key
        else:
            api_key = credential_from_header(request.headers.get("Authorization"))
        principal = await self.auth.check_key(api_key) if api_key else None
        if principal is None:
            self.metrics.auth_failures.labels("invalid").inc()
            raise _unauthorized("invalid or revoked API key")
        request[PRINCIPAL] = principal
        token, expires = self.auth.mint(principal)
        return json_reply(
            TokenResponse(
                token=token,
                expires_in=self.settings.token_ttl_s,
                expires_at=expires,
                tenant=principal.tenant.name,
                role=principal.role,
                key_id=principal.key_id,
            ),
            headers={"Cache-Control": "no-store"},
        )

    @operation(
        get=Operation(
            "Usage and quota of a tenant (admin role)",
            "tenant_status",
            {"200": Response("Usage.", TenantStatus), **AUTH_ERRORS},
        )
    )
    async def tenant_status(self, request: web.Request) -> web.Response:
        principal = await self.tenant_principal(request, admin=True)
        tenant = principal.tenant
        usage = await self.state.usage(tenant)
        return json_reply(
            TenantStatus(
                tenant=tenant.name,
                raw_ac=tenant.raw_ac,
                quota_bytes=tenant.quota_bytes,
                used_bytes=usage.bytes,
                cas_entries=usage.cas_entries,
                ac_entries=usage.ac_entries,
            )
        )

    @operation(
        post=Operation(
            "Create an API key of this tenant (admin role); shown once",
            "create_key",
            {"201": Response("The new key (store it now).", KeyCreated), **JSON_BODY_ERRORS},
            body=KeyCreateRequest,
        )
    )
    async def create_key(self, request: web.Request) -> web.Response:
        """An admin creates a key of its own tenant; the plaintext is in this response only."""
        principal = await self.tenant_principal(request, admin=True)
        body = await json_body(
            request,
            KeyCreateRequest,
            4096,
            "key requests are small JSON bodies",
            'a JSON body {"role": "read", "label": "..."}',
        )
        key = new_key(principal.tenant.name, body.role, body.label)
        await self.state.add_key(key.record)
        log.info("key created over HTTP: %s (tenant %s)", key.record.key_id, key.record.tenant)
        return json_reply(
            KeyCreated(api_key=key.plaintext, key=_key_info(key.record)),
            status=201,
            headers={"Cache-Control": "no-store"},
        )

    @operation(
        delete=Operation(
            "Revoke a key of this tenant (admin role), at once on every replica",
            "revoke_key",
            {
                "200": Response("The key, now revoked.", KeyInfo),
                **AUTH_ERRORS,
                "404": err("No such key in this tenant."),
            },
        )
    )
    async def revoke_key(self, request: web.Request) -> web.Response:
        """An admin revokes a key of its own tenant, effective at once on every replica."""
        principal = await self.tenant_principal(request, admin=True)
        key_id = request.match_info["key_id"]
        record = await self.state.get_key(key_id)
        if record is None or record.tenant != principal.tenant.name:
            raise ApiError(404, "not_found", "no such key in this tenant")
        record = await self.state.revoke_key(key_id)
        log.info("key revoked over HTTP: %s (tenant %s)", key_id, record.tenant)
        return json_reply(_key_info(record))

    @operation(
        get=Operation(
            "Liveness and store readability",
            "healthz",
            {
                "200": Response("Healthy.", Health),
                "503": err("A backend (Redis, the blob upstream) does not answer."),
            },
            auth=False,
        )
    )
    async def healthz(self, request: web.Request) -> web.Response:
        try:
            await self.state.ping()
            await self.blobs.ping()
        except Exception as exc:
            log.warning("health check failed: %r", exc)
            raise ApiError(503, "unhealthy", "a backend does not answer") from None
        return json_reply(Health(version=maestro.__version__))

    @operation(
        get=public_document(
            "Prometheus metrics",
            "metrics",
            "Prometheus text exposition format.",
            "text/plain",
            {"type": "string"},
        )
    )
    async def metrics_endpoint(self, request: web.Request) -> web.Response:
        tenants = sees_tenants(self.settings, request.headers.get("Authorization"))
        return web.Response(
            body=self.metrics.render(tenants=tenants), headers={"Content-Type": CONTENT_TYPE}
        )

    @operation(
        get=public_document(
            "This document",
            "openapi",
            "OpenAPI 3 document.",
            "application/json",
            {"type": "object"},
        )
    )
    async def openapi(self, request: web.Request) -> web.Response:
        if self._openapi is None:
            import json

            document = openapi_document(
                request.app.router, max_blob_bytes=self.settings.max_blob_bytes
            )
            self._openapi = json.dumps(document).encode()
        return web.Response(body=self._openapi, content_type="application/json")

    # -- cache entries ----------------------------------------------------------------------

    @operation(get=_GET_ENTRY, head=_HEAD_ENTRY, put=_PUT_ENTRY)
    async def entry(self, request: web.Request) -> web.StreamResponse:
        method = request.method
        if method not in ("GET", "HEAD", "PUT"):
            raise ApiError(
                405,
                "method_not_allowed",
                f"{method} is not supported here",
                headers={"Allow": ALLOWED},
            )
        principal = await self.authenticate(request)
        if principal.tenant.name != request.match_info["tenant"]:
            raise self._forbidden("this credential does not grant access to that path")
        if method == "PUT" and not principal.role.can_write:
            raise self._forbidden(f"role {principal.role} cannot write")
        hash_hex = request.match_info["hash"]
        if len(hash_hex) != 64 or not _HEX.issuperset(hash_hex):
            raise ApiError(
                400, "bad_digest", "expected a sha256 digest: 64 lowercase hexadecimal characters"
            )
        key = bytes.fromhex(hash_hex)
        kind = request.match_info["kind"]
        try:
            if method == "PUT":
                return await self._put(request, principal, kind, key)
            return await self._get(request, principal, kind, key, head=method == "HEAD")
        except UpstreamError as exc:
            log.warning("blob upstream failure: %s", exc.message)
            raise ApiError(
                502, exc.code, "the blob storage upstream failed", hint="retry later"
            ) from None

    async def _get(
        self, request: web.Request, principal: Principal, kind: str, key: bytes, *, head: bool
    ) -> web.StreamResponse:
        tenant = principal.tenant
        data: bytes | None = None
        stream = self.settings.stream_large_reads
        if kind == "cas" and not head and stream and isinstance(self.blobs, LmdbBlobs):
            size = self.blobs.store.cas_size(tenant, key)
            if size is not None and size > INLINE_HASH_BYTES:
                return await self._stream_cas(request, tenant, key)
        if kind == "cas" and head:
            size = await self.blobs.cas_size(tenant, key)  # presence by key, like bazel-remote
        else:
            # CAS: re-hashed by the backend on every read; AC: checksum + referenced blobs.
            if kind == "cas":
                data = await self.blobs.get_cas(tenant, key)
            else:
                data = await self.blobs.get_ac(tenant, key)
            size = len(data) if data is not None else None
        if size is None:
            self.metrics.misses.labels(tenant.name, kind).inc()
            raise ApiError(404, "not_found", f"no such {kind} entry")
        self.metrics.hits.labels(tenant.name, kind).inc()
        self.lru.touch(tenant, CAS if kind == "cas" else AC, key)
        headers = {"Content-Type": "application/octet-stream"}
        if head:
            headers["Content-Length"] = str(size)
            return web.Response(status=200, headers=headers)
        assert data is not None
        body = data
        if len(data) >= self.settings.zstd_min_bytes and _accepts_zstd(
            request.headers.get("Accept-Encoding")
        ):
            body = await self.run(self._compress, data)
            headers["Content-Encoding"] = "zstd"
            headers["X-Digest-SizeBytes"] = str(len(data))
            headers["Vary"] = "Accept-Encoding"
        self.metrics.bytes_out.labels(tenant.name, kind).inc(len(body))
        if len(body) <= INLINE_HASH_BYTES or not stream:
            return web.Response(body=body, headers=headers)
        # Large bodies: written straight to the transport (web.Response joins headers and body)
        response = web.StreamResponse(headers=headers)
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body)
        await response.write_eof()
        return response

    async def _stream_cas(
        self, request: web.Request, tenant: TenantRecord, key: bytes
    ) -> web.StreamResponse:
        """A large embedded blob: verified in the pool, sent from the LMDB map without a copy."""
        assert isinstance(self.blobs, LmdbBlobs)
        view = await self.blobs.open_cas(tenant, key)
        if view is None:
            self.metrics.misses.labels(tenant.name, "cas").inc()
            raise ApiError(404, "not_found", "no such cas entry")
        try:
            self.metrics.hits.labels(tenant.name, "cas").inc()
            self.lru.touch(tenant, CAS, key)
            body: bytes | memoryview = view.data
            response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
            if len(body) >= self.settings.zstd_min_bytes and _accepts_zstd(
                request.headers.get("Accept-Encoding")
            ):
                raw_size = len(body)
                body = await self.run(self._compress, body)
                response.headers["Content-Encoding"] = "zstd"
                response.headers["X-Digest-SizeBytes"] = str(raw_size)
                response.headers["Vary"] = "Accept-Encoding"
            response.content_length = len(body)
            await response.prepare(request)
            await response.write(body)
            await response.write_eof()
            self.metrics.bytes_out.labels(tenant.name, "cas").inc(len(body))
            return response
        finally:
            view.close()

    def _compress(self, data: bytes | memoryview) -> bytes:
        compressed: bytes = zstandard.ZstdCompressor(level=self.settings.zstd_level).compress(data)
        return compressed

    def _decompress(self, body: bytes | bytearray) -> bytes:
        limit = self.settings.max_blob_bytes
        try:
            reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body))
            data = reader.read(limit + 1)
        except zstandard.ZstdError as exc:
            raise ApiError(400, "bad_encoding", f"invalid zstd body: {exc}") from None
        if len(data) > limit:
            raise ApiError(
                413, "too_large", f"decompressed body exceeds the {limit}-byte blob limit"
            )
        return bytes(data)

    def _body_length(self, request: web.Request) -> int:
        length = request.content_length
        if length is None:
            raise ApiError(
                411, "length_required", "PUT requires Content-Length (chunked uploads refused)"
            )
        limit = self.settings.max_blob_bytes
        if length > limit:
            raise ApiError(413, "too_large", f"body of {length} bytes exceeds the {limit} limit")
        return length

    def _bulk_unpaced(self) -> bool:
        """Bulk bodies need no pacing: no interactive request for `bulk_upload_pace_idle_s`."""
        idle_s = self.settings.bulk_upload_pace_idle_s
        return idle_s is not None and self.gate.interactive_quiet(idle_s)

    def _interactive_idle(self) -> bool:
        """No interactive request for `bulk_loop_share_idle_s`: bulk bodies need no pacing."""
        return self.gate.interactive_quiet(self.settings.bulk_loop_share_idle_s)

    def _body_reading(self, request: web.Request) -> dict[str, Any]:
        settings = self.settings
        pacer = self.bulk_pacer
        held_back = self.gate.bulk
        bulk = request.get(PRIORITY_KEY, "interactive") != "interactive"
        return {
            "chunk_timeout_s": settings.body_read_timeout_s,
            "min_bytes_per_s": settings.min_upload_bytes_per_s,
            "grace_s": settings.upload_grace_s,
            "pace": pacer.take if bulk and pacer is not None else None,
            "before": held_back.wait if bulk and held_back is not None else None,
        }

    async def _held_size(
        self, request: web.Request, tenant: TenantRecord, key: bytes
    ) -> int | None:
        """The size of the blob this CAS upload names, as held for the tenant (None: absent),
        or UNKNOWN when the request announces no uncompressed size to compare it with. A blob
        held at the announced size need not be kept, hashed or written again (a CI farm
        re-uploading its outputs): what is stored was verified when written and is re-hashed
        on every read (a corrupt copy is dropped then, and the next upload stores it again)."""
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        declared = request.headers.get("X-Digest-SizeBytes")
        if encoding in ("identity", ""):
            size = request.content_length
            if declared is not None and declared.strip() != str(size):
                return UNKNOWN  # refused as a size mismatch by the full path
        elif encoding == "zstd" and declared is not None and declared.strip().isdigit():
            size = int(declared)
        else:
            return UNKNOWN
        if size is None:
            return UNKNOWN
        return await self.blobs.cas_size(tenant, key)

    async def _receive(
        self, request: web.Request, length: int, sink: Callable[[bytes], object] | None
    ) -> None:
        """The whole body into `sink` (None: dropped), or the API error that ends the upload."""
        try:
            received = await receive_body(request, length, sink, **self._body_reading(request))
        except SlowUploadError as exc:
            raise ApiError(
                408, exc.code, exc.message, hint=exc.hint, headers={"Connection": "close"}
            ) from None
        if received != length:
            raise ApiError(400, "bad_request", "body shorter than Content-Length")

    def _off_loop(self, request: web.Request, length: int) -> BulkReceiver | None:
        """The receiver for a large upload body of a bulk level (None: read it on the loop)."""
        receiver = self.bulk_receiver
        if receiver is None or request.get(PRIORITY_KEY, "interactive") == "interactive":
            return None
        return receiver if receiver.can_take(request, length) else None

    async def _receive_off_loop(
        self, receiver: BulkReceiver, request: web.Request, length: int, *, keep: bool
    ) -> Received | None:
        settings = self.settings
        pacer = self.bulk_pacer
        try:
            return await receiver.receive(
                request,
                length,
                keep=keep,
                chunk_timeout_s=settings.body_read_timeout_s,
                min_bytes_per_s=settings.min_upload_bytes_per_s,
                grace_s=settings.upload_grace_s,
                pace=pacer.reserve if pacer is not None else None,
            )
        except SlowUploadError as exc:
            raise ApiError(
                408, exc.code, exc.message, hint=exc.hint, headers={"Connection": "close"}
            ) from None

    async def _drop_body(self, request: web.Request, length: int) -> None:
        receiver = self._off_loop(request, length)
        if receiver is None or not await self._receive_off_loop(
            receiver, request, length, keep=False
        ):
            await self._receive(request, length, None)

    async def _read_body(
        self, request: web.Request, *, off_loop: bool = False
    ) -> tuple[bytes | bytearray, bytes | None]:
        """The decoded body, and its sha256 when a receiver thread hashed it on the way in."""
        length = self._body_length(request)
        receiver = self._off_loop(request, length) if off_loop else None
        got = (
            await self._receive_off_loop(receiver, request, length, keep=True) if receiver else None
        )
        body: bytes | bytearray
        digest: bytes | None = None
        if got is not None:
            assert got.body is not None
            body, digest = got.body, got.sha256
        else:
            # joined once at the end: a bytearray grown chunk by chunk is reallocated (and its
            # pages faulted in afresh) over and over on the event loop
            chunks: list[bytes] = []
            await self._receive(request, length, chunks.append)
            body = b"".join(chunks)
        data: bytes | bytearray
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding == "zstd":
            data, digest = await self.run(self._decompress, body), None
        elif encoding in ("identity", ""):
            data = body
        else:
            raise ApiError(
                415, "unsupported_encoding", f"Content-Encoding {encoding!r}: use zstd or none"
            )
        declared = request.headers.get("X-Digest-SizeBytes")
        if declared is not None and declared.strip() != str(len(data)):
            raise ApiError(
                400, "size_mismatch", "X-Digest-SizeBytes differs from the uncompressed size"
            )
        return data, digest

    async def _put(
        self, request: web.Request, principal: Principal, kind: str, key: bytes
    ) -> web.Response:
        tenant = principal.tenant
        held: int | None = UNKNOWN
        if kind == "cas":
            length = self._body_length(request)
            held = await self._held_size(request, tenant, key)
            announced = request.headers.get("X-Digest-SizeBytes", str(length)).strip()
            if held is not None and held != UNKNOWN and str(held) == announced:
                await self._drop_body(request, length)
                self.metrics.bytes_in.labels(tenant.name, kind).inc(length)  # as received
                self.lru.touch(tenant, CAS, key)
                return web.Response(status=200)
        data, digest = await self._read_body(request, off_loop=kind == "cas")

        async def write() -> None:
            if kind == "cas":
                actual = digest if digest is not None else await sha256_of(data, self.pool)
                if actual != key:
                    raise ApiError(
                        400,
                        "digest_mismatch",
                        f"body hashes to {actual.hex()}, not the digest in the path",
                        hint="nothing was stored; the upload was truncated or altered",
                    )
                # the size asked above: no second presence check upstream (not after an
                # eviction, which may have removed it)
                await self.blobs.put_cas(tenant, key, data, held if not evicted else UNKNOWN)
            else:
                value = data if isinstance(data, bytes) else bytes(data)
                if tenant.raw_ac:
                    record = AcRecord(raw=True, value=value, refs=())
                else:
                    try:
                        refs = referenced_blobs(value)
                    except InvalidActionResultError as exc:
                        raise ApiError(
                            400,
                            "invalid_action_result",
                            f"not a Maestro ActionResult: {exc}"[:500],
                            hint="tenants of opaque clients (ccache, bazel) need raw AC mode: "
                            "maestro coordinator tenant set NAME --raw-ac",
                        ) from None
                    record = AcRecord(raw=False, value=value, refs=refs)
                await self.blobs.put_ac(tenant, key, record)

        evicted = False
        try:
            try:
                await write()
            except QuotaExceededError as exc:
                if not await self._evict_for(tenant, exc, len(data)):
                    raise
                evicted = True
                await write()
        except QuotaExceededError as exc:
            self.metrics.quota_rejections.labels(tenant.name).inc()
            raise ApiError(507, exc.code, exc.message, hint=exc.hint) from None
        except StorageFullError as exc:
            raise ApiError(507, exc.code, exc.message, hint=exc.hint) from None
        except UpstreamError:
            raise
        except CoordinatorError as exc:
            raise ApiError(409, exc.code, exc.message, hint=exc.hint) from None
        self.metrics.bytes_in.labels(tenant.name, kind).inc(len(data))
        self.lru.touch(tenant, CAS if kind == "cas" else AC, key)
        return web.Response(status=200)

    async def _evict_for(self, tenant: TenantRecord, exc: QuotaExceededError, size: int) -> bool:
        """Make room for `size` bytes by LRU eviction when the tenant's policy allows it."""
        upstream = isinstance(self.blobs, HttpBlobs) and self.blobs.lru is not None
        if not (upstream or isinstance(self.blobs, LmdbBlobs)):
            return False
        if not self.gate.resolve(tenant).evict:
            return False
        incoming = size + AC_FRAMING
        if incoming > exc.quota:
            return False  # would not fit in an empty tenant either
        need = exc.used + incoming - exc.quota
        if isinstance(self.blobs, HttpBlobs):
            freed = await self.blobs.evict(tenant, need)
        else:
            assert isinstance(self.blobs, LmdbBlobs)
            freed = await self.run(evict_for, self.blobs.store, self.lru, tenant, need)
        self.metrics.evicted_bytes.labels(tenant.name).inc(freed)
        return freed >= need


STATE = web.AppKey("coordinator", Coordinator)
FLAG_ROUTES = web.AppKey("flag_routes", flags_routes.TenantFlagRoutes)
METRICS_LISTENER = web.AppKey("metrics_listener", MetricsListener)

RUNNER_KWARGS: dict[str, Any] = {"auto_decompress": False, "access_log": None}
"""Pass to `web.AppRunner` (or `web.run_app`) serving this app. `auto_decompress=False` is
required: aiohttp would otherwise decode request bodies itself (refusing zstd without an extra
package, and applying its own rules to gzip), while the coordinator decodes zstd with its own
size limit and refuses other encodings with 415. Our access log replaces aiohttp's."""


def _key_info(record: KeyRecord) -> KeyInfo:
    """The record's public fields (KeyInfo declares no secret, so none is read)."""
    return KeyInfo.model_validate(record, from_attributes=True)


def _recording(settings: Settings) -> list[Any]:
    if settings.record_requests_dir is None:
        return []
    from .recording import recording_middleware

    return [recording_middleware(settings.record_requests_dir)]


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    state: StateBackend | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """Build the app from the settings' backends.

    `store` (an open embedded store) and `state` stay owned by the caller; whatever this opens
    itself is closed on app cleanup. The embedded store is opened under `settings.data_dir/store`
    only when a backend needs it.
    """
    pool = ThreadPoolExecutor(settings.io_threads, thread_name_prefix="coord-io")
    owned_store = False
    owned_state = state is None
    needs_store = settings.blob_backend == "lmdb" or (
        state is None and settings.state_backend == "lmdb"
    )
    if store is None and needs_store:
        store = Store(settings.data_dir / "store", map_size=settings.map_size_bytes)
        owned_store = True
    if state is None:
        if settings.state_backend == "redis":
            assert settings.redis_url is not None  # validated by Settings
            state = RedisState.from_url(
                settings.redis_url, settings.redis_prefix, cache_ttl_s=settings.record_cache_ttl_s
            )
        else:
            assert store is not None
            state = LmdbState(store)
    blobs: BlobBackend
    if settings.blob_backend == "http":
        assert settings.blob_upstream_url is not None
        blobs = HttpBlobs(
            settings.blob_upstream_url,
            state,
            pool,
            timeout_s=settings.blob_upstream_timeout_s,
            max_connections=max(16, settings.io_threads * 8),
            small_blobs=(
                SmallBlobCache(
                    settings.small_blob_cache_bytes, ttl_s=settings.small_blob_cache_ttl_s
                )
                if settings.small_blob_cache_bytes and settings.small_blob_cache_ttl_s
                else None
            ),
        )
        if settings.upstream_eviction and isinstance(state, RedisState):
            blobs.lru = RedisLru(state.r, state.p)
    else:
        assert store is not None
        blobs = LmdbBlobs(store, pool)
    coordinator = Coordinator(settings, state, blobs, pool, clock)
    # +1 so our own Content-Length check, with its clearer message, answers first.
    app = web.Application(
        middlewares=[*_recording(settings), coordinator.observe, coordinator.gate.middleware],
        client_max_size=settings.max_blob_bytes + 1,
    )
    app[STATE] = coordinator
    app.router.add_post("/v1/token", coordinator.token)
    app.router.add_get("/v1/tenants/{tenant}", coordinator.tenant_status)
    app.router.add_post("/v1/tenants/{tenant}/keys", coordinator.create_key)
    app.router.add_delete("/v1/tenants/{tenant}/keys/{key_id}", coordinator.revoke_key)
    app[FLAG_ROUTES] = flags_routes.add_routes(app, coordinator)
    telemetry.add_routes(app, coordinator)
    team_model.add_routes(app, coordinator)
    dashboard.add_routes(app, coordinator)
    app.router.add_get("/healthz", coordinator.healthz)
    app.router.add_get("/metrics", coordinator.metrics_endpoint)
    app.router.add_get("/openapi.json", coordinator.openapi)
    app.router.add_route("*", ENTRY_ROUTE, coordinator.entry)
    from .policy_routes import add_routes as add_policy_routes  # it imports this module

    add_policy_routes(app, coordinator)

    listener: list[MetricsListener] = []

    async def startup(app: web.Application) -> None:
        await coordinator.start()
        coordinator.gate.start()
        if isinstance(coordinator.bulk_pacer, LoopSharePacer):
            coordinator.bulk_pacer.start()
        if settings.metrics_port is not None:
            metrics = MetricsListener(
                coordinator.metrics, settings.metrics_host, settings.metrics_port
            )
            await metrics.start()
            listener.append(metrics)
            app[METRICS_LISTENER] = metrics

    async def cleanup(app: web.Application) -> None:
        for metrics in listener:
            await metrics.stop()
        await coordinator.gate.close()
        if isinstance(coordinator.bulk_pacer, LoopSharePacer):
            await coordinator.bulk_pacer.close()
        if coordinator.bulk_receiver is not None:
            coordinator.bulk_receiver.close()
        await coordinator.blobs.close()
        if owned_state:
            await coordinator.state.close()
        pool.shutdown(wait=True)
        if owned_store and store is not None:
            store.close()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    return app
