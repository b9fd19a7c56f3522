"""Keys, tokens, expiry, revocation, roles, tenant isolation, settings validation."""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from aiohttp.test_utils import TestClient
from coord_helpers import Clock, Env, sha
from coordinator_apps import serve

from maestro.coordinator.app import create_app
from maestro.coordinator.auth import (
    Authenticator,
    Principal,
    TokenKeys,
    TokenRejectedError,
    create_key,
)
from maestro.coordinator.models import Role
from maestro.coordinator.records import TenantRecord
from maestro.coordinator.settings import Settings, load_settings
from maestro.coordinator.store import Store
from maestro.errors import ConfigError


async def test_key_token_expiry_refresh(env: Env) -> None:
    key = env.key("alpha")
    resp = await env.client.post("/v1/token", json={"api_key": key})
    assert resp.status == 200
    body = await resp.json()
    assert body["tenant"] == "alpha" and body["role"] == "read-write"
    assert body["expires_in"] == 300 and body["token"].startswith("mt_")
    assert resp.headers["Cache-Control"] == "no-store"
    h = {"Authorization": f"Bearer {body['token']}"}
    url = f"/alpha/cas/{sha(b'x')}"
    assert (await env.client.get(url, headers=h)).status == 404
    env.clock.now += 299
    assert (await env.client.get(url, headers=h)).status == 404
    env.clock.now += 2
    resp = await env.client.get(url, headers=h)
    assert resp.status == 401
    assert "Bearer" in resp.headers["WWW-Authenticate"]
    # refresh: exchange the key again
    assert (await env.client.get(url, headers=await env.auth("alpha"))).status == 404
    # the key may also come as the Authorization header of the token request
    resp = await env.client.post("/v1/token", headers={"Authorization": f"Bearer {key}"})
    assert resp.status == 200


async def test_revocation_is_immediate(env: Env) -> None:
    key = env.key("alpha")
    token = await env.token("alpha")
    h = {"Authorization": f"Bearer {token}"}
    url = f"/alpha/cas/{sha(b'x')}"
    assert (await env.client.get(url, headers=h)).status == 404
    key_id = key.split("_")[1]
    env.store.revoke_key(key_id)
    assert (await env.client.get(url, headers=h)).status == 401
    assert (await env.client.get(url, headers={"Authorization": f"Bearer {key}"})).status == 401
    assert (await env.client.post("/v1/token", json={"api_key": key})).status == 401


async def test_roles(env: Env) -> None:
    data = b"payload"
    url = f"/alpha/cas/{sha(data)}"
    reader = await env.auth("alpha", Role.READ)
    writer = await env.auth("alpha", Role.READ_WRITE)
    admin = await env.auth("alpha", Role.ADMIN)
    resp = await env.client.put(url, data=data, headers=reader)
    assert resp.status == 403
    assert (await env.client.get(url, headers=reader)).status == 404
    assert (await env.client.put(url, data=data, headers=writer)).status == 200
    assert (await env.client.get(url, headers=reader)).status == 200
    assert (await env.client.put(url, data=data, headers=admin)).status == 200
    assert (await env.client.get("/v1/tenants/alpha", headers=writer)).status == 403
    resp = await env.client.get("/v1/tenants/alpha", headers=admin)
    assert resp.status == 200
    status = await resp.json()
    assert status["cas_entries"] == 1 and status["used_bytes"] == len(data)
    assert (await env.client.get("/v1/tenants/beta", headers=admin)).status == 403


async def test_an_admin_on_another_tenants_routes_is_told_the_tenant_is_not_its_own(
    env: Env,
) -> None:
    """The tenant's admin routes (status, keys) refuse another tenant's admin as every tenant
    route does: the credential is not for that tenant (it is an admin, of its own tenant)."""
    admin = await env.auth("alpha", Role.ADMIN)
    for method, path in (
        ("GET", "/v1/tenants/beta"),
        ("POST", "/v1/tenants/beta/keys"),
        ("DELETE", "/v1/tenants/beta/keys/k1"),
    ):
        resp = await env.client.request(method, path, headers=admin, json={"role": "read"})
        assert resp.status == 403, path
        body = await resp.json()
        assert body["message"] == "this credential does not grant access to that tenant", path


async def test_credential_forms(env: Env) -> None:
    url = f"/alpha/cas/{sha(b'x')}"
    token = await env.token("alpha")
    basic = base64.b64encode(f"anyone:{token}".encode()).decode()
    assert (await env.client.get(url, headers={"Authorization": f"Basic {basic}"})).status == 404
    key = env.key("alpha")
    assert (await env.client.get(url, headers={"Authorization": f"Bearer {key}"})).status == 404
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    for bad in (
        "Bearer",
        "Bearer ",
        f"Bearer {tampered}",
        f"Bearer {key[:-2]}xx",
        "Basic !!!",
        "Digest abc",
        f"Bearer mt_{'a' * 2000}.b",
        "Bearer mt_e30.",  # "{}" payload, empty signature
    ):
        assert (await env.client.get(url, headers={"Authorization": bad})).status == 401, bad
    assert (await env.client.get(url)).status == 401
    # a token cannot mint tokens (a leaked token cannot extend itself)
    assert (await env.client.post("/v1/token", json={"api_key": token})).status == 401
    assert (await env.client.post("/v1/token", data=b"{not json")).status == 400


async def test_tenant_isolation_and_guessed_digests(env: Env) -> None:
    a = await env.auth("alpha")
    b = await env.auth("beta")
    secret = b"alpha's secret " + os.urandom(16)
    digest = sha(secret)
    assert (await env.client.put(f"/alpha/cas/{digest}", data=secret, headers=a)).status == 200
    # beta guesses the digest in its own namespace: a miss, not a hint
    assert (await env.client.get(f"/beta/cas/{digest}", headers=b)).status == 404
    assert (await env.client.head(f"/beta/cas/{digest}", headers=b)).status == 404
    # beta uses its credential on alpha's path: 403 whether or not the entry or tenant exists
    r1 = await env.client.get(f"/alpha/cas/{digest}", headers=b)
    r2 = await env.client.get(f"/alpha/cas/{sha(b'absent')}", headers=b)
    r3 = await env.client.get(f"/ghost/cas/{digest}", headers=b)
    assert r1.status == r2.status == r3.status == 403
    assert await r1.read() == await r2.read() == await r3.read()
    # the same digest in two tenants is two entries: beta's upload does not touch alpha's usage
    assert (await env.client.put(f"/beta/cas/{digest}", data=secret, headers=b)).status == 200
    alpha = env.store.get_tenant("alpha")
    beta = env.store.get_tenant("beta")
    assert alpha is not None and beta is not None
    assert env.store.usage(alpha).cas_entries == env.store.usage(beta).cas_entries == 1


async def test_unknown_and_unauthenticated_answers_do_not_leak(env: Env) -> None:
    for tenant in ("alpha", "ghost"):
        resp = await env.client.get(f"/{tenant}/cas/{sha(b'x')}")
        assert resp.status == 401
        assert "alpha" not in await resp.text()


def test_settings_validation(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('port = 9000\nmax_blob_bytes = "64MiB"\ntoken_ttl_s = 120\n')
    s = load_settings(cfg, environ={"MAESTRO_COORDINATOR_PORT": "9100"})
    assert s.port == 9100 and s.max_blob_bytes == 64 << 20 and s.token_ttl_s == 120
    s = load_settings(cfg, environ={}, overrides={"port": 9200, "host": None})
    assert s.port == 9200 and s.host == "127.0.0.1"
    with pytest.raises(ConfigError, match="token_ttl_s"):
        load_settings(None, environ={"MAESTRO_COORDINATOR_TOKEN_TTL_S": "3600"})
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(None, environ={"MAESTRO_COORDINATOR_PROT": "1"})
    cfg.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="prot"):
        load_settings(cfg, environ={})
    cfg.write_text("port = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(cfg, environ={})
    with pytest.raises(ConfigError, match="max_blob_bytes"):
        load_settings(None, environ={"MAESTRO_COORDINATOR_MAX_BLOB_BYTES": "lots"})


# -- signing-key rotation ------------------------------------------------------------------------

OLD, NEW = "o" * 40, "n" * 40


@contextlib.asynccontextmanager
async def _served(settings: Settings, store: Store, clock: Clock) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    client = await serve(create_app(settings, store=store, clock=clock))
    try:
        yield client
    finally:
        await client.close()


async def _token(client: TestClient, key: str) -> str:  # type: ignore[type-arg]
    resp = await client.post("/v1/token", json={"api_key": key})
    assert resp.status == 200, await resp.text()
    token: str = (await resp.json())["token"]
    return token


async def test_key_rotation(tmp_path: Path, store: Store) -> None:
    clock = Clock()
    key = create_key(store, "alpha", Role.READ_WRITE).plaintext
    url = f"/alpha/cas/{sha(b'x')}"

    def settings(**keys: object) -> Settings:
        return Settings.model_validate({"data_dir": tmp_path / "coord", **keys})

    # 1. signed with "k1"
    before = settings(token_keys={"k1": OLD})
    async with _served(before, store, clock) as client:
        old_token = await _token(client, key)
    assert jwt.get_unverified_header(old_token[3:])["kid"] == "k1"

    # 2. "k2" signs, "k1" still verifies: tokens minted before the rotation keep working
    during = settings(token_keys={"k1": OLD, "k2": NEW}, token_signing_kid="k2")
    async with _served(during, store, clock) as client:
        new_token = await _token(client, key)
        assert jwt.get_unverified_header(new_token[3:])["kid"] == "k2"
        for token in (old_token, new_token):
            resp = await client.get(url, headers={"Authorization": f"Bearer {token}"})
            assert resp.status == 404, await resp.text()

    # 3. "k1" retired: its tokens are refused and the answer says why and what to do
    after = settings(token_keys={"k2": NEW}, token_retired_kids=["k1"])
    async with _served(after, store, clock) as client:
        resp = await client.get(url, headers={"Authorization": f"Bearer {old_token}"})
        assert resp.status == 401
        body = await resp.json()
        assert "retired key 'k1'" in body["message"] and "POST /v1/token" in body["hint"]
        assert (
            await client.get(url, headers={"Authorization": f"Bearer {new_token}"})
        ).status == 404
        metrics = await (await client.get("/metrics")).text()
        assert 'maestro_coordinator_auth_failures_total{reason="retired_key"} 1.0' in metrics

    # 4. a key nobody configured is "unknown", not "retired"
    async with _served(settings(token_keys={"k3": "t" * 40}), store, clock) as client:
        resp = await client.get(url, headers={"Authorization": f"Bearer {new_token}"})
        assert resp.status == 401 and "unknown key 'k2'" in (await resp.json())["message"]


async def test_forged_and_legacy_tokens_are_refused(env: Env) -> None:
    token = await env.token("alpha")
    header = jwt.get_unverified_header(token[3:])
    claims = jwt.decode(token[3:], options={"verify_signature": False})
    url = f"/alpha/cas/{sha(b'x')}"
    forged = [
        # the right kid, the wrong secret
        jwt.encode(claims, "x" * 40, algorithm="HS256", headers={"kid": header["kid"]}),
        # no signature at all
        jwt.encode(claims, None, algorithm="none", headers={"kid": header["kid"]}),
        # claims swapped (tenant beta) under the original header and signature
        ".".join(
            [
                token[3:].split(".")[0],
                jwt.encode({**claims, "ten": "beta"}, "k" * 40).split(".")[1],
                token.split(".")[2],
            ]
        ),
    ]
    for bad in forged:
        resp = await env.client.get(url, headers={"Authorization": f"Bearer mt_{bad}"})
        assert resp.status == 401, bad
    # The format before JWT (`mt_<payload>.<sig>`, one unnamed secret) is refused: clients
    # refresh on a 401 and tokens live minutes, so nothing is lost.
    legacy = "mt_eyJrIjoiYWJjIiwidCI6ImFscGhhIiwiZSI6MTkwMDAwMDMwMC4wfQ.c2lnbmF0dXJl"
    assert (await env.client.get(url, headers={"Authorization": f"Bearer {legacy}"})).status == 401
    # expiry is the coordinator's clock, and the answer says so
    env.clock.now += 10_000
    resp = await env.client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 401 and (await resp.json())["message"] == "token expired"


def test_token_key_settings(tmp_path: Path) -> None:
    env = {
        "MAESTRO_COORDINATOR_TOKEN_KEYS": f"k1={OLD}, k2={NEW}",
        "MAESTRO_COORDINATOR_TOKEN_SIGNING_KID": "k2",
        "MAESTRO_COORDINATOR_TOKEN_RETIRED_KIDS": "k0,kminus1",
    }
    s = load_settings(None, environ=env)
    assert set(s.token_keys) == {"k1", "k2"} and s.token_retired_kids == ["k0", "kminus1"]
    assert OLD not in repr(s) and OLD not in str(s.model_dump())  # secrets never printed
    bad = [
        ({"MAESTRO_COORDINATOR_TOKEN_KEYS": f"k1={OLD},k2={NEW}"}, "token_signing_kid"),
        ({"MAESTRO_COORDINATOR_TOKEN_KEYS": "k1=short"}, "at least 32"),
        (
            {
                "MAESTRO_COORDINATOR_TOKEN_KEYS": f"k1={OLD}",
                "MAESTRO_COORDINATOR_TOKEN_RETIRED_KIDS": "k1",
            },
            "both valid and retired",
        ),
        (
            {
                "MAESTRO_COORDINATOR_TOKEN_KEYS": f"k1={OLD}",
                "MAESTRO_COORDINATOR_TOKEN_SECRET": NEW,
            },
            "not both",
        ),
        (
            {
                "MAESTRO_COORDINATOR_TOKEN_KEYS": f"k1={OLD}",
                "MAESTRO_COORDINATOR_TOKEN_SIGNING_KID": "k9",
            },
            "not among",
        ),
        ({"MAESTRO_COORDINATOR_TOKEN_KEYS": f"bad kid={OLD}"}, "token key id"),
        ({"MAESTRO_COORDINATOR_TOKEN_KEYS": "k1"}, "kid=secret"),
        ({"MAESTRO_COORDINATOR_TOKEN_SECRET": "short"}, "at least 32"),
    ]
    for environ, message in bad:
        with pytest.raises(ConfigError, match=message) as refused:
            load_settings(None, environ=environ)
        assert OLD not in str(refused.value) and NEW not in str(refused.value)


def test_a_verified_token_is_checked_once_while_its_key_stays_in_force(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The signature of a token a client sends again is not checked again; a key retired or
    replaced since, or a token differing by one character, is checked (and refused) as before."""
    decoded: list[str] = []
    decode = jwt.decode_complete

    def counted(body: str, *args: object, **kwargs: object) -> dict[str, object]:
        decoded.append(body)
        return decode(body, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode_complete", counted)
    keys = [TokenKeys("k1", {"k1": OLD.encode()})]
    auth = Authenticator(
        None,  # type: ignore[arg-type]  # only signatures are checked here
        lambda: keys[0],
        ttl_s=600,
        accept_api_keys=False,
        clock=lambda: 1_000_000.0,
    )
    tenant = TenantRecord(id=1, name="alpha", created_at=datetime.now(UTC))
    principal = Principal(tenant=tenant, role=Role.READ_WRITE, key_id="kid1")
    token, _ = auth.mint(principal)
    for _ in range(3):
        assert auth._verified_claims(token)["ten"] == "alpha"
    assert len(decoded) == 1
    # one character changed: checked in full, refused
    head, payload, signature = token.split(".")
    flipped = (
        f"{head}.{payload}.{signature[:-2]}{'A' if signature[-2] != 'A' else 'B'}{signature[-1]}"
    )
    with pytest.raises(TokenRejectedError):
        auth._verified_claims(flipped)
    assert len(decoded) == 2
    # the same kid with another secret: checked again under it, refused
    keys[0] = TokenKeys("k1", {"k1": NEW.encode()})
    with pytest.raises(TokenRejectedError) as refused:
        auth._verified_claims(token)
    assert refused.value.reason == "invalid" and len(decoded) == 3
    # the kid retired: refused as such, without a check
    keys[0] = TokenKeys("k2", {"k2": NEW.encode()}, retired=frozenset({"k1"}))
    with pytest.raises(TokenRejectedError) as refused:
        auth._verified_claims(token)
    assert refused.value.reason == "retired_key"
    # back in force with its secret: verified once more, then kept again
    keys[0] = TokenKeys("k1", {"k1": OLD.encode()})
    auth._verified_claims(token)
    auth._verified_claims(token)
    assert len(decoded) == 4
