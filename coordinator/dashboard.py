"""A small served dashboard of admission and fairness: `/dashboard` (HTML) fetching
`/dashboard.json` (queue wait p50/p95, in flight, admitted, rejected per priority level, and per
tenant for callers allowed to see tenant names, with the share of its level each tenant used).

Who sees tenant names is decided as for `/metrics` (metrics.sees_tenants): the `metrics_token`
bearer or `metrics_public`; an anonymous caller gets the per-level rows only. The page itself
holds no data, so it is public; it sends the token the user typed (kept in the page, never in
the URL) to the JSON endpoint.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field

from .metrics import sees_tenants
from .openapi import Operation, Response, operation, public_document

if TYPE_CHECKING:
    from .app import Coordinator

Key = tuple[str, str]  # (priority, tenant); tenant "" for a level's total


class Row(BaseModel):
    priority: str
    tenant: str | None = Field(default=None, description="absent in per-level rows")
    wait_p50_ms: float | None = Field(description="queue wait, estimated from histogram buckets")
    wait_p95_ms: float | None
    in_flight: int
    admitted: int
    rejected: int
    rejected_by_rule: dict[str, int]
    seat_share: float | None = Field(
        default=None,
        description="the tenant's part of the seat time its level's requests used (0-1); "
        "absent in per-level rows",
    )
    waited_s: float | None = Field(
        default=None, description="time the tenant had requests waiting for a seat"
    )
    share_while_waiting: float | None = Field(
        default=None,
        description="share of the level's seats the tenant held while it had requests "
        "waiting (0-1), the number to read against its min_share; absent if it never waited",
    )
    min_share: float | None = Field(
        default=None, description="the tenant's configured min_share; absent if it never waited"
    )


class Dashboard(BaseModel):
    tenants_visible: bool
    levels: list[Row]
    tenants: list[Row] = Field(description="empty unless tenants_visible")


def _quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus' histogram_quantile over cumulative (upper bound, count) buckets."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 0.0)
        lower, below = bound, count
    return lower


FAMILIES = {
    "maestro_coordinator_queue_wait_seconds": "wait",
    "maestro_coordinator_tenant_in_flight": "in_flight",
    "maestro_coordinator_admitted": "admitted",
    "maestro_coordinator_rejected": "rejected",
    "maestro_coordinator_seat_seconds": "seat_s",
    "maestro_coordinator_queued_seconds": "queued_s",
    "maestro_coordinator_queued_seat_seconds": "queued_seat_s",
    "maestro_coordinator_tenant_min_share": "min_share",
}
LEVEL_SEATS = "maestro_coordinator_level_seats"


def snapshot(registry: CollectorRegistry, *, tenants: bool) -> Dashboard:
    """Read from the app's registry (the main listener and the metrics listener share it)."""
    buckets: dict[Key, dict[float, float]] = defaultdict(dict)
    numbers: dict[Key, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    rules: dict[Key, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    seats: dict[str, float] = {}
    for family in registry.collect():
        if family.name == LEVEL_SEATS:
            seats.update((s.labels["priority"], s.value) for s in family.samples)
            continue
        name = FAMILIES.get(family.name)
        if name is None:
            continue
        for sample in family.samples:
            labels = sample.labels
            if "tenant" not in labels or "priority" not in labels:
                continue
            keys = ((labels["priority"], labels["tenant"]), (labels["priority"], ""))
            if name == "wait":
                if not sample.name.endswith("_bucket"):
                    continue
                bound = float(labels["le"])
                for key in keys:
                    buckets[key][bound] = buckets[key].get(bound, 0.0) + sample.value
                continue
            if name == "min_share":
                numbers[keys[0]][name] = sample.value  # a setting: not summed into the level
                continue
            if name != "in_flight" and not sample.name.endswith("_total"):
                continue  # _created
            for key in keys:
                numbers[key][name] += sample.value
                if name == "rejected":
                    rules[key][labels["rule"]] += int(sample.value)
    rows = sorted(set(buckets) | set(numbers))

    def row(key: Key) -> Row:
        cumulative = sorted(buckets.get(key, {}).items())
        p50, p95 = _quantile(cumulative, 0.5), _quantile(cumulative, 0.95)
        got = numbers.get(key, {})
        tenant_row = bool(key[1])
        level_seat_s = numbers.get((key[0], ""), {}).get("seat_s", 0.0)
        queued_s = got.get("queued_s", 0.0)
        level_seats = seats.get(key[0], 0.0)
        return Row(
            priority=key[0],
            tenant=key[1] or None,
            wait_p50_ms=None if p50 is None else round(p50 * 1000, 3),
            wait_p95_ms=None if p95 is None else round(p95 * 1000, 3),
            in_flight=int(got.get("in_flight", 0)),
            admitted=int(got.get("admitted", 0)),
            rejected=int(got.get("rejected", 0)),
            rejected_by_rule=dict(sorted(rules.get(key, {}).items())),
            seat_share=(
                round(got.get("seat_s", 0.0) / level_seat_s, 4)
                if tenant_row and level_seat_s > 0
                else None
            ),
            waited_s=round(queued_s, 3) if tenant_row else None,
            share_while_waiting=(
                round(got.get("queued_seat_s", 0.0) / (queued_s * level_seats), 4)
                if tenant_row and queued_s > 0 and level_seats > 0
                else None
            ),
            min_share=got.get("min_share") if tenant_row else None,
        )

    return Dashboard(
        tenants_visible=tenants,
        levels=[row(k) for k in rows if not k[1]],
        tenants=[row(k) for k in rows if k[1]] if tenants else [],
    )


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Maestro coordinator: admission</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}th{background:#eee}
td:first-child,td:nth-child(2){text-align:left}
</style></head><body>
<h1>Admission and fairness</h1>
<p>Metrics token (to see tenants): <input id="token" type="password" autocomplete="off">
<button id="load">Refresh</button> <span id="status"></span></p>
<h2>Priority levels</h2><table id="levels"></table>
<h2>Tenants</h2><table id="tenants"></table>
<script>
const cols = ["priority", "tenant", "wait_p50_ms", "wait_p95_ms", "in_flight", "admitted",
              "rejected", "rejected_by_rule", "seat_share", "waited_s", "share_while_waiting",
              "min_share"];
function fill(id, rows) {
  const table = document.getElementById(id);
  table.replaceChildren();
  const head = table.insertRow();
  for (const c of cols) {
    const th = document.createElement("th");
    th.textContent = c;
    head.appendChild(th);
  }
  for (const r of rows) {
    const tr = table.insertRow();
    for (const c of cols) {
      const v = r[c];
      const text = typeof v === "object" && v !== null ?
        Object.entries(v).map(([k, n]) => k + ": " + n).join(", ") : String(v ?? "");
      tr.insertCell().textContent = text;
    }
  }
}
async function load() {
  const token = document.getElementById("token").value;
  const headers = token ? {"Authorization": "Bearer " + token} : {};
  const resp = await fetch("dashboard.json", {headers});
  const data = await resp.json();
  fill("levels", data.levels);
  fill("tenants", data.tenants);
  document.getElementById("status").textContent = data.tenants_visible ?
    "tenants shown" : "tenant names hidden (no metrics token)";
}
document.getElementById("load").onclick = load;
load();
setInterval(load, 5000);
</script></body></html>
"""


class DashboardRoutes:
    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator

    @operation(
        get=public_document(
            "Admission dashboard (HTML page reading /dashboard.json)",
            "dashboard",
            "The page.",
            "text/html",
            {"type": "string"},
        )
    )
    async def page(self, request: web.Request) -> web.Response:
        return await serve_page(request)

    @operation(
        get=Operation(
            "Queue wait p50/p95, in flight, admitted, rejected per priority level (and per "
            "tenant with the metrics token, with the share of its level it used)",
            "dashboard_data",
            {"200": Response("The numbers.", Dashboard)},
            False,
        )
    )
    async def data(self, request: web.Request) -> web.Response:
        tenants = sees_tenants(self.coordinator.settings, request.headers.get("Authorization"))
        return json_response(self.coordinator.metrics.registry, tenants=tenants)


async def serve_page(request: web.Request) -> web.Response:
    return web.Response(
        text=PAGE,
        content_type="text/html",
        headers={
            "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
            "style-src 'unsafe-inline'",
            "Cache-Control": "no-store",
        },
    )


def json_response(registry: CollectorRegistry, *, tenants: bool) -> web.Response:
    return web.Response(
        body=snapshot(registry, tenants=tenants).model_dump_json().encode(),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def add_routes(app: web.Application, coordinator: Coordinator) -> None:
    routes = DashboardRoutes(coordinator)
    app.router.add_get("/dashboard", routes.page)
    app.router.add_get("/dashboard.json", routes.data)
