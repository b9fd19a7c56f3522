"""Coordinator configuration: defaults < TOML file < MAESTRO_COORDINATOR_* env < CLI flags.

One pydantic model validates all four sources, so a typo in a file key, an out-of-range TTL or a
non-numeric port from the environment fails at startup with the offending source named, instead
of surfacing as a confusing runtime error later.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from maestro.cache.sizes import size_field
from maestro.errors import ConfigError

from .tenancy import DEFAULT_SHARES, PRIORITY_CLASSES, TenantPolicies, TenantPolicy

ENV_PREFIX = "MAESTRO_COORDINATOR_"
MAX_TOKEN_TTL_S = 900
"""Tokens live at most 15 minutes: a leaked token is worth little, revocation is checked anyway."""


ByteSize = Annotated[int, BeforeValidator(size_field)]


def _pairs(value: Any) -> Any:
    """`kid=secret,kid=secret` from the environment; tables from TOML pass through."""
    if not isinstance(value, str):
        return value
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        kid, sep, secret = item.partition("=")
        if not sep or not kid.strip() or not secret:
            raise ValueError("expected kid=secret pairs separated by commas")
        pairs[kid.strip()] = secret
    return pairs


def _names(value: Any) -> Any:
    """`a,b` from the environment; TOML arrays pass through."""
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    return value


def default_data_dir() -> Path:
    """`$MAESTRO_STATE_DIR/coordinator` or the platform user data dir's."""
    from maestro.paths import data_dir

    return data_dir() / "coordinator"


class Settings(BaseModel):
    """Everything `maestro coordinator serve` can be told; field names are the TOML/env keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8980, ge=0, le=65535, description="0 picks a free port")
    data_dir: Path = Field(default_factory=default_data_dir)
    token_ttl_s: int = Field(default=600, ge=5, le=MAX_TOKEN_TTL_S)
    max_blob_bytes: ByteSize = Field(default=256 << 20, ge=1, le=4 << 30)
    """Largest accepted PUT body, compressed or not (413 above it); LMDB holds values in memory."""
    accept_api_keys: bool = True
    """Let clients that cannot refresh tokens (bazel, ccache) send an API key as the bearer."""
    zstd_level: int = Field(default=3, ge=1, le=19)
    zstd_min_bytes: ByteSize = Field(default=1024, ge=0)
    """Blobs smaller than this are sent uncompressed even when the client accepts zstd."""
    io_threads: int = Field(default=8, ge=1, le=256)
    map_size_bytes: ByteSize = Field(default=1 << 40, ge=1 << 20)
    """LMDB address space; a full map answers 507. Costs nothing on 64-bit until pages are used."""
    token_secret: SecretStr | None = None
    """HMAC key for tokens (key id `default`, at least 32 bytes); default a random secret kept
    in `<data_dir>/token-secret` (0600), or shared through Redis."""
    token_keys: Annotated[dict[str, SecretStr], BeforeValidator(_pairs)] = Field(
        default_factory=dict
    )
    """Key rotation: every HMAC key that verifies tokens, by key id (`kid`)."""
    token_signing_kid: str | None = None
    """Which of `token_keys` signs new tokens (needed when there are several)."""
    token_retired_kids: Annotated[list[str], BeforeValidator(_names)] = Field(default_factory=list)
    """Key ids whose tokens are refused with a "retired key" error."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True
    stream_large_reads: bool = True
    """Send CAS blobs over 256 KiB straight from the LMDB map (verified in place) with a
    streamed response; false = copy them out first (for A/B benchmarks)."""
    state_backend: Literal["lmdb", "redis"] = "lmdb"
    """Tenants, keys (revocation) and usage: embedded LMDB, or Redis shared by replicas."""
    redis_url: str | None = None
    """e.g. redis://127.0.0.1:6379/0 (state_backend = "redis")."""
    redis_prefix: str = Field(default="maestro:coord:", min_length=1, max_length=100)
    record_cache_ttl_s: float = Field(default=1.0, ge=0.0, le=30.0)
    """Replicas (Redis state): how long a key or tenant record read from Redis may be used
    without reading it again. A revoked key is refused at once by the replica that revoked it,
    by the others when the invalidation arrives (milliseconds), and at the latest after this
    long. 0 reads both records on every request."""
    blob_backend: Literal["lmdb", "http"] = "lmdb"
    """Entries: embedded LMDB, or an upstream Bazel-HTTP-cache server (blob_upstream_url)."""
    blob_upstream_url: str | None = None
    """e.g. http://127.0.0.1:8080/cache (bazel-remote with --disable_http_ac_validation, or a
    WebDAV PUT server such as nginx)."""
    blob_upstream_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    small_blob_cache_bytes: ByteSize = Field(default=32 << 20, ge=0)
    """Replicas (blob upstream): memory for CAS blobs of at most 64 KiB read from the upstream,
    hash-checked, kept up to `small_blob_cache_ttl_s` (0: every read goes upstream)."""
    small_blob_cache_ttl_s: float = Field(default=5.0, ge=0.0, le=300.0)
    upstream_eviction: bool = True
    """Replicas (Redis state, blob upstream): at a tenant's quota, delete its least recently
    used entries from the upstream to make room (tenant policy `evict`), as the embedded store
    does, instead of answering 507 (false: 507). Recency and sizes are kept in Redis; entries
    written before it was turned on are never evicted."""
    metrics_token: SecretStr | None = Field(default=None, min_length=16)
    """Bearer token that sees /metrics whole, tenant-labelled series included (Prometheus:
    `authorization: {credentials: ...}`); without it /metrics leaves out every tenant name."""
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """A separate listener serving the whole /metrics without credentials (0: any free port);
    bind it where only the monitoring system reaches (`metrics_host`)."""
    metrics_host: str = "127.0.0.1"
    metrics_public: bool = False
    """Everyone sees /metrics whole, tenant names included (trusted networks, tests)."""
    record_requests_dir: Path | None = None
    """Test-only: write every request body received to a file in this directory (red-team
    checks that nothing secret arrives). Never set it on a real server: bodies are kept."""

    # -- tenancy, admission, rate limits (docs/coordinator.md#fairness-and-limits) ------------
    tenants: TenantPolicies = Field(default_factory=dict)
    """Per-tenant policies by name ([tenants.NAME] tables); a policy stored with
    `maestro coordinator tenant set` takes precedence."""
    default_tenant_policy: TenantPolicy = Field(default_factory=TenantPolicy)
    fairness: bool = True
    """Priority levels and fair per-tenant queues in front of the cache routes; false serves
    every request at once, in arrival order (for A/B benchmarks)."""
    concurrency: int = Field(default=48, ge=4, le=100_000)
    """Requests served at once by one replica, split between the priority levels by share."""
    priority_shares: Annotated[dict[str, int], BeforeValidator(_pairs)] = Field(
        default_factory=lambda: dict(DEFAULT_SHARES)
    )
    queues_per_level: int = Field(default=64, ge=1, le=4096)
    queue_hand_size: int = Field(default=6, ge=1, le=64)
    """Shuffle sharding: a tenant is dealt this many of its level's queues and joins the
    shortest, so one heavy tenant fills few queues and rarely all of anyone else's."""
    queue_length: int = Field(default=32, ge=1, le=100_000)
    """Requests one queue holds; beyond it the request is refused at once (429)."""
    max_queue_wait_s: float = Field(default=5.0, gt=0, le=600)
    """Wait budget in a queue; a request still queued after it is refused (429)."""
    concurrency_lease_s: float = Field(default=10.0, ge=0.5, le=600)
    """Replicas (Redis state): a replica renews its hold on tenants' cluster-wide
    `max_concurrent` seats every third of this; the seats of a replica that died come back
    after at most this long."""
    rate_limits: Literal["off", "shadow", "enforce"] = "shadow"
    """Rate limits: shadow counts and logs would-be refusals; enforce answers them with 429."""
    global_rate_per_s: float | None = Field(default=None, gt=0)
    token_rate_per_s: float | None = Field(default=None, gt=0)
    """Per API key (every token minted from one key shares it)."""

    # -- policy (docs/policy.md#team-bundles) ------------------------------------------------
    policy_bundle_keys: Annotated[dict[str, Path], BeforeValidator(_pairs)] = Field(
        default_factory=dict
    )
    """Public keys (PEM files, by key id) trusted to sign every tenant's policy bundle; two
    at once while keys rotate. With trusted keys, a published bundle is verified (signature,
    expiry, rollback, compiles) before it is served, and the tenant's refusals evaluate it."""
    policy_tenant_bundle_keys: dict[str, dict[str, Path]] = Field(default_factory=dict)
    """Per tenant ([policy_tenant_bundle_keys.NAME] kid = "path"), trusted for that tenant
    besides `policy_bundle_keys`."""

    # -- connection hardening ----------------------------------------------------------------
    header_timeout_s: float = Field(default=15.0, gt=0, le=3600)
    """A connection must deliver a complete request head within this after it opens or after
    its previous response; otherwise (slowloris, or simply idle) it is closed."""
    body_read_timeout_s: float = Field(default=15.0, gt=0, le=3600)
    """Longest pause between two chunks of an upload."""
    min_upload_bytes_per_s: int = Field(default=1024, ge=0)
    """After `upload_grace_s`, an upload slower than this on average is cut (408)."""
    upload_grace_s: float = Field(default=5.0, ge=0, le=3600)
    max_connections_per_client: int = Field(default=512, ge=1, le=1_000_000)
    """Open connections from one client address; beyond it new ones are closed at once."""
    gc_young_threshold: int = Field(default=50_000, ge=0, le=10_000_000)
    """`coordinator serve`: allocations between two collections of the garbage collector's
    youngest generation (Python's default is 700), with the objects made at start frozen out
    of every collection. At the default, a request's short-lived objects are often still alive
    at a collection and are promoted to the older generations; their full collections then
    traverse every held connection and stop the event loop each time. 0: the interpreter's
    own settings."""
    bulk_upload_bytes_per_s: ByteSize | None = Field(default=None, ge=64 << 10)
    """Per replica: how fast upload bodies of the levels below `interactive` are read, all
    together (a token bucket; the rest waits in TCP buffers). Keeps bulk uploads from holding
    the event loop while interactive requests wait; unset: as fast as they arrive."""
    bulk_upload_pace_idle_s: float | None = Field(default=None, gt=0, le=3600)
    """With `bulk_upload_bytes_per_s`: pace only while interactive requests come in; once none
    has reached the cache routes for this long, bulk bodies are read at full speed (unset:
    always paced)."""
    bulk_loop_share: float = Field(default=0.25, ge=0, le=1)
    """With fairness on and no `bulk_upload_bytes_per_s`: while interactive requests come in,
    upload bodies of the levels below `interactive` are read only as fast as keeps the event
    loop busy at most this share of the time (the rate adapts every 20 ms, never below
    8 MiB/s); 0 or 1: not paced."""
    bulk_loop_share_idle_s: float = Field(default=1.0, gt=0, le=3600)
    """With `bulk_loop_share`: once no interactive request has reached the cache routes for
    this long, bulk bodies are read at full speed."""
    bulk_receive_threads: int = Field(default=0, ge=0, le=256)
    """With fairness on: threads that receive large upload bodies (at least 256 KiB) of the
    levels below `interactive` straight from their sockets, off the event loop that serves
    interactive requests; such an upload's connection closes after its answer. 0: every body
    is received on the event loop."""
    bulk_receive_nice: int = Field(default=0, ge=0, le=19)
    """How many nice steps below the server's own priority the receiver threads run. Above 0 a
    host short of CPU runs the event loop before them, but a receiver thread preempted while it
    holds the GIL then stalls the loop until it runs again."""
    bulk_yield_max_s: float = Field(default=0.0, ge=0, le=5)
    """With fairness on: while an `interactive` request with no body or a small one (at most
    64 KiB) is being served, upload bodies of the levels below `interactive` are not read, for
    at most this long per chunk (one socket read, at most 256 KiB) of each (e.g. 0.05); 0 (the
    default): never held back."""

    @model_validator(mode="after")
    def _backends(self) -> Settings:
        if self.state_backend == "redis" and not self.redis_url:
            raise ValueError('state_backend = "redis" needs redis_url')
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must start with redis://, rediss:// or unix://")
        if self.blob_backend == "http" and not self.blob_upstream_url:
            raise ValueError('blob_backend = "http" needs blob_upstream_url')
        if self.blob_upstream_url and not self.blob_upstream_url.startswith(
            ("http://", "https://")
        ):
            raise ValueError("blob_upstream_url must be an http:// or https:// URL")
        if self.token_keys and self.token_secret is not None:
            raise ValueError(
                "set token_secret or token_keys, not both (token_secret is the key `default`)"
            )
        if self.token_signing_kid is not None and not self.token_keys:
            raise ValueError("token_signing_kid names one of token_keys, which is empty")
        if len(self.token_keys) > 1 and self.token_signing_kid is None:
            raise ValueError("several token_keys need token_signing_kid to say which one signs")
        if self.token_keys or self.token_secret is not None:
            from .auth import token_keys_from_settings

            token_keys_from_settings(self)  # key ids, lengths, signing key, retired overlap
        unknown = set(self.priority_shares) - set(PRIORITY_CLASSES)
        if unknown or any(v < 1 for v in self.priority_shares.values()):
            raise ValueError(
                f"priority_shares: positive shares for {', '.join(PRIORITY_CLASSES)} only"
            )
        if self.bulk_upload_pace_idle_s is not None and not self.bulk_upload_bytes_per_s:
            raise ValueError(
                "bulk_upload_pace_idle_s needs bulk_upload_bytes_per_s (the rate to pace bulk "
                "uploads at while interactive requests come in)"
            )
        if self.state_backend == "redis" and self.blob_backend == "lmdb":
            raise ValueError(
                'state_backend = "redis" (replicas) needs blob_backend = "http": replicas '
                "cannot share an embedded LMDB store"
            )
        return self


def _from_env(environ: Mapping[str, str]) -> dict[str, str]:
    names = {name.upper(): name for name in Settings.model_fields}
    found: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :]
            if name not in names:
                raise ConfigError(
                    f"unknown setting {key}",
                    hint=f"known: {', '.join(ENV_PREFIX + n for n in sorted(names))}",
                )
            found[names[name]] = value
    return found


def _format(exc: ValidationError, source: str) -> str:
    lines = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"]) or "(root)"
        lines.append(f"{loc}: {error['msg']}")
    return f"invalid coordinator settings ({source}): " + "; ".join(lines)


def load_settings(
    config_file: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge the sources in precedence order and validate once; raise ConfigError on problems."""
    merged: dict[str, Any] = {}
    sources: list[str] = []
    if config_file is not None:
        try:
            merged.update(tomllib.loads(config_file.read_text(encoding="utf-8")))
        except OSError as exc:
            raise ConfigError(f"cannot read {config_file}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_file} is not valid TOML: {exc}") from exc
        sources.append(str(config_file))
    env = _from_env(os.environ if environ is None else environ)
    if env:
        sources.append("environment")
    merged.update(env)
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(
            _format(exc, ", ".join(sources) or "defaults"),
            hint="see docs/coordinator.md#configuration",
        ) from None
