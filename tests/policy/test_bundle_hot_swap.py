"""A team bundle swapped while the coordinator serves: clients read a tenant's cache on loopback
(a burst of 1 a second, so most reads are refused and every refusal is decided by the tenant's
Rego, its record written) while an admin publishes signed bundles one after another. No request
is dropped: each gets the limiter's 404 (admitted, absent) or a 429 that a published bundle's
rule decided, never an error or a lost connection."""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientError, ClientSession, ClientTimeout
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from maestro.coordinator.app import RUNNER_KWARGS, create_app
from maestro.coordinator.auth import create_key
from maestro.coordinator.models import Role
from maestro.coordinator.settings import Settings
from maestro.coordinator.store import Store
from maestro.policy.bundle import build

TEAM = """package maestro.team.coordinator

import rego.v1

# METADATA
# custom:
#   id: team.burst{n}
#   remediation: bundle {n}
deny contains fired if {{
\tinput.refusal.rule == "rate.tenant_burst"
\tfired := {{"rule": "team.burst{n}", "msg": input.refusal.message,
\t\t"retry_after_ms": input.refusal.retry_after_ms}}
}}
"""
SWAPS = 8
READERS = 6
BOUND_S = 8.0
"""Publishing starts no new swap after this long (each verifies, then compiles the set in a
child process first: about a second on a loaded 2-core host)."""


def bundle(signer: ec.EllipticCurvePrivateKey, n: int) -> bytes:
    return build(
        {"burst.rego": TEAM.format(n=n).encode(), "data.json": b"{}"}, key=signer, kid="k1",
        revision=f"r{n}", version=n, expires=datetime.now(UTC) + timedelta(days=1),
    )  # fmt: skip


async def test_no_request_is_dropped_while_bundles_are_swapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every refusal decided (the tenant's refusals otherwise buy a bounded number of decisions
    # a second, the rest answered by the built-in rule): what is checked is which bundle decided
    monkeypatch.setattr("maestro.coordinator.policy_routes.DECISIONS_PER_TENANT_S", 1e6)
    signer = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "k1.pem"
    pem.write_bytes(
        signer.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    settings = Settings(
        data_dir=tmp_path / "coord", rate_limits="enforce", io_threads=2,
        tenants={"alpha": {"burst": 1}}, policy_bundle_keys={"k1": str(pem)},
    )  # fmt: skip
    store = Store(settings.data_dir / "store")
    store.add_tenant("alpha")
    server = TestServer(create_app(settings, store=store), host="127.0.0.1")
    await server.start_server(**RUNNER_KWARGS)
    base = str(server.make_url("")).rstrip("/")
    bundles = [bundle(signer, n) for n in range(1, SWAPS + 2)]
    try:
        async with ClientSession(timeout=ClientTimeout(total=30)) as http:

            async def token(role: Role) -> dict[str, str]:
                key = create_key(store, "alpha", role).plaintext
                async with http.post(f"{base}/v1/token", json={"api_key": key}) as resp:
                    assert resp.status == 200, await resp.text()
                    return {"Authorization": f"Bearer {(await resp.json())['token']}"}

            reader, admin = await token(Role.READ_WRITE), await token(Role.ADMIN)
            url = f"{base}/v1/tenants/alpha/policy/bundle"
            async with http.put(url, data=bundles[0], headers=admin) as resp:
                assert resp.status == 204, await resp.text()

            stop = asyncio.Event()
            seen: dict[str, int] = {}
            failed: list[str] = []
            published: set[str] = {"team.burst1"}
            cas = f"{base}/alpha/cas/{hashlib.sha256(b'absent').hexdigest()}"

            async def read() -> None:
                while not stop.is_set():
                    try:
                        async with http.get(cas, headers=reader) as resp:
                            body: dict[str, Any] = await resp.json() if resp.status == 429 else {}
                            if resp.status == 404:
                                seen["admitted"] = seen.get("admitted", 0) + 1
                            elif resp.status == 429:
                                rule = str(body.get("rule"))
                                seen[rule] = seen.get(rule, 0) + 1
                                if rule not in published:
                                    failed.append(f"429 decided by {rule}: {body}")
                            else:
                                failed.append(f"{resp.status}: {await resp.text()}")
                    except (ClientError, TimeoutError) as exc:
                        failed.append(f"{type(exc).__name__}: {exc}")

            readers = [asyncio.create_task(read()) for _ in range(READERS)]
            await asyncio.sleep(0.3)
            deadline = time.monotonic() + BOUND_S
            swapped = 0
            for n, data in enumerate(bundles[1:], start=2):
                if time.monotonic() > deadline:
                    break
                published.add(f"team.burst{n}")  # before: a reader may see it at once
                async with http.put(url, data=data, headers=admin) as resp:
                    assert resp.status == 204, await resp.text()
                swapped += 1
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            stop.set()
            await asyncio.gather(*readers)
    finally:
        await server.close()
        store.close()

    assert failed == [], seen
    # the swaps happened under load: refusals were decided by several of the bundles
    assert swapped >= 2, (swapped, seen)
    assert len([k for k in seen if k.startswith("team.")]) >= 3, seen
