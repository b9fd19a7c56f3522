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


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "maestro_coordinator_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "maestro_coordinator_request_duration_seconds",
            "Time from request start to response prepared.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.hits = Counter(
            "maestro_coordinator_cache_hits", "GET/HEAD hits.", ["tenant", "kind"], registry=r
        )
        self.misses = Counter(
            "maestro_coordinator_cache_misses", "GET/HEAD misses.", ["tenant", "kind"], registry=r
        )
        self.bytes_in = Counter(
            "maestro_coordinator_received_bytes",
            "Uncompressed bytes accepted by PUT.",
            ["tenant", "kind"],
            registry=r,
        )
        self.bytes_out = Counter(
            "maestro_coordinator_sent_bytes",
            "Body bytes sent by GET (after compression).",
            ["tenant", "kind"],
            registry=r,
        )
        self.corrupt = Counter(
            "maestro_coordinator_corrupt_entries",
            "Entries found corrupt on read and quarantined (never served).",
            ["tenant", "kind"],
            registry=r,
        )
        self.auth_failures = Counter(
            "maestro_coordinator_auth_failures",
            "Rejected requests by reason (missing, invalid, expired, retired_key, forbidden).",
            ["reason"],
            registry=r,
        )
        self.quota_rejections = Counter(
            "maestro_coordinator_quota_rejections",
            "PUTs refused with 507.",
            ["tenant"],
            registry=r,
        )
        self.in_flight = Gauge(
            "maestro_coordinator_requests_in_flight", "Requests being served.", registry=r
        )

    def method_label(self, method: str) -> str:
        return method if method in KNOWN_METHODS else "other"

    def render(self) -> bytes:
        data: bytes = generate_latest(self.registry)
        return data
