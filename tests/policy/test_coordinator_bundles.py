"""A tenant's team bundle at a real coordinator on loopback: with trusted keys configured
(global or per tenant) a published bundle is verified like the daemon verifies it (signature,
digests, expiry, rollback, compiles), refused with 422 otherwise while the last good stays, and
the tenant's admission refusals are decided by its team rules; a restart starts warm."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from coordinator_apps import serve
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from maestro.coordinator.app import create_app
from maestro.coordinator.auth import create_key
from maestro.coordinator.models import Role
from maestro.coordinator.settings import Settings
from maestro.coordinator.store import Store
from maestro.errors import ConfigError
from maestro.policy.bundle import build

TEAM_BURST = b"""package maestro.team.coordinator

import rego.v1

# METADATA
# custom:
#   id: team.burst
#   remediation: laptops share the team burst; CI keys have their own (ask #platform-cache)
deny contains fired if {
\tinput.refusal.rule == "rate.tenant_burst"
\tfired := {"rule": "team.burst", "msg": input.refusal.message,
\t\t"retry_after_ms": input.refusal.retry_after_ms}
}
"""
URL = "/v1/tenants/{tenant}/policy/bundle"

Signer = ec.EllipticCurvePrivateKey
Make = Callable[..., Awaitable["Env"]]


class Env:
    def __init__(self, client: TestClient, store: Store) -> None:  # type: ignore[type-arg]
        self.client = client
        self.store = store

    async def auth(self, tenant: str, role: Role = Role.READ_WRITE) -> dict[str, str]:
        key = create_key(self.store, tenant, role).plaintext
        resp = await self.client.post("/v1/token", json={"api_key": key})
        assert resp.status == 200, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}

    async def publish(self, tenant: str, data: bytes) -> tuple[int, dict[str, Any]]:
        admin = await self.auth(tenant, Role.ADMIN)
        resp = await self.client.put(URL.format(tenant=tenant), data=data, headers=admin)
        body = await resp.json() if resp.status != 204 else {}
        return resp.status, body

    async def refusal(self, tenant: str) -> dict[str, Any]:
        """Reads at a burst of 1 a second until one is refused; its 429 body. (Two in a row
        can fall on both sides of the limiter's window boundary on a loaded host.)"""
        auth = await self.auth(tenant)
        url = f"/{tenant}/cas/{hashlib.sha256(b'x').hexdigest()}"
        for _ in range(5):
            resp = await self.client.get(url, headers=auth)
            if resp.status == 429:
                body: dict[str, Any] = await resp.json()
                return body
            assert resp.status == 404, await resp.text()
        raise AssertionError("five reads at a burst of 1 a second were all served")


def pem(key: Signer, path: Path) -> Path:
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def bundle(key: Signer, *, kid: str = "k1", version: int = 1, days: float = 1) -> bytes:
    return build(
        {"burst.rego": TEAM_BURST, "data.json": b"{}"}, key=key, kid=kid,
        revision=f"r{version}", version=version,
        expires=datetime.now(UTC) + timedelta(days=days),
    )  # fmt: skip


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Make]:
    opened: list[tuple[TestClient, Store]] = []  # type: ignore[type-arg]

    async def start(**overrides: Any) -> Env:
        data_dir = tmp_path / "coord"
        settings = Settings(
            data_dir=data_dir, rate_limits="enforce", io_threads=2,
            tenants={"alpha": {"burst": 1}, "beta": {"burst": 1}}, **overrides,
        )  # fmt: skip
        store = Store(data_dir / "store")
        if not store.get_tenant("alpha"):
            store.add_tenant("alpha")
            store.add_tenant("beta")
        client = await serve(create_app(settings, store=store))
        opened.append((client, store))
        return Env(client, store)

    yield start
    for client, store in opened:
        await client.close()
        store.close()


async def test_a_verified_team_bundle_decides_the_tenants_refusals(
    make: Make, tmp_path: Path
) -> None:
    signer = ec.generate_private_key(ec.SECP256R1())
    key = pem(signer, tmp_path / "k1.pem")
    env = await make(policy_tenant_bundle_keys={"alpha": {"k1": str(key)}})

    assert (await env.refusal("alpha"))["rule"] == "rate.tenant_burst"  # built-in until then
    assert await env.publish("alpha", bundle(signer)) == (204, {})
    body = await env.refusal("alpha")
    assert body["rule"] == "team.burst"
    assert body["remediation"].startswith("laptops share the team burst")
    explained = await env.client.get(
        "/api/policy/explain", params={"decisionId": body["decisionId"]},
        headers=await env.auth("alpha"),
    )  # fmt: skip
    (record,) = (await explained.json())["decisions"]
    assert [(r["rule"], r["layer"]) for r in record["rules"]] == [
        ("rate.tenant_burst", "builtin"), ("team.burst", "team"),
    ]  # fmt: skip
    # beta trusts no key: its own bundle is served unverified, its refusals stay built-in
    other = ec.generate_private_key(ec.SECP256R1())
    assert (await env.publish("beta", bundle(other)))[0] == 204
    assert (await env.refusal("beta"))["rule"] == "rate.tenant_burst"


async def test_a_bad_bundle_is_refused_and_the_last_good_stays(make: Make, tmp_path: Path) -> None:
    signer = ec.generate_private_key(ec.SECP256R1())
    stranger = ec.generate_private_key(ec.SECP256R1())
    env = await make(policy_bundle_keys={"k1": str(pem(signer, tmp_path / "k1.pem"))})
    good = bundle(signer, version=2)
    assert (await env.publish("alpha", good))[0] == 204

    tampered = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(good), mode="r:gz") as src,
        tarfile.open(fileobj=tampered, mode="w:gz") as out,
    ):
        for member in src.getmembers():
            raw = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.endswith("burst.rego"):
                raw = raw.replace(b"team.burst", b"team.other")
                member.size = len(raw)
            out.addfile(member, io.BytesIO(raw))
    cases = {
        "digest": tampered.getvalue(),
        "unknown_key": bundle(stranger, kid="k9", version=3),
        "signature": bundle(stranger, kid="k1", version=3),
        "expired": bundle(signer, version=3, days=-1),
        "rollback": bundle(signer, version=1),
    }
    for reason, data in cases.items():
        status, body = await env.publish("alpha", data)
        assert status == 422 and body["error"] == "bundle_rejected", (reason, body)
        assert body["message"].startswith(f"{reason}:"), body
    admin = await env.auth("alpha", Role.ADMIN)
    served = await env.client.get(URL.format(tenant="alpha"), headers=admin)
    assert await served.read() == good  # daemons keep getting the last good one
    assert (await env.refusal("alpha"))["rule"] == "team.burst"
    quarantined = list((tmp_path / "coord/policy/alpha/verified/quarantine").iterdir())
    assert len(quarantined) == len(cases)


async def test_a_restarted_coordinator_starts_warm_and_keeps_the_version(
    make: Make, tmp_path: Path
) -> None:
    signer = ec.generate_private_key(ec.SECP256R1())
    keys = {"k1": str(pem(signer, tmp_path / "k1.pem"))}
    env = await make(policy_bundle_keys=keys)
    assert (await env.publish("alpha", bundle(signer, version=5)))[0] == 204
    await env.client.close()
    env.store.close()

    again = await make(policy_bundle_keys=keys)
    assert (await again.refusal("alpha"))["rule"] == "team.burst"  # no publish needed
    status, body = await again.publish("alpha", bundle(signer, version=4))
    assert status == 422 and body["message"].startswith("rollback:")


async def test_keys_rotate_with_an_overlap(make: Make, tmp_path: Path) -> None:
    old, new = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    keys = {"2026": str(pem(old, tmp_path / "old.pem")), "2027": str(pem(new, tmp_path / "n.pem"))}
    env = await make(policy_bundle_keys=keys)
    assert (await env.publish("alpha", bundle(old, kid="2026", version=1)))[0] == 204
    assert (await env.publish("alpha", bundle(new, kid="2027", version=2)))[0] == 204
    assert (await env.refusal("alpha"))["rule"] == "team.burst"


def test_an_unreadable_key_stops_the_start(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "coord", policy_bundle_keys={"k1": str(tmp_path / "missing.pem")}
    )
    with Store(settings.data_dir / "store") as store, pytest.raises(ConfigError) as caught:
        create_app(settings, store=store)
    assert "policy_bundle_keys.k1" in caught.value.message


def test_trusted_keys_come_from_the_environment_too(tmp_path: Path) -> None:
    from maestro.coordinator.settings import load_settings

    env = {"MAESTRO_COORDINATOR_POLICY_BUNDLE_KEYS": "2026=/etc/a.pem, 2027=/etc/b.pem"}
    settings = load_settings(environ=env, overrides={"data_dir": tmp_path})
    assert settings.policy_bundle_keys == {"2026": Path("/etc/a.pem"), "2027": Path("/etc/b.pem")}


def series(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of a Prometheus exposition (None when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        got = head[len(name) :]
        if got and not got.startswith("{"):
            continue
        pairs = dict(p.split("=", 1) for p in got.strip("{}").split(",") if p)
        if {k: v.strip('"') for k, v in pairs.items()} == labels:
            return float(value)
    return None


async def test_a_rejected_bundle_raises_an_incident_until_a_good_one_arrives(
    make: Make, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    signer = ec.generate_private_key(ec.SECP256R1())
    keys = {"k1": str(pem(signer, tmp_path / "k1.pem"))}
    env = await make(policy_bundle_keys=keys, metrics_public=True)
    status_url = "/v1/tenants/{tenant}/policy/status"
    rejected = "maestro_coordinator_policy_bundle_rejected_total"
    incident = "maestro_coordinator_policy_bundle_incident"
    open_now = "maestro_coordinator_policy_bundle_incidents_open"

    async def status(e: Env, tenant: str = "alpha") -> dict[str, Any]:
        resp = await e.client.get(status_url.format(tenant=tenant), headers=await e.auth(tenant))
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body

    async def metrics(e: Env) -> str:
        return await (await e.client.get("/metrics")).text()

    assert (await status(env)).get("incident") is None
    assert (await env.publish("alpha", bundle(signer, version=1)))[0] == 204
    uncompilable = build(
        {"bad.rego": b"package maestro.team.run\n\ndeny contains x if {\n"}, key=signer,
        kid="k1", revision="r2", version=2, expires=datetime.now(UTC) + timedelta(days=1),
    )  # fmt: skip
    with caplog.at_level("ERROR"):
        status_code, body = await env.publish("alpha", uncompilable)
    assert status_code == 422 and body["message"].startswith("compile:")
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("tenant alpha" in m and "(compile)" in m for m in logged), logged
    held = await status(env)
    assert held["revision"] == "r1" and held["version"] == 1  # the last good stays in force
    assert held["incident"]["active"] and held["incident"]["reason"] == "compile"
    assert (await status(env, "beta")).get("incident") is None  # another tenant's is its own
    text = await metrics(env)
    assert series(text, rejected, reason="compile", tenant="alpha") == 1
    assert series(text, incident, tenant="alpha") == 1
    assert series(text, open_now) == 1

    assert (await env.publish("alpha", bundle(signer, version=0)))[0] == 422  # rollback
    text = await metrics(env)
    assert series(text, rejected, reason="rollback", tenant="alpha") == 1
    assert (await status(env))["incident"]["reason"] == "rollback"

    # still open after a restart (persisted with the last good bundle)
    await env.client.close()
    env.store.close()
    env = await make(policy_bundle_keys=keys, metrics_public=True)
    assert (await status(env))["incident"]["reason"] == "rollback"
    assert series(await metrics(env), incident, tenant="alpha") == 1

    assert (await env.publish("alpha", bundle(signer, version=3)))[0] == 204
    cleared = await status(env)
    assert cleared.get("incident") is None and cleared["revision"] == "r3"
    text = await metrics(env)
    assert series(text, incident, tenant="alpha") == 0
    assert series(text, open_now) == 0


async def test_a_tenant_without_trusted_keys_has_no_verified_status(make: Make) -> None:
    env = await make()
    resp = await env.client.get(
        "/v1/tenants/beta/policy/status", headers=await env.auth("beta")
    )  # fmt: skip
    body = await resp.json()
    assert resp.status == 200 and body["verified"] is False and "incident" not in body
    other = await env.client.get("/v1/tenants/alpha/policy/status", headers=await env.auth("beta"))
    assert other.status in (401, 403, 404)  # never another tenant's
