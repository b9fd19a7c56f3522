"""Refusals are policy decisions: a real coordinator on loopback refuses, the `coordinator`
decision point (built-in Rego) names the rule and remediation in the 429, the decision is
recorded for the tenant and explained by id; allowed requests never evaluate Rego."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from coord_helpers import Clock, Env, sha
from coordinator_apps import serve

from maestro.coordinator.admission import EXECUTION_HEADER
from maestro.coordinator.app import STATE, create_app
from maestro.coordinator.policy_routes import AdmissionPolicy
from maestro.coordinator.settings import Settings
from maestro.coordinator.store import Store

EnvFactory = Callable[..., Any]
BURST_REMEDIATION = (
    "spread the requests over time, or ask an operator to raise the burst "
    "(maestro coordinator tenant set NAME --burst N)"
)  # the METADATA of rate.tenant_burst in policy/rego/builtin/coordinator.rego


@pytest.fixture
async def make_env(tmp_path: Path) -> AsyncIterator[EnvFactory]:
    opened: list[tuple[TestClient, Store]] = []  # type: ignore[type-arg]

    async def make(**overrides: Any) -> Env:
        settings = Settings(data_dir=tmp_path / f"coord{len(opened)}", **overrides)
        store = Store(settings.data_dir / "store")
        store.add_tenant("alpha")
        store.add_tenant("beta")
        app = create_app(settings, store=store, clock=Clock())
        client = await serve(app)
        opened.append((client, store))
        return Env(client, store, Clock())

    yield make
    for client, store in opened:
        await client.close()
        store.close()


def _policy(env: Env) -> AdmissionPolicy:
    explainer = env.client.app[STATE].gate.explainer
    assert isinstance(explainer, AdmissionPolicy)
    return explainer


async def test_refusal_carries_rego_rule_remediation_and_decision_id(make_env: EnvFactory) -> None:
    env = await make_env(rate_limits="enforce", tenants={"alpha": {"burst": 1}})
    alpha, beta = await env.auth("alpha"), await env.auth("beta")
    url = f"/alpha/cas/{sha(b'x')}"
    assert (await env.client.get(url, headers=alpha)).status == 404
    resp = await env.client.get(url, headers={**alpha, EXECUTION_HEADER: "run-42"})
    body = await resp.json()
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    assert body["rule"] == "rate.tenant_burst"
    assert body["remediation"] == BURST_REMEDIATION
    assert body["retryAfterMs"] > 0 and len(body["decisionId"]) == 32

    explained = await env.client.get(
        "/api/policy/explain", params={"decisionId": body["decisionId"]}, headers=alpha
    )
    assert explained.status == 200
    found = await explained.json()
    assert found["tenant"] == "alpha" and found["executionId"] == "run-42"
    assert found["decisionId"] == body["decisionId"]
    (record,) = found["decisions"]
    assert record["point"] == "coordinator" and record["result"] == "deny"
    # the names of maestro explain --json and of the editor (schema, retryAfterMs, executionId)
    assert record["schema"] == "maestro.policy.coordinator/1"
    assert record["executionId"] == "run-42" and record["summary"].startswith("coordinator denied")
    assert record["rules"][0]["rule"] == "rate.tenant_burst"
    assert record["rules"][0]["remediation"] == BURST_REMEDIATION
    assert record["input"]["refusal"]["rule"] == "rate.tenant_burst"
    assert record["input"]["method"] == "GET" and record["retryAfterMs"] == body["retryAfterMs"]
    assert "Bearer" not in str(record["input"])  # no credential reaches the record

    by_run = await env.client.get(
        "/api/policy/explain", params={"executionId": "run-42"}, headers=alpha
    )
    assert [d["id"] for d in (await by_run.json())["decisions"]] == [body["decisionId"]]

    # another tenant: no such decision, and nothing under the same execution id
    other = await env.client.get(
        "/api/policy/explain", params={"decisionId": body["decisionId"]}, headers=beta
    )
    assert other.status == 404
    other_run = await env.client.get(
        "/api/policy/explain", params={"executionId": "run-42"}, headers=beta
    )
    assert (await other_run.json())["decisions"] == []
    anonymous = await env.client.get("/api/policy/explain", params={"decisionId": "x"})
    assert anonymous.status == 401


async def test_explain_says_what_the_cli_and_the_editor_say(make_env: EnvFactory) -> None:
    """One model on three wires: a refusal's record from the explain API has the field names
    (and values) of the same record printed by ``maestro explain --json`` and of the editor
    protocol's ``maestro/explain`` decisions (the schema the clients' types are generated from).
    Fails when one of them renames a field, adds one or serializes without the aliases."""
    from pydantic import TypeAdapter

    from maestro.cli.explain_cmd import _policy_row
    from maestro.policy.model import DecisionRecord
    from maestro.server.methods import ExplainResult

    env = await make_env(rate_limits="enforce", tenants={"alpha": {"burst": 1}})
    alpha = await env.auth("alpha")
    url = f"/alpha/cas/{sha(b'x')}"
    assert (await env.client.get(url, headers=alpha)).status == 404
    refused = await env.client.get(url, headers={**alpha, EXECUTION_HEADER: "run-7"})
    assert refused.status == 429
    found = await env.client.get(
        "/api/policy/explain", params={"executionId": "run-7"}, headers=alpha
    )
    (record,) = (await found.json())["decisions"]

    cli = _policy_row(DecisionRecord.model_validate(record))
    schema = TypeAdapter(ExplainResult).json_schema(mode="serialization", by_alias=True)
    editor = schema["$defs"]["DecisionRecord"]["properties"]
    editor_rule = schema["$defs"]["FiredRule"]["properties"]
    assert set(cli) == set(editor) and set(cli["rules"][0]) == set(editor_rule)
    # the coordinator leaves null fields out (all its answers do); every other name is the same
    assert set(record) <= set(cli) and all(cli[k] is None for k in set(cli) - set(record))
    assert {k: cli[k] for k in record} == {**record, "rules": cli["rules"]}
    (rule,) = record["rules"]
    assert set(rule) <= set(editor_rule) and {k: cli["rules"][0][k] for k in rule} == rule
    assert {"schema", "executionId", "retryAfterMs", "summary"} <= set(record)
    assert "retryAfterMs" in rule


async def test_admitted_requests_never_evaluate_rego(make_env: EnvFactory) -> None:
    env = await make_env(rate_limits="enforce", tenants={"alpha": {"burst": 1000}})
    policy = _policy(env)
    calls: list[object] = []
    evaluate = policy.policy.evaluate

    def counting(inp: Any) -> Any:
        calls.append(inp)
        return evaluate(inp)

    policy.policy.evaluate = counting  # type: ignore[method-assign]
    headers = await env.auth("alpha")
    for i in range(50):
        resp = await env.client.get(f"/alpha/cas/{sha(str(i).encode())}", headers=headers)
        assert resp.status == 404
    assert calls == [] and not policy.timings


async def test_shadow_refusal_is_recorded_but_served(make_env: EnvFactory) -> None:
    env = await make_env(rate_limits="shadow", tenants={"alpha": {"burst": 1}})
    headers = {**await env.auth("alpha"), EXECUTION_HEADER: "shadow-run"}
    url = f"/alpha/cas/{sha(b'y')}"
    statuses = [(await env.client.get(url, headers=headers)).status for _ in range(3)]
    assert statuses == [404, 404, 404]
    await asyncio.sleep(1.05)  # shadow records are sampled: one per tenant and rule a second
    assert (await env.client.get(url, headers=headers)).status == 404
    assert (await env.client.get(url, headers=headers)).status == 404
    decisions: list[Any] = []
    for _ in range(50):  # recorded off the request's path
        resp = await env.client.get(
            "/api/policy/explain", params={"executionId": "shadow-run"}, headers=headers
        )
        decisions = (await resp.json())["decisions"]
        if len(decisions) == 2:
            break
        await asyncio.sleep(0.05)
    assert len(decisions) == 2
    for record in decisions:
        assert record["result"] == "allow" and record["input"]["refusal"]["shadow"] is True
        assert record["rules"][0]["rule"] == "rate.tenant_burst" and record["rules"][0]["shadow"]


async def test_a_tenants_flood_of_refusals_buys_a_bounded_number_of_decisions(
    make_env: EnvFactory,
) -> None:
    env = await make_env(rate_limits="enforce", tenants={"alpha": {"burst": 1}})
    policy = _policy(env)
    alpha = await env.auth("alpha")
    url = f"/alpha/cas/{sha(b'f')}"
    assert (await env.client.get(url, headers=alpha)).status == 404
    bodies = []
    for _ in range(40):
        resp = await env.client.get(url, headers=alpha)
        if resp.status == 429:
            bodies.append(await resp.json())
    assert len(bodies) >= 30
    decided = [b for b in bodies if "decisionId" in b]
    # the first ones are decided (the bucket's ten), the flood after them is not: still a 429
    # with the rule, its advice and the built-in remediation
    assert 10 <= len(decided) < len(bodies) and "decisionId" in bodies[0]
    assert len(policy.timings) == len(decided)
    for body in bodies:
        assert body["rule"] == "rate.tenant_burst" and body["retryAfterMs"] > 0
        assert body["remediation"]
    # another tenant's refusal is decided: the budget is per tenant
    env2 = await make_env(rate_limits="enforce", tenants={"beta": {"burst": 1}})
    beta = await env2.auth("beta")
    assert (await env2.client.get(f"/beta/cas/{sha(b'f')}", headers=beta)).status == 404
    resp = await env2.client.get(f"/beta/cas/{sha(b'f')}", headers=beta)
    assert resp.status == 429 and "decisionId" in await resp.json()
    await asyncio.sleep(0.25)  # the bucket refills: alpha's next refusal is decided again
    for _ in range(3):  # (one request a second passes the burst window)
        resp = await env.client.get(url, headers=alpha)
        if resp.status == 429:
            break
    assert resp.status == 429 and "decisionId" in await resp.json()


async def test_decision_latency_on_refusal(
    make_env: EnvFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """p95 of the decision on refusal (Rego evaluation; evaluation + record) and the 429's
    round trip, against an admitted request's round trip."""
    # every refusal decided here, to time them all
    monkeypatch.setattr("maestro.coordinator.policy_routes.DECISIONS_PER_TENANT_S", 1e6)
    env = await make_env(rate_limits="enforce", tenants={"alpha": {"burst": 1}})
    policy = _policy(env)
    alpha = await env.auth("alpha")
    beta = await env.auth("beta")
    refused, allowed = [], []
    for _ in range(200):
        started = time.perf_counter()
        resp = await env.client.get(f"/alpha/cas/{sha(b'z')}", headers=alpha)
        if resp.status == 429:  # one a second gets through the 1 s burst window
            refused.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert (await env.client.get(f"/beta/cas/{sha(b'z')}", headers=beta)).status == 404
        allowed.append(time.perf_counter() - started)

    def p95(values: list[float]) -> float:
        return statistics.quantiles(values, n=20)[-1] * 1000

    evaluation = [t[0] for t in policy.timings]
    recorded = [t[1] for t in policy.timings]
    print(
        f"\npolicy decision on refusal p95 {p95(evaluation):.2f} ms (median "
        f"{statistics.median(evaluation) * 1000:.2f}); with record p95 {p95(recorded):.2f} ms; "
        f"429 round trip p95 {p95(refused):.2f} ms; admitted round trip p95 "
        f"{p95(allowed):.2f} ms"
    )
    assert len(evaluation) == len(refused) > 150
    assert p95(evaluation) < 20  # the seed's limit for a policy check (shared 2-core host)


METRICS_TOKEN = "metrics-" + "t0ken" * 4


async def test_dashboard_hides_tenants_from_anonymous_callers(make_env: EnvFactory) -> None:
    env = await make_env(
        rate_limits="enforce", tenants={"alpha": {"burst": 1}}, metrics_token=METRICS_TOKEN
    )
    alpha = await env.auth("alpha")
    statuses = [
        (await env.client.get(f"/alpha/cas/{sha(b'd')}", headers=alpha)).status for _ in range(3)
    ]
    assert 404 in statuses and 429 in statuses

    page = await env.client.get("/dashboard")
    assert page.status == 200 and page.content_type == "text/html"
    assert "dashboard.json" in await page.text()

    anonymous = await env.client.get("/dashboard.json")
    text = await anonymous.text()
    assert anonymous.status == 200 and "alpha" not in text
    data = await anonymous.json()
    assert data["tenants_visible"] is False and data["tenants"] == []
    (level,) = [row for row in data["levels"] if row["priority"] == "interactive"]
    assert level["admitted"] >= 1 and level["rejected"] >= 1
    assert level["rejected_by_rule"]["rate.tenant_burst"] >= 1
    assert level["wait_p50_ms"] is not None and level["wait_p95_ms"] is not None

    # a tenant's own credential is no metrics credential
    as_tenant = await env.client.get("/dashboard.json", headers=alpha)
    assert "alpha" not in await as_tenant.text()

    operator = await env.client.get(
        "/dashboard.json", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    full = await operator.json()
    assert full["tenants_visible"] is True
    (row,) = [r for r in full["tenants"] if r["tenant"] == "alpha"]
    assert row["priority"] == "interactive" and row["in_flight"] == 0
    assert row["admitted"] == level["admitted"] and row["rejected"] == level["rejected"]


async def test_fair_queuing_refusals_are_explained_by_rego(make_env: EnvFactory) -> None:
    """The admission path (not only rate limits): queue full and wait budget, each with its
    Rego rule's remediation and a decision the tenant can look up."""
    from test_fairness import _slow_put, until_admitted

    env = await make_env(
        concurrency=4,  # ci: one seat, one queue of one request
        queues_per_level=1,
        queue_hand_size=1,
        queue_length=1,
        max_queue_wait_s=2.0,  # the queued request outlives the next one's refusal, under load too
        default_tenant_policy={"priority": "ci"},
    )
    token = await env.token("alpha")
    port = env.client.server.port
    assert port is not None
    holder = await asyncio.to_thread(_slow_put, port, "alpha", token)
    try:
        await until_admitted(env, "ci", in_flight=1, queued=0)
        headers = {"Authorization": f"Bearer {token}"}
        url = f"/alpha/cas/{sha(b'q')}"
        waiting = asyncio.create_task(env.client.get(url, headers=headers))
        await until_admitted(env, "ci", in_flight=1, queued=1)
        full = await (await env.client.get(url, headers=headers)).json()
        budget = await (await waiting).json()
    finally:
        holder.close()
    assert full["rule"] == "admission.queue_full"
    assert full["remediation"].startswith("retry after the advised delay and send fewer")
    assert budget["rule"] == "admission.wait_budget"
    assert budget["remediation"].endswith(
        "(maestro coordinator tenant set NAME --weight/--min-share)"
    )
    for body in (full, budget):
        resp = await env.client.get(
            "/api/policy/explain", params={"decisionId": body["decisionId"]}, headers=headers
        )
        (record,) = (await resp.json())["decisions"]
        assert record["rules"][0]["rule"] == body["rule"]
        assert record["input"]["priority"] == "ci" and record["input"]["in_flight"] >= 1


async def test_metrics_listener_serves_the_whole_dashboard(make_env: EnvFactory) -> None:
    import aiohttp

    from maestro.coordinator.app import METRICS_LISTENER

    env = await make_env(metrics_port=0, metrics_host="127.0.0.1")
    alpha = await env.auth("alpha")
    assert (await env.client.get(f"/alpha/cas/{sha(b'm')}", headers=alpha)).status == 404
    port = env.client.app[METRICS_LISTENER].port
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/dashboard.json") as resp:
            data = await resp.json()
        async with session.get(f"http://127.0.0.1:{port}/dashboard") as resp:
            assert resp.status == 200 and "dashboard.json" in await resp.text()
    assert data["tenants_visible"] is True
    assert [r["tenant"] for r in data["tenants"]] == ["alpha"]
    assert "alpha" not in await (await env.client.get("/dashboard.json")).text()


async def test_dashboard_shows_the_share_of_its_level_each_tenant_used(
    make_env: EnvFactory,
) -> None:
    """An operator reads, per tenant, its part of the level's seat time and the share of seats
    it held while it had requests waiting (what min_share promises)."""
    from test_fairness import _slow_put

    env = await make_env(
        concurrency=4,  # ci: one seat
        queues_per_level=1,
        queue_hand_size=1,
        max_queue_wait_s=5.0,
        default_tenant_policy={"priority": "ci", "min_share": 0.25},
        metrics_public=True,
    )
    token = await env.token("alpha")
    port = env.client.server.port
    assert port is not None
    holder = await asyncio.to_thread(_slow_put, port, "alpha", token)  # holds the seat
    headers = {"Authorization": f"Bearer {token}"}
    try:
        await asyncio.sleep(0.2)
        waiting = asyncio.create_task(env.client.get(f"/alpha/cas/{sha(b'w')}", headers=headers))
        await asyncio.sleep(0.6)
    finally:
        holder.close()  # the seat comes free: the waiting request is admitted
    assert (await waiting).status == 404
    beta = await env.auth("beta")
    assert (await env.client.get(f"/beta/cas/{sha(b'w')}", headers=beta)).status == 404

    data = await (await env.client.get("/dashboard.json")).json()
    rows = {r["tenant"]: r for r in data["tenants"] if r["priority"] == "ci"}
    alpha, other = rows["alpha"], rows["beta"]
    assert alpha["waited_s"] >= 0.4 and alpha["share_while_waiting"] >= 0.9, alpha
    assert alpha["min_share"] == 0.25  # what the share while waiting is read against
    assert other["share_while_waiting"] is None and other["waited_s"] == 0.0, other
    assert other["min_share"] is None
    assert alpha["seat_share"] > 0.9 > other["seat_share"] >= 0.0  # its one quick read
    assert abs(alpha["seat_share"] + other["seat_share"] - 1.0) < 0.01
    (level,) = [r for r in data["levels"] if r["priority"] == "ci"]
    assert level["seat_share"] is None and level["share_while_waiting"] is None
    assert level["min_share"] is None
    page = await (await env.client.get("/dashboard")).text()
    assert "share_while_waiting" in page and "min_share" in page
