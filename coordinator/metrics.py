"""Prometheus metrics, one registry per app (tests run several apps in one process).

Label values come only from closed sets (route templates, known methods, status codes) or from
tenants that authenticated successfully; nothing a client can invent becomes a label, so a fuzzer
or an attacker cannot blow up the series count.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

KNOWN_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"})
LATENCY_BUCKETS = (
    0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
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

    def method_label(self, method: str) -> str:
        return method if method in KNOWN_METHODS else "other"

    def render(self) -> bytes:
        data: bytes = generate_latest(self.registry)
        return data
