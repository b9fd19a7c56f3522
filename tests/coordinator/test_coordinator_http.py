"""The Bazel HTTP cache layout per tenant: hits, misses, integrity, encodings, limits, errors."""

from __future__ import annotations

import hashlib
import os
import re
from datetime import UTC, datetime
from typing import Any

import pytest
import zstandard
from aiohttp import web
from coord_helpers import Env, sha

from maestro.cache import ActionResult, Digest, Provenance, Timing
from maestro.cache.digest import EMPTY_DIGEST
from maestro.coordinator.app import ALLOWED, create_app
from maestro.coordinator.models import Role
from maestro.coordinator.openapi import (
    Operation,
    Response,
    UndocumentedRouteError,
    openapi_document,
    operation,
)
from maestro.coordinator.records import TenantUpdate
from maestro.coordinator.settings import Settings
from maestro.coordinator.store import Store


def make_result(*refs: Digest | None) -> bytes:
    stdout, stderr, junit = [*refs, None, None, None][:3]
    return ActionResult(
        exit_code=0,
        stdout=stdout,
        stderr=stderr,
        junit=junit,
        timing=Timing(started_at=datetime(2026, 1, 1, tzinfo=UTC), wall_s=1.0, cpu_s=1.0),
        provenance=Provenance.current(),
    ).encode()


async def test_cas_put_get_head_roundtrip(env: Env) -> None:
    h = await env.auth("alpha")
    data = os.urandom(5000)
    url = f"/alpha/cas/{sha(data)}"
    assert (await env.client.get(url, headers=h)).status == 404
    assert (await env.client.head(url, headers=h)).status == 404
    resp = await env.client.put(url, data=data, headers=h)
    assert resp.status == 200, await resp.text()
    resp = await env.client.get(url, headers=h)
    assert resp.status == 200
    assert await resp.read() == data
    resp = await env.client.head(url, headers=h)
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(len(data))
    # idempotent re-put
    assert (await env.client.put(url, data=data, headers=h)).status == 200


async def test_empty_blob_always_exists(env: Env) -> None:
    h = await env.auth("alpha", Role.READ)
    url = f"/alpha/cas/{EMPTY_DIGEST.hash}"
    resp = await env.client.get(url, headers=h)
    assert resp.status == 200
    assert await resp.read() == b""
    assert (await env.client.head(url, headers=h)).status == 200


async def test_digest_mismatch_is_400_and_nothing_stored(env: Env) -> None:
    h = await env.auth("alpha")
    data = b"hello world"
    wrong = sha(b"other")
    resp = await env.client.put(f"/alpha/cas/{wrong}", data=data, headers=h)
    assert resp.status == 400
    assert (await resp.json())["error"] == "digest_mismatch"
    assert (await env.client.get(f"/alpha/cas/{wrong}", headers=h)).status == 404
    assert (await env.client.get(f"/alpha/cas/{sha(data)}", headers=h)).status == 404
    assert env.store.usage(env.store.get_tenant("alpha")).bytes == 0  # type: ignore[arg-type]
    # a zero-length body under a non-empty hash is a mismatch too
    resp = await env.client.put(f"/alpha/cas/{wrong}", data=b"", headers=h)
    assert resp.status == 400


async def test_bad_paths_and_methods(env: Env) -> None:
    h = await env.auth("alpha")
    for bad in ("abc", "A" * 64, "g" * 64, sha(b"x") + "0"):
        assert (await env.client.get(f"/alpha/cas/{bad}", headers=h)).status == 400
    for method in ("DELETE", "POST", "PATCH", "OPTIONS"):
        resp = await env.client.request(method, f"/alpha/cas/{sha(b'x')}", headers=h)
        assert resp.status == 405, method
        assert "PUT" in resp.headers["Allow"]
    assert (await env.client.get("/alpha/xyz/" + sha(b"x"), headers=h)).status == 404


async def test_zstd_roundtrip(env: Env) -> None:
    h = await env.auth("alpha")
    data = b"compressible " * 10_000
    digest = sha(data)
    body = zstandard.ZstdCompressor().compress(data)
    headers = {**h, "Content-Encoding": "zstd", "X-Digest-SizeBytes": str(len(data))}
    resp = await env.client.put(f"/alpha/cas/{digest}", data=body, headers=headers)
    assert resp.status == 200, await resp.text()
    resp = await env.client.get(
        f"/alpha/cas/{digest}", headers={**h, "Accept-Encoding": "zstd"}, auto_decompress=False
    )
    assert resp.status == 200
    assert resp.headers["Content-Encoding"] == "zstd"
    raw = await resp.read()
    assert len(raw) < len(data)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(raw) == data
    # without Accept-Encoding: identity
    resp = await env.client.get(
        f"/alpha/cas/{digest}", headers={**h, "Accept-Encoding": "identity"}
    )
    assert "Content-Encoding" not in resp.headers
    assert await resp.read() == data


async def test_zstd_errors(env: Env) -> None:
    h = await env.auth("alpha")
    data = b"x" * 100
    headers = {**h, "Content-Encoding": "zstd"}
    resp = await env.client.put(f"/alpha/cas/{sha(data)}", data=b"not zstd", headers=headers)
    assert resp.status == 400
    zeros = b"\0" * (3 << 20)  # over the 2 MiB limit once decompressed
    bomb = zstandard.ZstdCompressor().compress(zeros)
    resp = await env.client.put(f"/alpha/cas/{sha(zeros)}", data=bomb, headers=headers)
    assert resp.status == 413
    body = zstandard.ZstdCompressor().compress(data)
    resp = await env.client.put(
        f"/alpha/cas/{sha(data)}", data=body, headers={**headers, "X-Digest-SizeBytes": "99"}
    )
    assert resp.status == 400
    resp = await env.client.put(
        f"/alpha/cas/{sha(data)}", data=data, headers={**h, "Content-Encoding": "gzip"}
    )
    assert resp.status == 415


async def test_size_limit_and_length_required(env: Env) -> None:
    h = await env.auth("alpha")
    big = b"y" * ((2 << 20) + 1)
    resp = await env.client.put(f"/alpha/cas/{sha(big)}", data=big, headers=h)
    assert resp.status == 413

    async def chunks():  # type: ignore[no-untyped-def]
        yield b"abc"

    resp = await env.client.put(f"/alpha/cas/{sha(b'abc')}", data=chunks(), headers=h)
    assert resp.status == 411


async def test_ac_validated_requires_referenced_blobs(env: Env) -> None:
    h = await env.auth("alpha")
    out = b"stdout of the test run"
    out_digest = Digest(sha(out), len(out))
    value = make_result(out_digest)
    action = sha(b"action-1")
    assert (await env.client.put(f"/alpha/ac/{action}", data=value, headers=h)).status == 200
    # referenced blob missing -> miss
    assert (await env.client.get(f"/alpha/ac/{action}", headers=h)).status == 404
    assert (await env.client.head(f"/alpha/ac/{action}", headers=h)).status == 404
    assert (
        await env.client.put(f"/alpha/cas/{out_digest.hash}", data=out, headers=h)
    ).status == 200
    resp = await env.client.get(f"/alpha/ac/{action}", headers=h)
    assert resp.status == 200
    assert await resp.read() == value  # byte-exact
    # invalid AC value refused in validated mode
    resp = await env.client.put(f"/alpha/ac/{action}", data=b"opaque junk", headers=h)
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_action_result"


async def test_raw_mode_stores_opaque_values(env: Env) -> None:
    h = await env.auth("rawco")
    action = sha(b"ccache-key")
    value = os.urandom(300)
    assert (await env.client.put(f"/rawco/ac/{action}", data=value, headers=h)).status == 200
    resp = await env.client.get(f"/rawco/ac/{action}", headers=h)
    assert await resp.read() == value
    # switching the tenant to validated mode hides raw entries (their references were never
    # checked) rather than serving them
    env.store.update_tenant("rawco", TenantUpdate(raw_ac=False))
    h2 = await env.auth("rawco")
    assert (await env.client.get(f"/rawco/ac/{action}", headers=h2)).status == 404


async def test_quota_507(env: Env) -> None:
    # with eviction off (the default evicts LRU entries instead: test_eviction.py)
    env.store.update_tenant(
        "beta", TenantUpdate(quota_bytes=10_000, policy_changes={"evict": False})
    )
    h = await env.auth("beta")
    first = os.urandom(6000)
    assert (await env.client.put(f"/beta/cas/{sha(first)}", data=first, headers=h)).status == 200
    second = os.urandom(6000)
    resp = await env.client.put(f"/beta/cas/{sha(second)}", data=second, headers=h)
    assert resp.status == 507
    body = await resp.json()
    assert body["error"] == "quota_exceeded"
    assert "quota" in body["message"] and body["hint"]
    assert (await env.client.get(f"/beta/cas/{sha(second)}", headers=h)).status == 404
    # another tenant is unaffected
    ha = await env.auth("alpha")
    assert (
        await env.client.put(f"/alpha/cas/{sha(second)}", data=second, headers=ha)
    ).status == 200


async def test_corrupt_blob_detected_and_never_served(env: Env) -> None:
    h = await env.auth("alpha")
    data = os.urandom(4096)
    digest = sha(data)
    assert (await env.client.put(f"/alpha/cas/{digest}", data=data, headers=h)).status == 200
    tenant = env.store.get_tenant("alpha")
    assert tenant is not None
    # flip a byte in place, as disk rot would
    with env.store.env.begin(write=True, db=env.store._db["cas"]) as txn:
        txn.put(tenant.prefix + bytes.fromhex(digest), data[:-1] + bytes([data[-1] ^ 1]))
    resp = await env.client.get(f"/alpha/cas/{digest}", headers=h)
    assert resp.status == 404
    assert env.store.quarantined() == 1
    assert (await env.client.head(f"/alpha/cas/{digest}", headers=h)).status == 404
    metrics = await (await env.client.get("/metrics")).text()
    assert 'maestro_coordinator_corrupt_entries_total{kind="cas",tenant="alpha"} 1.0' in metrics
    # a re-upload heals it
    assert (await env.client.put(f"/alpha/cas/{digest}", data=data, headers=h)).status == 200
    assert await (await env.client.get(f"/alpha/cas/{digest}", headers=h)).read() == data


async def test_corrupt_ac_record_detected(env: Env) -> None:
    h = await env.auth("rawco")
    action = sha(b"k")
    assert (await env.client.put(f"/rawco/ac/{action}", data=b"value", headers=h)).status == 200
    tenant = env.store.get_tenant("rawco")
    assert tenant is not None
    full = tenant.prefix + bytes.fromhex(action)
    with env.store.env.begin(write=True, db=env.store._db["ac"]) as txn:
        raw = bytes(txn.get(full))
        txn.put(full, raw[:-1] + b"X")
    assert (await env.client.get(f"/rawco/ac/{action}", headers=h)).status == 404


async def test_healthz_metrics_openapi(env: Env) -> None:
    resp = await env.client.get("/healthz")
    assert resp.status == 200 and (await resp.json())["status"] == "ok"
    h = await env.auth("alpha")
    await env.client.get(f"/alpha/cas/{sha(b'nope')}", headers=h)
    text = await (await env.client.get("/metrics")).text()
    assert 'maestro_coordinator_cache_misses_total{kind="cas",tenant="alpha"} 1.0' in text
    assert "maestro_coordinator_request_duration_seconds_bucket" in text
    assert (
        'route="/{tenant}/{kind:cas|ac}/{hash}"' in text
        or 'route="/{tenant}/{kind}/{hash}"' in text
    )
    doc = await (await env.client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    for path in (
        "/v1/token",
        "/{tenant}/cas/{hash}",
        "/{tenant}/ac/{hash}",
        "/healthz",
        "/metrics",
    ):
        assert path in doc["paths"]
    assert "TokenResponse" in doc["components"]["schemas"]


async def test_access_log_has_no_secrets(env: Env, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    caplog.set_level(logging.INFO, logger="maestro.coordinator.access")
    key = env.key("alpha")
    token = await env.token("alpha")
    await env.client.get(
        f"/alpha/cas/{sha(b'q')}?token={token}", headers={"Authorization": f"Bearer {token}"}
    )
    await env.client.get(f"/alpha/cas/{sha(b'q')}", headers={"Authorization": f"Bearer {key}"})
    lines = [r.getMessage() for r in caplog.records if r.name == "maestro.coordinator.access"]
    assert len(lines) >= 3
    blob = "\n".join(lines)
    assert token not in blob and key not in blob
    assert key.split("_", 2)[2] not in blob  # the secret part may itself hold "_"
    import json

    record = json.loads(lines[-1])
    assert record["tenant"] == "alpha" and record["status"] == 404 and record["key_id"]


def test_hashlib_sanity() -> None:
    assert hashlib.sha256(b"").hexdigest() == EMPTY_DIGEST.hash


def _documented(doc: dict[str, Any], canonical: str) -> dict[str, Any]:
    """The spec's operations at the paths a route covers (a `{kind}` may be spelled out)."""
    pattern = re.sub(r"\\\{[^}]+\\\}", r"(\\{[^}]+\\}|[^/]+)", re.escape(canonical))
    found: dict[str, Any] = {}
    for path, ops in doc["paths"].items():
        if re.fullmatch(pattern, path):
            found.update(ops)
    return found


async def test_openapi_describes_every_route(env: Env) -> None:
    """Generated from the route table: a route added without a description fails here."""
    doc = await (await env.client.get("/openapi.json")).json()
    router = env.client.app.router
    routes = list(router.routes())
    assert len(routes) >= 8
    for route in routes:
        resource = route.resource
        assert resource is not None
        ops = _documented(doc, resource.canonical)
        if route.method == "*":
            assert set(ops) == {m.strip().lower() for m in ALLOWED.split(",")}, route
        elif route.method == "HEAD" and "get" in ops:
            continue  # aiohttp's implicit HEAD beside a GET
        else:
            assert route.method.lower() in ops, f"{route.method} {resource.canonical}"
    for ops in doc["paths"].values():
        for op in ops.values():
            for resp in op["responses"].values():
                for media in resp.get("content", {}).values():
                    ref = media["schema"].get("$ref")
                    if ref:
                        assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"]
    assert doc["paths"]["/{tenant}/ac/{hash}"]["put"]["operationId"] == "put_ac"
    put_cas = doc["paths"]["/{tenant}/cas/{hash}"]["put"]
    assert put_cas["responses"]["413"]["description"] == f"Body over {2 << 20} bytes."


async def test_openapi_refuses_an_undocumented_route(settings: Settings, store: Store) -> None:
    async def extra(request: web.Request) -> web.Response:
        return web.Response()

    @operation(get=Operation("Extra", "extra", {"200": Response("OK.")}))
    async def documented(request: web.Request) -> web.Response:
        return web.Response()

    for handler, path in ((extra, "/v1/extra"), (documented, "/v1/extra/{tenant}")):
        app = create_app(settings, store=store)
        app.router.add_get(path, handler)
        app.freeze()
        try:
            if handler is extra:
                with pytest.raises(UndocumentedRouteError, match="/v1/extra: its handler"):
                    openapi_document(app.router, max_blob_bytes=1)
            else:
                doc = openapi_document(app.router, max_blob_bytes=1)
                op = doc["paths"][path]["get"]
                assert op["operationId"] == "extra" and op["parameters"][0]["name"] == "tenant"
        finally:
            await app.cleanup()


async def test_every_json_body_route_documents_the_413_it_answers(env: Env) -> None:
    """A client generated from /openapi.json knows every answer: an oversized JSON body is
    refused with a 413 that each such route documents."""
    doc = await (await env.client.get("/openapi.json")).json()
    admin = await env.auth("alpha", Role.ADMIN)
    body = b"{" + b" " * (8 << 20) + b"}"
    routes = [
        (method, path)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if "application/json" in op.get("requestBody", {}).get("content", {})
    ]
    assert len(routes) >= 5
    for method, path in routes:
        url = path.replace("{tenant}", "alpha").replace("{name}", "lsp.enabled")
        resp = await env.client.request(
            method, url, data=body, headers={**admin, "Content-Type": "application/json"}
        )
        assert resp.status == 413, f"{method.upper()} {path}: {resp.status}"
        assert "413" in doc["paths"][path][method]["responses"], f"{method.upper()} {path}"
