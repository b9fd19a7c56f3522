"""Tenant-isolation fuzz: >= 10,000 randomized requests against the in-process app.

Oracle: zero 5xx; no 2xx on a path outside the caller's tenant; no GET/HEAD hit on an entry
that the path's tenant never stored (a guessed digest from another tenant must miss); no body
served that carries another tenant's marker.
"""

from __future__ import annotations

import base64
import os
import random
import time
from datetime import UTC, datetime

import pytest
import zstandard
from coord_helpers import Env, sha

from maestro.cache import ActionResult, Provenance, Timing
from maestro.coordinator.models import Role

TENANTS = ("alpha", "beta", "rawco")
N_REQUESTS = int(os.environ.get("MAESTRO_FUZZ_REQUESTS", "10000"))


def _result(marker: str) -> bytes:
    return ActionResult(
        exit_code=0,
        timing=Timing(started_at=datetime(2026, 1, 1, tzinfo=UTC), wall_s=0.1, cpu_s=0.1),
        provenance=Provenance.current(),
        inputs={"marker": marker},
    ).encode()


@pytest.mark.slow
async def test_isolation_fuzz(env: Env) -> None:
    rng = random.Random(int(os.environ.get("MAESTRO_FUZZ_SEED", "20261122")))
    tokens: dict[tuple[str, Role], str] = {}
    for tenant in TENANTS:
        for role in Role:
            tokens[tenant, role] = await env.token(tenant, role)
    keys = {t: env.key(t, Role.READ_WRITE) for t in TENANTS}
    revoked_key = env.key("alpha", Role.ADMIN)
    revoked_token = tokens["alpha", Role.ADMIN]
    env.store.revoke_key(revoked_key.split("_")[1])

    # Seed: each tenant stores marked blobs and AC entries; some digests exist in two tenants.
    stored: set[tuple[str, str, str]] = set()  # (tenant, kind, hash)
    markers: dict[str, bytes] = {t: f"<<{t}-marker>>".encode() for t in TENANTS}
    contents: dict[str, bytes] = {}
    for tenant in TENANTS:
        h = {"Authorization": f"Bearer {tokens[tenant, Role.READ_WRITE]}"}
        for i in range(20):
            data = markers[tenant] + str(i).encode() + os.urandom(rng.randrange(0, 3000))
            digest = sha(data)
            contents[digest] = data
            resp = await env.client.put(f"/{tenant}/cas/{digest}", data=data, headers=h)
            assert resp.status == 200
            stored.add((tenant, "cas", digest))
            action = sha(f"{tenant}-action-{i}".encode())
            value = _result(markers[tenant].decode()) if tenant != "rawco" else markers[tenant]
            resp = await env.client.put(f"/{tenant}/ac/{action}", data=value, headers=h)
            assert resp.status == 200, await resp.text()
            stored.add((tenant, "ac", action))
    shared = b"shared between alpha and beta"
    for tenant in ("alpha", "beta"):
        h = {"Authorization": f"Bearer {tokens[tenant, Role.READ_WRITE]}"}
        await env.client.put(f"/{tenant}/cas/{sha(shared)}", data=shared, headers=h)
        stored.add((tenant, "cas", sha(shared)))
    contents[sha(shared)] = shared
    known_hashes = sorted({h for _, _, h in stored})

    def credential() -> tuple[str | None, str | None]:
        """(Authorization header, tenant it is valid for or None)."""
        choice = rng.randrange(10)
        tenant = rng.choice(TENANTS)
        if choice == 0:
            return None, None
        if choice <= 4:
            role = rng.choice(list(Role))
            if (tenant, role) == ("alpha", Role.ADMIN):
                return f"Bearer {revoked_token}", None
            return f"Bearer {tokens[tenant, role]}", tenant
        if choice == 5:
            return f"Bearer {keys[tenant]}", tenant
        if choice == 6:
            raw = base64.b64encode(f"u:{tokens[tenant, Role.READ]}".encode()).decode()
            return f"Basic {raw}", tenant
        if choice == 7:
            token = tokens[tenant, Role.READ_WRITE]
            cut = rng.randrange(4, len(token))
            mutated = f"{token[:cut]}{rng.choice('AbZ09_-.')}{token[cut + 1 :]}"
            return f"Bearer {mutated}", tenant if mutated == token else "?"
        if choice == 8:
            return f"Bearer {revoked_key}", None
        return rng.choice(["Bearer", "Basic Og==", "Bearer mk_x_y", f"Token {keys[tenant]}"]), None

    def path_tenant() -> str:
        return rng.choice(
            [*TENANTS, *TENANTS, "ghost", "v1", "ALPHA", "alpha%2f..", "..", "a" * 70, "_x"]
        )

    def digest(tenant: str, kind: str) -> str:
        r = rng.randrange(10)
        if r < 3:
            own = [h for t, k, h in stored if t == tenant and k == kind]
            if own:
                return rng.choice(own)
        if r < 5:
            return rng.choice(known_hashes)
        if r < 7:
            return os.urandom(32).hex()
        return rng.choice(["", "0" * 63, "Z" * 64, rng.choice(known_hashes).upper(), "e3b0" * 16])

    counts = {"5xx": 0, "cross": 0, "phantom": 0, "leak": 0}
    examples: list[str] = []
    statuses: dict[int, int] = {}
    methods = ["GET", "GET", "HEAD", "PUT", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"]
    start = time.monotonic()
    for _ in range(N_REQUESTS):
        auth, cred_tenant = credential()
        # Half the time aim at the credential's own tenant, so storage paths get exercised.
        own = cred_tenant in TENANTS and rng.random() < 0.5
        tenant = cred_tenant if own and cred_tenant is not None else path_tenant()
        kind = rng.choice(["cas", "cas", "ac", "ac", "blob"])
        hash_hex = digest(tenant, kind)
        method = rng.choice(methods)
        headers: dict[str, str] = {}
        if auth is not None:
            headers["Authorization"] = auth
        if rng.random() < 0.2:
            headers["Accept-Encoding"] = rng.choice(["zstd", "gzip", "zstd;q=0", "*", "br, zstd"])
        body: bytes | None = None
        if method in ("PUT", "POST") or rng.random() < 0.05:
            r = rng.randrange(6)
            if r == 0 and (cred_tenant, "cas", hash_hex) in stored and hash_hex in contents:
                body = contents[hash_hex]
            elif r == 1:
                body = os.urandom(rng.randrange(0, 2048))
                hash_hex = sha(body) if rng.random() < 0.5 else hash_hex
            elif r == 2:
                plain = markers.get(cred_tenant or "", b"x") + os.urandom(64)
                body = zstandard.ZstdCompressor().compress(plain)
                hash_hex = sha(plain)
                headers["Content-Encoding"] = "zstd"
                if rng.random() < 0.3:
                    headers["X-Digest-SizeBytes"] = str(rng.choice([len(plain), 1, -5]))
            elif r == 3:
                body = b"\x28\xb5\x2f\xfd garbage"
                headers["Content-Encoding"] = rng.choice(["zstd", "gzip", "br", "x-evil"])
            elif r == 4:
                body = _result(markers.get(cred_tenant or "", b"anon").decode())
            else:
                body = b""
        url = f"/{tenant}/{kind}/{hash_hex}"
        resp = await env.client.request(
            method, url, headers=headers, data=body, auto_decompress=False
        )
        payload = await resp.read()
        status = resp.status
        statuses[status] = statuses.get(status, 0) + 1
        ok = 200 <= status < 300
        before = dict(counts)
        if status >= 500:
            counts["5xx"] += 1
        if ok and (cred_tenant is None or cred_tenant != tenant):
            counts["cross"] += 1
        if ok and method == "PUT" and cred_tenant == tenant:
            stored.add((tenant, kind, hash_hex))
            if kind == "cas" and body is not None and "Content-Encoding" not in headers:
                contents[hash_hex] = body
        if ok and method in ("GET", "HEAD"):
            empty = kind == "cas" and hash_hex == sha(b"")
            if not empty and (tenant, kind, hash_hex) not in stored:
                counts["phantom"] += 1
            for other, marker in markers.items():
                if other != tenant and marker in payload:
                    counts["leak"] += 1
        if counts != before and len(examples) < 10:
            examples.append(f"{method} {url} cred={cred_tenant} {headers} -> {status}")
    elapsed = time.monotonic() - start
    print(f"fuzz: {N_REQUESTS} requests in {elapsed:.1f} s; statuses {sorted(statuses.items())}")
    assert counts == {"5xx": 0, "cross": 0, "phantom": 0, "leak": 0}, examples
    assert statuses.get(200, 0) > 300  # the fuzz reached the storage paths, not only 401s
    assert statuses.get(403, 0) > 300
