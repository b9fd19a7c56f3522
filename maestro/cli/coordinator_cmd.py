"""`maestro coordinator ...`: run the remote cache server and administer its tenants and keys.

Admin commands change the state the servers read: the data directory directly (LMDB allows
several processes), or with `state_backend = "redis"` the replicas' Redis (a change is announced
to every replica at once). They work while the servers run, and a revocation is effective on the
very next request. They need access to the data dir or to Redis: that *is* the operator's
credential.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from maestro.cli.common import JSON_OPTION, fail_on_error

if TYPE_CHECKING:
    from maestro.coordinator.auth import Rotation
    from maestro.coordinator.records import TenantRecord
    from maestro.coordinator.settings import Settings
    from maestro.coordinator.state import RedisState, StateBackend
    from maestro.coordinator.store import Store, Usage

T = TypeVar("T")

coordinator_app = typer.Typer(
    help="The remote coordinator: a multi-tenant Bazel-HTTP-compatible cache server.",
    no_args_is_help=True,
)
tenant_app = typer.Typer(
    help="Manage tenants (in the data dir, or the replicas' Redis).", no_args_is_help=True
)
key_app = typer.Typer(
    help="Manage API keys (in the data dir, or the replicas' Redis).", no_args_is_help=True
)
coordinator_app.add_typer(tenant_app, name="tenant")
coordinator_app.add_typer(key_app, name="key")
out = Console(highlight=False)

DATA = Annotated[
    Path | None,
    typer.Option(
        "--data", help="Data directory (default: settings / MAESTRO_COORDINATOR_DATA_DIR)."
    ),
]
CONFIG = Annotated[Path | None, typer.Option("--config", help="TOML settings file.")]


def _settings(data: Path | None, config: Path | None, **overrides: object) -> Settings:
    from maestro.coordinator.settings import load_settings

    return load_settings(config, overrides={"data_dir": data, **overrides})


def _store(data: Path | None, config: Path | None) -> Store:
    from maestro.coordinator.store import Store

    settings = _settings(data, config)
    return Store(settings.data_dir / "store", map_size=settings.map_size_bytes)


def _admin(
    data: Path | None, config: Path | None, action: Callable[[StateBackend], Awaitable[T]]
) -> T:
    """Run one admin action on the state the servers read: the embedded store, or with
    `state_backend = "redis"` the replicas' shared Redis."""
    import asyncio

    from maestro.coordinator.state import LmdbState

    settings = _settings(data, config)
    if settings.state_backend != "redis":
        with _store(data, config) as store:

            async def local() -> T:
                return await action(LmdbState(store))

            return asyncio.run(local())
    return _on_redis(
        settings, action, f"could not reach the replicas' Redis ({settings.redis_url})"
    )


def _on_redis(
    settings: Settings,
    action: Callable[[RedisState], Awaitable[T]],
    failure: str,
    also: tuple[type[Exception], ...] = (),
) -> T:
    """Run `action` on the replicas' shared Redis; an error there (or one of `also`) is a
    CoordinatorError saying `failure`."""
    import asyncio

    from redis.exceptions import RedisError

    from maestro.coordinator.state import RedisState
    from maestro.errors import CoordinatorError

    async def shared() -> T:
        state = RedisState.from_url(settings.redis_url or "", settings.redis_prefix)
        try:
            return await action(state)
        finally:
            await state.close()

    errors: tuple[type[Exception], ...] = (RedisError, OSError, *also)
    try:
        return asyncio.run(shared())
    except errors as exc:
        raise CoordinatorError(
            f"{failure}: {exc}", hint="check redis_url and that Redis is up; nothing was changed"
        ) from None


@coordinator_app.command()
@fail_on_error
def serve(
    host: Annotated[str | None, typer.Option("--host", help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (0: any free port).")] = None,
    data: DATA = None,
    config: CONFIG = None,
) -> None:
    """Serve the cache; prints {"event": "listening", "port": N} once bound."""
    from maestro.coordinator.server import run

    run(_settings(data, config, host=host, port=port))


@tenant_app.command("add")
@fail_on_error
def tenant_add(
    name: str,
    quota: Annotated[str | None, typer.Option("--quota", help="Storage quota, e.g. 10GB.")] = None,
    raw_ac: Annotated[
        bool, typer.Option("--raw-ac", help="Store opaque AC values (ccache, bazel).")
    ] = False,
    data: DATA = None,
    config: CONFIG = None,
) -> None:
    """Create a tenant (its name is the URL prefix)."""
    from maestro.cache.sizes import parse_size

    size = parse_size(quota) if quota else None
    record = _admin(data, config, lambda s: s.add_tenant(name, raw_ac=raw_ac, quota_bytes=size))
    out.print(f"tenant {record.name} created (raw_ac={record.raw_ac}, quota={record.quota_bytes})")


@tenant_app.command("set")
@fail_on_error
def tenant_set(
    name: str,
    quota: Annotated[str | None, typer.Option("--quota", help="New quota, or 'none'.")] = None,
    raw_ac: Annotated[bool | None, typer.Option("--raw-ac/--validated-ac")] = None,
    priority: Annotated[
        str | None, typer.Option("--priority", help="interactive, ci, batch or speculative.")
    ] = None,
    weight: Annotated[
        float | None, typer.Option("--weight", help="Share within its priority level.")
    ] = None,
    rate: Annotated[
        str | None, typer.Option("--rate", help="Sustained requests/s, or 'none'.")
    ] = None,
    burst: Annotated[str | None, typer.Option("--burst", help="Requests in any 1 s.")] = None,
    max_concurrent: Annotated[
        str | None, typer.Option("--max-concurrent", help="Requests in flight, or 'none'.")
    ] = None,
    upload_per_day: Annotated[
        str | None, typer.Option("--upload-per-day", help="Upload bytes per day, e.g. 20GB.")
    ] = None,
    min_share: Annotated[
        float | None, typer.Option("--min-share", help="Fraction of its level's seats, 0-1.")
    ] = None,
    evict: Annotated[
        bool | None, typer.Option("--evict/--no-evict", help="LRU eviction at the quota.")
    ] = None,
    reset_policy: Annotated[
        bool, typer.Option("--reset-policy", help="Back to the configured default policy.")
    ] = False,
    data: DATA = None,
    config: CONFIG = None,
) -> None:
    """Change a tenant's quota, AC mode or service policy (effective on the next request)."""
    from maestro.cache.sizes import parse_size
    from maestro.coordinator.records import TenantUpdate

    def optional(value: str, parse: Callable[[str], object]) -> object:
        return None if value.lower() == "none" else parse(value)

    clear = quota is not None and quota.lower() == "none"
    size = parse_size(quota) if quota is not None and not clear else None
    changes: dict[str, object] = {}
    for field, value in (("priority", priority), ("weight", weight), ("min_share", min_share)):
        if value is not None:
            changes[field] = value
    if evict is not None:
        changes["evict"] = evict
    for field, text, parse in (
        ("rate_per_s", rate, float),
        ("burst", burst, int),
        ("max_concurrent", max_concurrent, int),
        ("upload_bytes_per_day", upload_per_day, parse_size),
    ):
        if text is not None:
            changes[field] = optional(text, parse)
    change = TenantUpdate(
        raw_ac=raw_ac,
        quota_bytes=size,
        clear_quota=clear,
        policy_changes=changes or None,
        clear_policy=reset_policy,
    )
    record = _admin(data, config, lambda s: s.update_tenant(name, change))
    policy = record.policy.summary() if record.policy else "configured default"
    out.print(
        f"tenant {record.name}: raw_ac={record.raw_ac}, quota={record.quota_bytes}, "
        f"policy: {policy}"
    )


@tenant_app.command("list")
@fail_on_error
def tenant_list(data: DATA = None, config: CONFIG = None) -> None:
    """Tenants with their usage."""

    async def listed(state: StateBackend) -> list[tuple[TenantRecord, Usage]]:
        return [(t, await state.usage(t)) for t in await state.list_tenants()]

    rows = _admin(data, config, listed)
    table = Table("tenant", "raw AC", "quota", "used bytes", "CAS", "AC", "policy")
    for tenant, usage in rows:
        table.add_row(
            tenant.name,
            str(tenant.raw_ac),
            str(tenant.quota_bytes or "-"),
            str(usage.bytes),
            str(usage.cas_entries),
            str(usage.ac_entries),
            tenant.policy.summary() if tenant.policy else "default",
        )
    out.print(table)


@key_app.command("create")
@fail_on_error
def key_create(
    tenant: str,
    role: Annotated[str, typer.Option("--role", help="read | read-write | admin")] = "read",
    label: Annotated[str, typer.Option("--label", help="Free-form note, e.g. 'CI'.")] = "",
    as_json: JSON_OPTION = False,
    data: DATA = None,
    config: CONFIG = None,
) -> None:
    """Create an API key; the key is printed once and cannot be recovered."""
    from maestro.coordinator.auth import new_key
    from maestro.coordinator.models import Role
    from maestro.errors import ConfigError

    try:
        parsed = Role(role)
    except ValueError:
        raise ConfigError(f"unknown role {role!r}", hint="read, read-write or admin") from None
    new = new_key(tenant, parsed, label)
    _admin(data, config, lambda s: s.add_key(new.record))
    if as_json:
        print(json.dumps({"key_id": new.record.key_id, "api_key": new.plaintext}))  # noqa: T201
        return
    out.print(f"key {new.record.key_id} ({parsed} on {tenant}); store it now, it is shown once:")
    print(new.plaintext)  # noqa: T201


@key_app.command("revoke")
@fail_on_error
def key_revoke(key_id: str, data: DATA = None, config: CONFIG = None) -> None:
    """Revoke a key; tokens minted from it stop working on the next request."""
    record = _admin(data, config, lambda s: s.revoke_key(key_id))
    out.print(f"key {record.key_id} revoked at {record.revoked_at}")


@key_app.command("rotate")
@fail_on_error
def key_rotate(
    overlap: Annotated[
        float | None,
        typer.Option(
            "--overlap",
            help="Seconds the previous signing key still verifies (default: the token TTL, so "
            "no token it signed is refused before it expires).",
        ),
    ] = None,
    as_json: JSON_OPTION = False,
    data: DATA = None,
    config: CONFIG = None,
) -> None:
    """Rotate the token-signing key: a new key signs from now on, the previous one verifies
    until the overlap ends (nobody is logged out); the server picks it up on its next request."""
    from maestro.coordinator.auth import rotate_keyring
    from maestro.errors import ConfigError

    settings = _settings(data, config)
    if settings.token_keys or settings.token_secret is not None:
        raise ConfigError(
            "token keys are configured (token_keys / token_secret): rotate them in the settings",
            hint="add the new kid to token_keys and make it token_signing_kid, keep the old one "
            "for one token TTL, then move it to token_retired_kids (docs/coordinator.md, "
            '"Rotation drill")',
        )
    overlap_s = float(settings.token_ttl_s) if overlap is None else overlap
    if overlap_s < 0:
        raise ConfigError("--overlap must be 0 or more seconds")
    if settings.state_backend == "redis":
        done = _rotate_shared(settings, overlap_s)  # every replica reads it within a second
    else:
        done = rotate_keyring(settings.data_dir, overlap_s=overlap_s)
    if as_json:
        print(json.dumps(dataclasses.asdict(done)))  # noqa: T201
        return
    out.print(
        f"token key {done.new_kid} signs from now on; {done.old_kid} verifies until "
        f"{datetime.fromtimestamp(done.old_verifies_until, UTC):%Y-%m-%d %H:%M:%S} UTC"
        + (f"; retired: {', '.join(done.retired)}" if done.retired else "")
    )


def _rotate_shared(settings: Settings, overlap_s: float) -> Rotation:
    """Rotate the keyring the replicas share in Redis."""
    from maestro.coordinator.auth import rotate_shared_keyring

    return _on_redis(
        settings,
        lambda state: rotate_shared_keyring(state, overlap_s=overlap_s),
        "could not rotate the replicas' token keys in Redis",
        also=(ValueError,),
    )


@key_app.command("list")
@fail_on_error
def key_list(
    tenant: Annotated[str | None, typer.Option("--tenant")] = None,
    data: DATA = None,
    config: CONFIG = None,
) -> None:
    """Key ids, tenants, roles and state (never the keys themselves)."""
    keys = _admin(data, config, lambda s: s.list_keys(tenant))
    table = Table("key id", "tenant", "role", "label", "created", "revoked")
    for k in keys:
        table.add_row(
            k.key_id, k.tenant, str(k.role), k.label, str(k.created_at), str(k.revoked_at or "")
        )
    out.print(table)


@coordinator_app.command()
@fail_on_error
def snapshot(
    dest: Annotated[Path, typer.Argument(help="New or empty directory.")],
    data: DATA = None,
    config: CONFIG = None,
) -> None:
    """Consistent compacted copy of the store plus a manifest; every entry re-hashed."""
    from maestro.coordinator.snapshot import take_snapshot

    with _store(data, config) as store:
        manifest = take_snapshot(store, dest)
    out.print(
        f"snapshot: {manifest.cas_entries} CAS and {manifest.ac_entries} AC entries, "
        f"{manifest.tenants} tenants -> {dest}"
    )


@coordinator_app.command()
@fail_on_error
def restore(
    src: Annotated[Path, typer.Argument(help="A directory written by `coordinator snapshot`.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing store.")] = False,
    data: DATA = None,
    config: CONFIG = None,
) -> None:
    """Verify a snapshot entry by entry, then install it (stop the server first)."""
    from maestro.coordinator.snapshot import restore_snapshot

    settings = _settings(data, config)
    report = restore_snapshot(src, settings.data_dir / "store", force=force)
    out.print(f"restored {report.cas_entries} CAS and {report.ac_entries} AC entries (verified)")
    if report.replaced is not None:
        out.print(f"the previous store was moved to {report.replaced}")
