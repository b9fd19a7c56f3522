"""Prometheus metrics, one registry per app (tests run several apps in one process).

Label values come only from closed sets (route templates, known methods, status codes) or from
tenants that authenticated successfully; nothing a client can invent becomes a label, so a fuzzer
or an attacker cannot blow up the series count.

Who sees what (docs/coordinator.md, "Metrics"): the series labelled with a tenant name only go to
a caller presenting the `metrics_token` (Prometheus' `authorization` setting) or to the separate
listener on `metrics_port` (bind it to a private address); an anonymous caller of the main
listener gets every other series. `metrics_public = true` gives everyone everything (tests,
trusted networks).
"""

from __future__ import annotations

import contextlib
import gc
import hmac
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from .hardening import BytePacer, LoopSharePacer

if TYPE_CHECKING:
    from .settings import Settings

KNOWN_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"})
LATENCY_BUCKETS = (
    0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
GC_PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_ROUTE = ("route", "method")
_ENTRY = ("tenant", "kind")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()

        def count(name: str, doc: str, *labels: str) -> Counter:
            return Counter(f"maestro_coordinator_{name}", doc, labels, registry=self.registry)

        self.requests = count(
            "requests", "HTTP requests by route template, method and status.", *_ROUTE, "status"
        )
        self.latency = Histogram(
            "maestro_coordinator_request_duration_seconds",
            "Time from request start to response prepared.",
            _ROUTE,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.hits = count("cache_hits", "GET/HEAD hits.", *_ENTRY)
        self.misses = count("cache_misses", "GET/HEAD misses.", *_ENTRY)
        self.bytes_in = count("received_bytes", "Uncompressed bytes accepted by PUT.", *_ENTRY)
        self.bytes_out = count("sent_bytes", "Body bytes sent by GET (after compression).", *_ENTRY)
        self.corrupt = count(
            "corrupt_entries",
            "Entries found corrupt on read and quarantined (never served).",
            *_ENTRY,
        )
        self.auth_failures = count(
            "auth_failures",
            "Rejected requests by reason (missing, invalid, expired, retired_key, forbidden).",
            "reason",
        )
        self.quota_rejections = count("quota_rejections", "PUTs refused with 507.", "tenant")
        self.evicted_bytes = count(
            "evicted_bytes", "Bytes evicted (LRU) to keep a tenant under its quota.", "tenant"
        )
        self.client_aborts = count(
            "client_aborts", "Requests whose client went away mid-request (recorded as 499)."
        )
        self.connections_refused = count(
            "connections_refused", "Connections closed at once: the client held its cap."
        )
        self.in_flight = Gauge(
            "maestro_coordinator_requests_in_flight",
            "Requests being served.",
            registry=self.registry,
        )

    def watch_gc(self) -> Callable[[], None]:
        """Time every garbage collection of this process by generation (a collection holds the
        GIL, so the event loop waits it out); returns the function that stops it. Called by the
        serving process only: the collector is process-wide, and tests run several apps."""
        pauses = Histogram(
            "maestro_coordinator_gc_pause_seconds",
            "Garbage collections by generation (2: full) and how long each stopped the server.",
            ("generation",),
            buckets=GC_PAUSE_BUCKETS,
            registry=self.registry,
        )
        by_generation = [pauses.labels(str(generation)) for generation in range(3)]
        started = [0.0]

        def timed(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                by_generation[info["generation"]].observe(time.perf_counter() - started[0])

        gc.callbacks.append(timed)

        def stop() -> None:
            with contextlib.suppress(ValueError):
                gc.callbacks.remove(timed)

        return stop

    def watch_pacer(self, pacer: BytePacer) -> None:
        """Export the bulk pacer's current rate, the time bulk readers waited for it and, for
        the adaptive one, the event loop's busy share it follows."""
        Gauge(
            "maestro_coordinator_bulk_pace_bytes_per_second",
            "Rate bulk upload bodies are read at while paced (adaptive: follows the loop's busy "
            "share; at its ceiling, or with no interactive request lately, nothing is paced).",
            registry=self.registry,
        ).set_function(lambda: pacer.rate)
        Gauge(
            "maestro_coordinator_bulk_paced_seconds",
            "Time bulk upload readers have waited for the pacer, summed over readers.",
            registry=self.registry,
        ).set_function(lambda: pacer.paced_s)
        if isinstance(pacer, LoopSharePacer):
            loop_share = pacer
            Gauge(
                "maestro_coordinator_event_loop_busy_share",
                "Share of the last 20 ms the event loop thread spent on the CPU.",
                registry=self.registry,
            ).set_function(lambda: loop_share.busy)

    def method_label(self, method: str) -> str:
        return method if method in KNOWN_METHODS else "other"

    def render(self, *, tenants: bool = True) -> bytes:
        """The exposition; without the tenant-labelled series unless ``tenants``."""
        if tenants:
            data: bytes = generate_latest(self.registry)
            return data
        view = CollectorRegistry(auto_describe=False)
        view.register(_WithoutTenants(self.registry))
        anonymous: bytes = generate_latest(view)
        return anonymous


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _WithoutTenants(Collector):
    """The registry's families with every sample that names a tenant left out."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            kept = Metric(family.name, family.documentation, family.type, family.unit)
            kept.samples = [s for s in family.samples if "tenant" not in s.labels]
            yield kept


def sees_tenants(settings: Settings, authorization: str | None) -> bool:
    """Whether a caller of the main listener may see the tenant-labelled series."""
    if settings.metrics_public:
        return True
    token = settings.metrics_token
    if token is None or not authorization:
        return False
    scheme, _, value = authorization.strip().partition(" ")
    expected = token.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), expected)


class MetricsListener:
    """The separate listener (`metrics_port`): the full metrics, nothing else, no credentials."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self.metrics, self.host, self.port = metrics, host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        from . import dashboard  # it imports this module

        app = web.Application()
        app.router.add_get("/metrics", self._serve)
        # the dashboard whole (tenant rows), like /metrics here
        app.router.add_get("/dashboard", dashboard.serve_page)
        app.router.add_get("/dashboard.json", self._dashboard)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # a free port was asked for: say which
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            self.port = int(sockets[0].getsockname()[1]) if sockets else 0

    async def _serve(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def _dashboard(self, request: web.Request) -> web.Response:
        from .dashboard import json_response

        return json_response(self.metrics.registry, tenants=True)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
