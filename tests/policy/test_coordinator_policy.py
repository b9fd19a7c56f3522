"""The coordinator serves a tenant's signed bundle with an ETag (fetched by a daemon's bundle
store) and explains an execution's decisions, tenant-scoped, inputs redacted."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from coordinator_apps import serve
from cryptography.hazmat.primitives.asymmetric import ec

from maestro.coordinator.app import create_app
from maestro.coordinator.auth import create_key
from maestro.coordinator.models import Role
from maestro.coordinator.settings import Settings
from maestro.coordinator.store import Store
from maestro.policy import CacheInput, PolicyEngine, RunInput
from maestro.policy.bundle import BundleStore, build
from maestro.policy.gate import PolicyGate

FREEZE = b"""package maestro.team.run

import rego.v1

deny contains {"rule": "team.freeze", "msg": "release freeze"} if input.kind == "background"
"""


class Env:
    def __init__(self, client: TestClient, store: Store) -> None:  # type: ignore[type-arg]
        self.client = client
        self.store = store

    async def auth(self, tenant: str, role: Role) -> dict[str, str]:
        key = create_key(self.store, tenant, role).plaintext
        resp = await self.client.post("/v1/token", json={"api_key": key})
        assert resp.status == 200, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    settings = Settings(data_dir=tmp_path / "coord", token_ttl_s=300, io_threads=2)
    with Store(settings.data_dir / "store") as store:
        store.add_tenant("alpha")
        store.add_tenant("beta")
        client = await serve(create_app(settings, store=store))
        try:
            yield Env(client, store)
        finally:
            await client.close()


async def test_bundle_served_with_etag_and_fetched_by_a_daemon(
    env: Env, tmp_path: Path, workspace: Callable[..., Path]
) -> None:
    signer = ec.generate_private_key(ec.SECP256R1())
    data = build(
        {"freeze.rego": FREEZE, "data.json": b"{}"}, key=signer, kid="k1", revision="r1",
        version=1, expires=datetime.now(UTC) + timedelta(days=1),
    )  # fmt: skip
    url = "/v1/tenants/alpha/policy/bundle"
    rw = await env.auth("alpha", Role.READ_WRITE)
    assert (await env.client.put(url, data=data, headers=rw)).status == 403  # admin only
    admin = await env.auth("alpha", Role.ADMIN)
    assert (await env.client.put(url, data=data, headers=admin)).status == 204

    first = await env.client.get(url, headers=rw)
    assert first.status == 200 and await first.read() == data
    etag = first.headers["ETag"]
    again = await env.client.get(url, headers={**rw, "If-None-Match": etag})
    assert again.status == 304
    other = await env.auth("beta", Role.ADMIN)
    assert (await env.client.get(url, headers=other)).status == 403

    engine = PolicyEngine.open(workspace())
    bundles = BundleStore(tmp_path / "b", engine, {"k1": signer.public_key()})
    base = str(env.client.make_url("")).rstrip("/")
    token = rw["Authorization"].removeprefix("Bearer ")
    assert await bundles.fetch(base, "alpha", token) == "updated"
    assert engine.decide(RunInput(kind="background", now_ms=1)).result == "deny"
    assert await bundles.fetch(base, "alpha", token) == "unchanged"  # by ETag


async def test_explain_by_execution_id_is_tenant_scoped_and_redacted(
    env: Env, workspace: Callable[..., Path]
) -> None:
    secret = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    gate = PolicyGate(
        PolicyEngine.open(workspace("[tool.maestro.policy]\nupload_ci_only = true\n")), None
    )
    _, record = gate.decide(CacheInput(execution_id="exec-1", action="upload", target="tests/t.py"))
    leaked = record.model_copy(update={"input": {**record.input, "note": f"token {secret}"}})
    rw = await env.auth("alpha", Role.READ_WRITE)
    body = {"decisions": [leaked.model_dump(mode="json", by_alias=True)]}
    resp = await env.client.post("/v1/tenants/alpha/policy/decisions", json=body, headers=rw)
    assert resp.status == 200, await resp.text()

    mine = await env.client.get("/api/policy/explain?executionId=exec-1", headers=rw)
    assert mine.status == 200
    text = await mine.text()
    assert secret not in text
    payload = await mine.json()
    [decision] = payload["decisions"]
    assert decision["result"] == "deny"
    assert decision["rules"][0]["rule"] == "cache.ci_only_upload"
    assert decision["rules"][0]["remediation"]
    assert "[REDACTED:" in decision["input"]["note"]

    beta = await env.auth("beta", Role.READ_WRITE)
    theirs = await env.client.get("/api/policy/explain?executionId=exec-1", headers=beta)
    assert (await theirs.json())["decisions"] == []
    assert (await env.client.get("/api/policy/explain", headers=rw)).status == 400
    assert (await env.client.get("/api/policy/explain?executionId=exec-1")).status == 401


class _App:
    """What PolicyService uses of the daemon: its root and its broadcast."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.events: list[tuple[str, object]] = []

    def broadcast(self, event: str, payload: object = None) -> int:
        self.events.append((event, payload))
        return 1


async def test_daemon_policy_service_syncs_bundle_and_decisions_and_starts_warm(
    env: Env, workspace: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from maestro.daemon.services.policy import PolicyService

    signer = ec.generate_private_key(ec.SECP256R1())
    admin = await env.auth("alpha", Role.ADMIN)
    data = build(
        {"freeze.rego": FREEZE}, key=signer, kid="k1", revision="r1", version=1,
        expires=datetime.now(UTC) + timedelta(days=1),
    )  # fmt: skip
    assert (
        await env.client.put("/v1/tenants/alpha/policy/bundle", data=data, headers=admin)
    ).status == 204
    key = create_key(env.store, "alpha", Role.READ_WRITE).plaintext
    monkeypatch.setenv("MAESTRO_TEST_POLICY_KEY", key)
    base = str(env.client.make_url("")).rstrip("/")
    root = workspace(
        f'[tool.maestro.remote]\nurl = "{base}"\ntenant = "alpha"\n'
        'api-key-env = "MAESTRO_TEST_POLICY_KEY"\n\n'
        '[tool.maestro.policy.bundle.keys]\nk1 = "team.pem"\n'
    )
    pem = signer.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    (root / "team.pem").write_bytes(pem)

    service = PolicyService(_App(root))  # type: ignore[arg-type]
    gate = await service.gate()
    assert gate is not None and service.bundles is not None
    secret = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"
    # interactive: allowed, recorded; a path holding a token is redacted before it leaves
    await service.admit("exec-a", ["tests/t.py", f"tests/{secret}/t.py"])
    await service.finished("exec-a")
    await service.sync_once()
    assert gate.engine.decide(RunInput(kind="background", now_ms=1)).result == "deny"
    rw = await env.auth("alpha", Role.READ_WRITE)
    explained = await env.client.get("/api/policy/explain?executionId=exec-a", headers=rw)
    assert [d["point"] for d in (await explained.json())["decisions"]] == ["run"]
    sent = await explained.text()
    assert secret not in sent and "tests/t.py" in sent and "[REDACTED:" in sent
    # redacted by the daemon, not only by the coordinator
    [held] = gate.decisions(execution_id="exec-a")
    assert secret not in held.model_dump_json()
    await service.stop(None)  # type: ignore[arg-type]

    # a restart with the coordinator gone: the persisted bundle is in force at once
    monkeypatch.setenv("MAESTRO_TEST_POLICY_KEY", "mk_gone")
    restarted = PolicyService(_App(root))  # type: ignore[arg-type]
    gate2 = await restarted.gate()
    assert gate2 is not None
    assert gate2.engine.decide(RunInput(kind="background", now_ms=1)).result == "deny"
    await restarted.stop(None)  # type: ignore[arg-type]
