"""Policy at the coordinator: the tenant's signed bundle (served with an ETag), the decisions
daemons send (redacted), and the explain API by execution id, tenant-scoped.

The bundle is a file an admin publishes (PUT, signed beforehand: `maestro policy bundle`);
the coordinator holds no signing keys. With trusted public keys configured for a tenant
(``policy_bundle_keys``, ``policy_tenant_bundle_keys``), a published bundle is verified and
compiled by the daemon's own :class:`~maestro.policy.bundle.BundleStore` (signature, digests,
expiry, rollback) before it is served, and the tenant's admission refusals are decided by it
(its team rules beside the built-in ones); a rejected one is refused (422), the last good
stays and an incident is raised (log, metrics, the tenant's policy status) until a good one
arrives. Decisions and the verified last good bundle live under ``<data_dir>/policy/<tenant>/``
of this replica; with Redis (replicas) the published bundle, its version and its incident are
shared (:mod:`.policy_shared`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as PromCounter
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from maestro.errors import ConfigError, PolicyError
from maestro.paths import replace_file
from maestro.policy.bundle import (
    BundleMetricFamilies,
    BundleMetrics,
    BundleRejected,
    BundleStore,
    Incident,
    load_public_key,
)
from maestro.policy.engine import PolicyEngine, PolicySet
from maestro.policy.model import CoordinatorInput, CoordinatorRefusal, DecisionRecord
from maestro.policy.records import DecisionLog
from maestro.policy.sources import load
from maestro.redaction import Redactor
from maestro.tasks import cancel_and_wait

from .admission import Explanation, Refusal
from .bodies import JSON_BODY_ERRORS, ApiError, json_body, json_reply, small_body
from .openapi import AUTH_ERRORS, BINARY, Operation, Response, err, operation
from .policy_shared import FOLLOW_S, SharedBundles

if TYPE_CHECKING:
    from .app import Coordinator
    from .settings import Settings

MAX_BUNDLE_BYTES = 8 * 1024 * 1024
MAX_DECISIONS_BYTES = 4 * 1024 * 1024
GZIP = {"application/gzip": {"schema": {"type": "string", "format": "binary"}}}


class DecisionBatch(BaseModel):
    decisions: list[DecisionRecord] = Field(max_length=1000)


class DecisionsStored(BaseModel):
    stored: int


log = logging.getLogger(__name__)

MAX_PENDING_DECISIONS = 32
"""Refusals being decided at once; beyond it a 429 keeps the built-in rule text and no record
(a flood of refusals must not queue work behind itself)."""
DECISIONS_PER_TENANT_S = 10.0
"""Refusals of one tenant decided per second (a bucket of as many); beyond it a 429 keeps the
built-in rule text and no record: a tenant that keeps sending what is refused must not buy
Rego evaluations and decision-log writes, which share the server's CPU with everyone else's
requests."""
DECISION_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)


class PolicyExplain(BaseModel):
    # camelCase as the query parameters and the records it holds
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    tenant: str
    execution_id: str = ""
    decision_id: str | None = None
    decisions: list[DecisionRecord] = Field(description="oldest first; inputs redacted")


class PolicyBundleStatus(BaseModel):
    tenant: str
    verified: bool = Field(
        description="trusted keys are configured for this tenant: bundles are verified here"
    )
    published: bool = Field(description="a bundle is served to daemons")
    revision: str | None = Field(None, description="the verified bundle in force")
    version: int | None = None
    expires: str | None = None
    incident: Incident | None = Field(
        None,
        description="open since a published bundle was rejected (or the one in force expired); "
        "cleared when a good bundle is published",
    )


class TenantBundles:
    """The team layer per tenant at the coordinator: the keys it trusts for each tenant and,
    for a tenant with keys, a :class:`BundleStore` (the daemon's: same verification, last
    good on disk, quarantine, incidents) whose engine decides the tenant's refusals.

    A rejected bundle raises the store's incident: an error log line naming the tenant, the
    ``maestro_coordinator_policy_bundle_rejected_total{tenant,reason}`` counter and the
    ``maestro_coordinator_policy_bundle_incident{tenant}`` gauge (tenant-labelled: private
    series, like every tenant's), ``..._incidents_open`` (how many tenants, for anonymous
    scrapes), and the incident in the tenant's policy status; a good bundle clears it."""

    def __init__(
        self,
        data_dir: Path,
        keys: Mapping[str, Any],
        tenants: Mapping[str, Any],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.keys = dict(keys)
        self.tenant_keys = {name: dict(table) for name, table in tenants.items()}
        self._stores: dict[str, BundleStore] = {}
        self._lock = threading.Lock()
        registry = registry if registry is not None else CollectorRegistry()
        self.families = BundleMetricFamilies(
            registry, prefix="maestro_coordinator_policy_bundle", labels=("tenant",)
        )
        self.incidents_open = Gauge(
            "maestro_coordinator_policy_bundle_incidents_open",
            "Tenants with an open policy bundle incident (a published bundle was rejected).",
            registry=registry,
        )
        self.incidents_open.set_function(
            lambda: sum(1 for s in list(self._stores.values()) if s.incident is not None)
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, registry: CollectorRegistry | None = None
    ) -> TenantBundles:
        """Read every configured key now: a missing or malformed one stops the start."""

        def read(table: Mapping[str, Path], where: str) -> dict[str, Any]:
            out = {}
            for kid, path in table.items():
                try:
                    out[kid] = load_public_key(Path(path))
                except PolicyError as exc:
                    raise ConfigError(
                        f"{where}.{kid}: {exc.message}", where=exc.where, hint=exc.hint
                    ) from None
            return out

        tenants = {
            name: read(table, f"policy_tenant_bundle_keys.{name}")
            for name, table in settings.policy_tenant_bundle_keys.items()
        }
        return cls(settings.data_dir, read(settings.policy_bundle_keys, "policy_bundle_keys"),
                   tenants, registry)  # fmt: skip

    def trusted(self, tenant: str) -> dict[str, Any]:
        """The global keys and the tenant's own (the tenant's win on a shared key id)."""
        return {**self.keys, **self.tenant_keys.get(tenant, {})}

    def store(self, tenant: str) -> BundleStore | None:
        """The tenant's bundle store (None without trusted keys), opened warm: the persisted
        last good bundle in force. Blocking (it may compile): call it in the executor."""
        keys = self.trusted(tenant)
        if not keys:
            return None
        with self._lock:
            held = self._stores.get(tenant)
            if held is not None:
                return held
            folder = self.data_dir / "policy" / tenant / "verified"
            # a bundle is compiled in a child first: rego-cpp aborts the process on some forms
            store = BundleStore(
                folder, PolicyEngine.open(None, isolate=True), keys,
                metrics=BundleMetrics(self.families, (tenant,)), name=f"tenant {tenant}",
            )  # fmt: skip
            if not store.warm_start():
                self._adopt(tenant, store)
            self._stores[tenant] = store
            return store

    def _adopt(self, tenant: str, store: BundleStore) -> None:
        """A bundle published before keys were configured is verified once, like a new one."""
        served = self.data_dir / "policy" / tenant / "bundle.tar.gz"
        try:
            data = served.read_bytes()
        except OSError:
            return
        try:
            verified = store.apply(data)
        except BundleRejected as exc:
            log.error("tenant %s: the published policy bundle is not used: %s", tenant, exc)
            return
        log.info("tenant %s: policy bundle %s in force", tenant, verified.revision)

    def open_all(self) -> None:
        """Open the stores of every tenant with keys and a bundle on disk (at start)."""
        folder = self.data_dir / "policy"
        names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        for name in names:
            if self.trusted(name):
                self.store(name)

    def status(self, tenant: str, published: bool) -> PolicyBundleStatus:
        """The tenant's verified bundle and open incident. Blocking (it may open the store)."""
        store = self.store(tenant)
        if store is None:
            return PolicyBundleStatus(tenant=tenant, verified=False, published=published)
        state = store.status()
        version = state.get("version")
        return PolicyBundleStatus(
            tenant=tenant, verified=True, published=published, revision=state.get("revision"),
            version=version if isinstance(version, int) else None, expires=state.get("expires"),
            incident=store.incident,
        )  # fmt: skip

    def policy(self, tenant: str) -> PolicySet | None:
        """The tenant's policy in force (None: no trusted keys or no store opened yet). Never
        blocks: a refusal must not wait on a compile."""
        store = self._stores.get(tenant)
        return store.engine.current if store is not None else None


@dataclass
class PolicyRoutes:
    coordinator: Coordinator
    bundles: TenantBundles
    redactor: Redactor = field(default_factory=Redactor)
    shared: SharedBundles | None = None  # replicas: bundles, versions, incidents in Redis
    _logs: dict[str, DecisionLog] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _refused: dict[str, int] = field(default_factory=dict)  # shared version refused here
    _follower: asyncio.Task[None] | None = None

    def _lock(self, tenant: str) -> asyncio.Lock:
        """One publish or follow of a tenant's bundle at a time in this replica."""
        return self._locks.setdefault(tenant, asyncio.Lock())

    async def _follow(self, tenant: str, store: BundleStore) -> None:
        """Bring the tenant's local store up to the shared state: a newer version published
        at another replica is verified and put in force here, the incident mirrored."""
        assert self.shared is not None
        version, incident = await self.shared.head(tenant)
        held = (await self.coordinator.run(store.status)).get("version")
        if self._refused.get(tenant) == version:
            return  # refused here already: not quarantined again at every follow
        if version is not None and (not isinstance(held, int) or version > held):
            data = await self.shared.bundle(tenant)
            if data is not None:
                try:
                    verified = await self.coordinator.run(store.apply, data)
                except BundleRejected as exc:  # quarantined here, its incident raised here
                    self._refused[tenant] = version
                    log.error("tenant %s: bundle version %d from another replica is not used: "
                              "%s", tenant, version, exc)  # fmt: skip
                    return
                log.info("tenant %s: policy bundle %s (version %d) from another replica in force",
                         tenant, verified.revision, verified.version)  # fmt: skip
        store.adopt_incident(incident)

    async def _catch_up(self, tenant: str) -> None:
        """:meth:`_follow` under the tenant's lock, when it has a local store (trusted keys)."""
        store = await self.coordinator.run(self.bundles.store, tenant)
        if store is not None:
            async with self._lock(tenant):
                await self._follow(tenant, store)

    async def _follow_all(self) -> None:
        assert self.shared is not None
        failing = False
        while True:
            await asyncio.sleep(FOLLOW_S)
            try:
                for tenant in await self.shared.tenants():
                    if self.bundles.trusted(tenant):
                        await self._catch_up(tenant)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down: the bundles in force stay
                # once per outage, not every FOLLOW_S
                (log.debug if failing else log.warning)(
                    "policy bundles of other replicas not followed: %r", exc
                )
                failing = True
            else:
                if failing:
                    log.info("policy bundles of other replicas followed again")
                failing = False

    async def start(self, app: web.Application) -> None:
        await self.coordinator.run(self.bundles.open_all)
        if self.shared is not None:
            self._follower = asyncio.create_task(self._follow_all())

    def _folder(self, tenant: str) -> Path:
        path = self.coordinator.settings.data_dir / "policy" / tenant
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def _log(self, tenant: str) -> DecisionLog:
        log = self._logs.get(tenant)
        if log is None:
            # written by a background thread: a refusal's 429 does not wait for SQLite
            path = self._folder(tenant) / "decisions.sqlite"
            log = self._logs[tenant] = DecisionLog(path, background=True)
        return log

    @operation(
        get=Operation(
            "The tenant's signed policy bundle (OPA bundle layout)",
            "get_policy_bundle",
            {
                "200": Response(
                    "The bundle; send its ETag as If-None-Match next time.", content=GZIP
                ),
                "304": Response("Unchanged since the ETag sent."),
                "404": err("No bundle published for this tenant."),
                **AUTH_ERRORS,
            },
            parameters=[{"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}],
        ),
        put=Operation(
            "Publish the tenant's signed policy bundle (admin role)",
            "put_policy_bundle",
            {
                "204": Response("Published."),
                "400": err("Not a gzip file."),
                **AUTH_ERRORS,
                "413": err("Bundle too large."),
                "422": err(
                    "Rejected by the keys trusted for this tenant (unsigned, unknown key, bad "
                    "signature or digest, expired, older than the one held, does not compile)."
                ),
            },
            body=BINARY,
        ),
    )
    async def bundle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "PUT":
            return await self._publish(request)
        principal = await self.coordinator.tenant_principal(request)
        if self.shared is not None:
            shared = await self.shared.bundle(principal.tenant.name)
            if shared is None:
                raise ApiError(404, "not_found", "no policy bundle published for this tenant")
            data = shared
        else:
            path = self._folder(principal.tenant.name) / "bundle.tar.gz"
            try:
                data = await self.coordinator.run(path.read_bytes)
            except FileNotFoundError:
                raise ApiError(
                    404, "not_found", "no policy bundle published for this tenant"
                ) from None
        etag = f'"{hashlib.sha256(data).hexdigest()[:32]}"'
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=data, content_type="application/gzip", headers={"ETag": etag})

    async def _publish(self, request: web.Request) -> web.Response:
        principal = await self.coordinator.tenant_principal(request, write=True)
        if not principal.role.is_admin:
            raise ApiError(403, "forbidden", "the admin role of this tenant is required")
        data = await small_body(request, MAX_BUNDLE_BYTES, "policy bundles are at most 8 MiB")
        if not data.startswith(b"\x1f\x8b"):
            raise ApiError(400, "bad_request", "a policy bundle is a tar.gz (OPA bundle layout)")
        tenant = principal.tenant.name
        store = await self.coordinator.run(self.bundles.store, tenant)
        if self.shared is not None:
            async with self._lock(tenant):
                await self._publish_shared(tenant, store, data)
            return web.Response(status=204)
        if store is not None:  # verified as daemons will, before anyone is served it
            await self._verify(tenant, store, data)
        path = self._folder(tenant) / "bundle.tar.gz"

        await self.coordinator.run(replace_file, path, data)
        return web.Response(status=204)

    async def _verify(self, tenant: str, store: BundleStore, data: bytes) -> int:
        """Put ``data`` in force in the tenant's store; 422 when it is rejected. Its version."""
        try:
            verified = await self.coordinator.run(store.apply, data)
        except BundleRejected as exc:
            if self.shared is not None and store.incident is not None:
                await self.shared.raise_incident(tenant, store.incident)
            raise ApiError(
                422, "bundle_rejected", f"{exc.reason}: {exc.message}",
                hint=exc.hint or "the last good bundle stays published and in force",
            ) from None  # fmt: skip
        log.info("tenant %s: policy bundle %s (version %d) verified and in force",
                 tenant, verified.revision, verified.version)  # fmt: skip
        return verified.version

    async def _publish_shared(self, tenant: str, store: BundleStore | None, data: bytes) -> None:
        assert self.shared is not None
        if store is None:  # no trusted keys: shared as published, daemons verify
            await self.shared.publish(tenant, data, None)
            return
        await self._follow(tenant, store)  # the rollback floor is the replicas' newest
        version = await self._verify(tenant, store, data)
        if not await self.shared.publish(tenant, data, version):
            raise ApiError(
                422, "bundle_rejected",
                f"rollback: a version newer than {version} was published meanwhile",
                hint="publish a newer version",
            )  # fmt: skip

    @operation(
        get=Operation(
            "The tenant's team bundle at this coordinator: in force, and any open incident",
            "get_policy_status",
            {"200": Response("The status.", PolicyBundleStatus), **AUTH_ERRORS},
        )
    )
    async def status(self, request: web.Request) -> web.Response:
        principal = await self.coordinator.tenant_principal(request)
        tenant = principal.tenant.name
        if self.shared is not None:
            await self._catch_up(tenant)
            published = await self.shared.published(tenant)
        else:
            published = (self._folder(tenant) / "bundle.tar.gz").is_file()
        return json_reply(await self.coordinator.run(self.bundles.status, tenant, published))

    @operation(
        post=Operation(
            "Send policy decisions (redacted) of this tenant's daemons (read-write role)",
            "post_policy_decisions",
            {"200": Response("Stored.", DecisionsStored), **JSON_BODY_ERRORS},
            body=DecisionBatch,
        )
    )
    async def decisions(self, request: web.Request) -> web.Response:
        principal = await self.coordinator.tenant_principal(request, write=True)
        batch = await json_body(
            request,
            DecisionBatch,
            MAX_DECISIONS_BYTES,
            "send decisions in batches of at most 4 MiB",
            "a decision batch",
            strict=True,
        )
        log = self._log(principal.tenant.name)

        def store() -> int:
            for record in batch.decisions:
                log.add(self._redacted(record))
            return len(batch.decisions)

        return json_reply(DecisionsStored(stored=await self.coordinator.run(store)))

    def _redacted(self, record: DecisionRecord) -> DecisionRecord:
        # daemons redact before sending; the coordinator does not rely on it
        from maestro.policy.gate import redact_value

        rules = [
            r.model_copy(update={"message": str(self.redactor.redact(r.message))})
            for r in record.rules
        ]
        return record.model_copy(
            update={"input": redact_value(record.input, self.redactor), "rules": rules}
        )

    @operation(
        get=Operation(
            "Policy decisions of one execution, tenant-scoped, inputs redacted",
            "explain_policy",
            {
                "200": Response("The decisions.", PolicyExplain),
                "400": err("Neither executionId nor decisionId given."),
                **AUTH_ERRORS,
                "404": err("No decision with this decisionId in the caller's tenant."),
            },
            parameters=[
                {
                    "name": "executionId",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
                },
                {
                    "name": "decisionId",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
                },
            ],
        )
    )
    async def explain(self, request: web.Request) -> web.Response:
        principal = await self.coordinator.tenant_principal(request)
        execution = request.query.get("executionId", "")
        decision_id = request.query.get("decisionId", "")
        log = self._log(principal.tenant.name)
        if decision_id and len(decision_id) <= 128:
            # the tenant's own log only: another tenant's id is simply not there
            record = await self.coordinator.run(log.get, decision_id)
            if record is None:
                raise ApiError(404, "not_found", "no decision with this id for this tenant")
            return json_reply(
                PolicyExplain(
                    tenant=principal.tenant.name,
                    execution_id=record.execution_id,
                    decision_id=decision_id,
                    decisions=[self._redacted(record)],
                )
            )
        if not execution or len(execution) > 128:
            raise ApiError(
                400, "bad_request", "executionId or decisionId (1 to 128 characters) is required"
            )
        found = await self.coordinator.run(lambda: log.query(execution_id=execution, limit=1000))
        return json_reply(
            PolicyExplain(
                tenant=principal.tenant.name,
                execution_id=execution,
                decisions=[self._redacted(r) for r in reversed(found)],
            )
        )

    async def close(self, app: web.Application) -> None:
        await cancel_and_wait(self._follower)
        if self.shared is not None:
            await self.shared.close()
        for log in self._logs.values():
            await self.coordinator.run(log.close)  # writes the pending records


class AdmissionPolicy:
    """The `coordinator` decision point behind the admission gate's refusals.

    Asked only when admission or a rate limit refused (or, in shadow mode, would refuse): an
    admitted request never evaluates Rego. The policy set is compiled once; a refusal is
    decided and recorded (tenant's decision log, input redacted) in the coordinator's executor
    so the event loop keeps serving while rego-cpp and SQLite work, up to
    DECISIONS_PER_TENANT_S of a tenant's refusals a second (the rest keep the built-in text)."""

    def __init__(
        self,
        routes: PolicyRoutes,
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.routes = routes
        self.policy = PolicySet.compile(load(None))
        self.pending = 0
        self.timings: deque[tuple[float, float]] = deque(maxlen=2048)
        """(evaluation s, evaluation + record s) of recent refusals."""
        self.decision_seconds = Histogram(
            "maestro_coordinator_policy_decision_seconds",
            "Rego evaluation of a refusal (the coordinator decision point).",
            buckets=DECISION_BUCKETS,
            registry=registry,
        )
        self.skipped = PromCounter(
            "maestro_coordinator_policy_decisions_skipped",
            "Refusals answered with the built-in rule because too many were being decided, or "
            "the tenant's refusals this second were decided already.",
            registry=registry,
        )
        self._clock = clock
        self._budget: dict[str, tuple[float, float]] = {}
        """Per tenant: decisions it may still have, as of when."""

    def _may_decide(self, tenant: str) -> bool:
        """Take one of the tenant's decisions (DECISIONS_PER_TENANT_S, refilled continuously)."""
        now = self._clock()
        left, at = self._budget.get(tenant, (DECISIONS_PER_TENANT_S, now))
        left = min(DECISIONS_PER_TENANT_S, left + (now - at) * DECISIONS_PER_TENANT_S)
        if left < 1:
            self._budget[tenant] = (left, now)
            return False
        self._budget[tenant] = (left - 1, now)
        return True

    async def __call__(self, refusal: Refusal) -> Explanation | None:
        if self.pending >= MAX_PENDING_DECISIONS or not self._may_decide(refusal.tenant):
            self.skipped.inc()
            return None
        self.pending += 1
        try:
            return await self.routes.coordinator.run(self.decide, refusal, time.time())
        finally:
            self.pending -= 1

    def decide(self, refusal: Refusal, now: float) -> Explanation | None:
        started = time.perf_counter()
        retry_ms = max(1, math.ceil(refusal.retry_after_s * 1000))  # as the 429 says
        inp = CoordinatorInput(
            execution_id=refusal.execution_id,
            tenant=refusal.tenant,
            role=refusal.role,
            method=refusal.method,
            path=refusal.path,
            priority=refusal.priority or "interactive",
            in_flight=refusal.in_flight,
            upload_bytes=refusal.upload_bytes,
            now_ms=int(now * 1000),
            refusal=CoordinatorRefusal(
                rule=refusal.rule,
                message=refusal.message,
                retry_after_ms=retry_ms,
                limit=refusal.limit,
                shadow=refusal.shadow,
            ),
        )
        policy = self.routes.bundles.policy(refusal.tenant) or self.policy
        try:
            decision = policy.evaluate(inp)
        except PolicyError as exc:  # fail open: the built-in rule text answers
            log.warning("coordinator policy failed, built-in refusal text used: %s", exc)
            return None
        evaluated = time.perf_counter()
        rules = decision.rules
        result = decision.result
        if refusal.shadow:  # served: recorded as what enforcement would have done
            rules = [r.model_copy(update={"shadow": True}) for r in rules]
            result = "allow"
        record = DecisionRecord(
            id=uuid.uuid4().hex,
            time=datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
            point="coordinator",
            execution_id=inp.execution_id,
            schema_=inp.schema_name(),
            input=inp.model_dump(mode="json"),  # redacted once, by _redacted below
            result=result,
            rules=rules,
            retry_after_ms=retry_ms,
            policy=decision.policy,
        )
        self.routes._log(refusal.tenant).add(self.routes._redacted(record))
        self.decision_seconds.observe(evaluated - started)
        self.timings.append((evaluated - started, time.perf_counter() - started))
        fired = [r for r in rules if r.kind == "deny"] or rules
        if not fired:
            return None
        # the tenant's own rule (team layer) names the refusal before the built-in one
        first = min(fired, key=lambda r: _LAYER_ORDER.get(r.layer, len(_LAYER_ORDER)))
        return Explanation(first.rule, first.remediation, record.id)


_LAYER_ORDER = {"team": 0, "workspace": 1, "builtin": 2}


def add_routes(app: web.Application, coordinator: Coordinator) -> None:
    settings = coordinator.settings
    bundles = TenantBundles.from_settings(settings, coordinator.metrics.registry)
    shared = (
        SharedBundles.from_url(settings.redis_url, settings.redis_prefix)
        if settings.state_backend == "redis" and settings.redis_url
        else None
    )
    routes = PolicyRoutes(coordinator, bundles, shared=shared)
    app.on_startup.append(routes.start)
    coordinator.gate.explainer = AdmissionPolicy(routes, coordinator.metrics.registry)
    app.router.add_get("/v1/tenants/{tenant}/policy/bundle", routes.bundle)
    app.router.add_put("/v1/tenants/{tenant}/policy/bundle", routes.bundle)
    app.router.add_get("/v1/tenants/{tenant}/policy/status", routes.status)
    app.router.add_post("/v1/tenants/{tenant}/policy/decisions", routes.decisions)
    app.router.add_get("/api/policy/explain", routes.explain)
    app.on_cleanup.append(routes.close)
