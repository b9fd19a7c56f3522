"""Tenant flag overrides: an admin sets them, every daemon of the tenant polls them.

- ``GET /v1/tenants/{tenant}/flags`` (any role of the tenant): the overrides, with a strong ETag
  over their canonical JSON so a poll that changed nothing is a 304 with no body.
- ``PUT /v1/tenants/{tenant}/flags/{name}`` (admin): a value, a kill-switch, or ``clear``;
  checked against the registry declared in `maestro.flags` (unknown name, wrong type, scope not
  tenant, expired flag: each a 4xx that says why); a reason is required.
- ``GET /v1/tenants/{tenant}/flags/audit`` (admin): the tenant's trail (who: the key id, when,
  old -> new, why), newest last, bounded to ``AUDIT_KEEP`` entries.

Overrides and trail are one JSON document per tenant id (a re-created tenant starts clean),
kept where the shared state lives: the embedded LMDB ``meta`` sub-database (so coordinator
snapshots carry it) or Redis (updated under WATCH, like tenant records), so every replica
serves the same overrides. Metrics name flags, never tenants.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field

from maestro.flags import (
    FlagError,
    FlagSetting,
    FlagValue,
    Registry,
    Scope,
    UnknownFlagError,
    builtin_registry,
)

from .bodies import ApiError, json_body, json_reply
from .openapi import AUTH_ERRORS, Operation, Response, err, operation
from .state import LmdbState, RedisState

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from .app import Coordinator
    from .records import TenantRecord

log = logging.getLogger(__name__)

AUDIT_KEEP = 500
_MAX_BODY = 8192


class FlagPut(BaseModel):
    """PUT body: a value, a kill-switch, or clear; the reason goes to the audit trail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: FlagValue | None = None
    kill: bool = False
    clear: bool = False
    reason: str = Field(min_length=1, max_length=500)


class TenantAuditEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    at: datetime
    who: str
    flag: str
    old: FlagSetting | None = None
    new: FlagSetting | None = None
    reason: str


class TenantFlagsBody(BaseModel):
    """GET answer: the tenant's overrides by flag name."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    tenant: str
    overrides: dict[str, FlagSetting] = Field(default_factory=dict)


class FlagChanged(BaseModel):
    model_config = ConfigDict(frozen=True)

    flag: str
    override: FlagSetting | None = None
    audit: TenantAuditEntry


class TenantAudit(BaseModel):
    model_config = ConfigDict(frozen=True)

    tenant: str
    entries: list[TenantAuditEntry]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="ignore")

    overrides: dict[str, FlagSetting] = Field(default_factory=dict)
    audit: list[TenantAuditEntry] = Field(default_factory=list)


def etag_of(overrides: dict[str, FlagSetting]) -> str:
    canonical = json.dumps(
        {k: v.model_dump(mode="json", exclude_none=True) for k, v in sorted(overrides.items())},
        sort_keys=True,
        separators=(",", ":"),
    )
    return '"' + hashlib.sha256(canonical.encode()).hexdigest()[:32] + '"'


class _Storage:
    """One JSON document per tenant id, read and updated atomically in the shared state."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.c = coordinator

    def _lmdb_key(self, tenant: TenantRecord) -> bytes:
        return b"flags:" + tenant.prefix

    def _redis_key(self, state: RedisState, tenant: TenantRecord) -> str:
        return f"{state.p}flags:{tenant.id}"

    async def read(self, tenant: TenantRecord) -> _Doc:
        state = self.c.state
        if isinstance(state, LmdbState):
            store = state.store

            def get() -> bytes | None:
                db = store.env.open_db(b"meta")
                with store.env.begin(db=db) as txn:
                    raw = txn.get(self._lmdb_key(tenant))
                    return bytes(raw) if raw is not None else None

            raw = await self.c.run(get)
        elif isinstance(state, RedisState):
            value = await state.r.get(self._redis_key(state, tenant))
            raw = value.encode() if isinstance(value, str) else value
        else:  # pragma: no cover - a backend without flag storage
            raise web.HTTPNotImplemented(reason="flags need the lmdb or redis state backend")
        return _Doc.model_validate_json(raw) if raw else _Doc()

    async def update(self, tenant: TenantRecord, change: Callable[[_Doc], _Doc]) -> _Doc:
        state = self.c.state
        if isinstance(state, LmdbState):
            store = state.store

            def body() -> _Doc:
                db = store.env.open_db(b"meta")
                with store.env.begin(write=True, db=db) as txn:
                    raw = txn.get(self._lmdb_key(tenant))
                    doc = change(_Doc.model_validate_json(raw) if raw else _Doc())
                    txn.put(self._lmdb_key(tenant), doc.model_dump_json().encode())
                    return doc

            return await self.c.run(body)
        if isinstance(state, RedisState):
            return await state.swap(
                self._redis_key(state, tenant),
                lambda raw: change(_Doc.model_validate_json(raw) if raw else _Doc()),
                _Doc.model_dump_json,
                announce=False,
            )
        raise web.HTTPNotImplemented(reason="flags need the lmdb or redis state backend")


class _FlagCollector(Collector):
    """Expiry is a matter of the day, so it is computed at scrape time."""

    def __init__(self, routes: TenantFlagRoutes) -> None:
        self.routes = routes

    def collect(self) -> Iterable[Metric]:
        today = self.routes.today()
        expired = GaugeMetricFamily(
            "maestro_coordinator_flag_expired",
            "1 when the flag's declared expiry date has passed (remove or renew it).",
            labels=["flag"],
        )
        for flag in self.routes.registry:
            expired.add_metric([flag.name], 1.0 if flag.expired(today) else 0.0)
        yield expired


class TenantFlagRoutes:
    def __init__(
        self,
        coordinator: Coordinator,
        registry: Registry | None = None,
        today: Callable[[], date] | None = None,
    ) -> None:
        self.c = coordinator
        self.registry = registry or builtin_registry()
        self.today = today or (lambda: datetime.fromtimestamp(coordinator._clock(), UTC).date())
        self.storage = _Storage(coordinator)
        self._seen: dict[int, dict[str, FlagSetting]] = {}
        reg = coordinator.metrics.registry
        reg.register(_FlagCollector(self))
        self.overrides_gauge = Gauge(
            "maestro_coordinator_flag_overrides",
            "Tenants overriding the flag, as this replica last saw them (kill: kill-switch "
            "engaged; expired: the flag is past its expiry).",
            ["flag", "kill", "expired"],
            registry=reg,
        )

    def _observe(self, tenant: TenantRecord, overrides: dict[str, FlagSetting]) -> None:
        self._seen[tenant.id] = overrides
        today = self.today()
        counts: dict[tuple[str, str, str], int] = {}
        for flag in self.registry:
            for kill in ("true", "false"):
                counts[(flag.name, kill, str(flag.expired(today)).lower())] = 0
        for seen in self._seen.values():
            for name, setting in seen.items():
                if name in self.registry:
                    exp = str(self.registry.get(name).expired(today)).lower()
                    key = (name, str(setting.kill).lower(), exp)
                    counts[key] = counts.get(key, 0) + 1
        self.overrides_gauge.clear()
        for labels, n in counts.items():
            self.overrides_gauge.labels(*labels).set(n)

    @operation(
        get=Operation(
            "The tenant's flag overrides (any role); ETag / If-None-Match for polling",
            "tenant_flags",
            {
                "200": Response(
                    "Overrides by flag name.",
                    TenantFlagsBody,
                    headers={"ETag": {"schema": {"type": "string"}}},
                ),
                "304": Response("Unchanged since the ETag sent in If-None-Match."),
                **AUTH_ERRORS,
            },
            parameters=[{"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}],
        )
    )
    async def list_flags(self, request: web.Request) -> web.Response:
        principal = await self.c.tenant_principal(request, admin=False)
        doc = await self.storage.read(principal.tenant)
        self._observe(principal.tenant, doc.overrides)
        tag = etag_of(doc.overrides)
        headers = {"ETag": tag, "Cache-Control": "no-cache"}
        if tag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
            return web.Response(status=304, headers=headers)
        body = TenantFlagsBody(tenant=principal.tenant.name, overrides=doc.overrides)
        return json_reply(body, headers=headers)

    @operation(
        put=Operation(
            "Set, kill or clear a tenant flag override (admin role); audited",
            "set_tenant_flag",
            {
                "200": Response("The override now in force and its audit entry.", FlagChanged),
                "400": err("Malformed body, wrong value type, no kill-switch, scope not tenant."),
                **AUTH_ERRORS,
                "404": err("No such flag."),
                "409": err("The flag has expired: it can only be cleared."),
                "413": err("Body too large."),
            },
            body=FlagPut,
        )
    )
    async def set_flag(self, request: web.Request) -> web.Response:
        principal = await self.c.tenant_principal(request, admin=True)
        body = await json_body(
            request,
            FlagPut,
            _MAX_BODY,
            "flag changes are small JSON bodies",
            '{"value": ..., "kill": false, "clear": false, "reason": "why"}',
        )
        name = request.match_info["name"]
        try:
            flag = self.registry.get(name)
        except UnknownFlagError as exc:
            raise ApiError(404, exc.code, exc.message, hint=exc.hint) from None
        try:
            if not body.clear:
                if flag.expired(self.today()):
                    raise ApiError(
                        409,
                        "expired_flag",
                        f"flag {name} expired on {flag.expires.isoformat()}",
                        hint=f"clear the override; ask its owner ({flag.owner}) to remove or "
                        "renew the flag",
                    )
                if Scope.TENANT not in flag.scopes:
                    raise FlagError(f"{name} cannot be set at tenant scope")
                if body.kill and not flag.has_kill_switch:
                    raise FlagError(f"{name} has no kill-switch", hint="set a value instead")
                if body.value is None and not body.kill:
                    raise FlagError(
                        "nothing to set", hint='send "value", "kill": true, or "clear": true'
                    )
                value = flag.check(body.value) if body.value is not None else None
        except FlagError as exc:
            raise ApiError(400, exc.code, exc.message, hint=exc.hint) from None
        at = datetime.fromtimestamp(self.c._clock(), UTC)
        who = f"key {principal.key_id} (tenant {principal.tenant.name}, {principal.role})"
        new = (
            None
            if body.clear
            else FlagSetting(value=value, kill=body.kill, reason=body.reason, set_by=who, set_at=at)
        )
        entry_box: list[TenantAuditEntry] = []

        def change(doc: _Doc) -> _Doc:
            overrides = dict(doc.overrides)
            old = overrides.pop(name, None)
            if new is not None:
                overrides[name] = new
            entry = TenantAuditEntry(
                at=at, who=who, flag=name, old=old, new=new, reason=body.reason
            )
            entry_box.append(entry)
            return _Doc(overrides=overrides, audit=[*doc.audit, entry][-AUDIT_KEEP:])

        doc = await self.storage.update(principal.tenant, change)
        self._observe(principal.tenant, doc.overrides)
        entry = entry_box[-1]
        log.info(
            "tenant flag %s of %s: %s -> %s by %s: %s",
            name,
            principal.tenant.name,
            entry.old.describe() if entry.old else "unset",
            new.describe() if new else "cleared",
            who,
            body.reason,
        )
        return json_reply(FlagChanged(flag=name, override=new, audit=entry))

    @operation(
        get=Operation(
            "The tenant's flag audit trail (admin role), newest last",
            "tenant_flags_audit",
            {"200": Response("Entries.", TenantAudit), **AUTH_ERRORS},
        )
    )
    async def audit(self, request: web.Request) -> web.Response:
        principal = await self.c.tenant_principal(request, admin=True)
        doc = await self.storage.read(principal.tenant)
        return json_reply(TenantAudit(tenant=principal.tenant.name, entries=doc.audit))


def add_routes(app: web.Application, coordinator: Coordinator, **kwargs: Any) -> TenantFlagRoutes:
    """Register the routes on ``app``."""
    routes = TenantFlagRoutes(coordinator, **kwargs)
    app.router.add_get("/v1/tenants/{tenant}/flags", routes.list_flags)
    app.router.add_get("/v1/tenants/{tenant}/flags/audit", routes.audit)
    # a flag name always has a dot, so "audit" never matches it (Allow stays exact)
    app.router.add_put(
        r"/v1/tenants/{tenant}/flags/{name:[a-z][a-z0-9-]*(?:\.[a-z][a-z0-9-]*)+}", routes.set_flag
    )
    return routes
