"""A tenant's team bundle shared by two coordinator replicas through one real redis-server: a
bundle published at one replica is served by the other and decides its refusals, the rollback
floor is the newest version either replica holds, and an incident raised at one is seen (status,
gauge) at the other until a good bundle published at either clears it."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from coordinator_apps import serve
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from test_coordinator_bundles import TEAM_BURST, series

from maestro.coordinator.app import create_app
from maestro.coordinator.auth import new_key
from maestro.coordinator.models import Role
from maestro.coordinator.policy_shared import FOLLOW_S
from maestro.coordinator.settings import Settings
from maestro.coordinator.state import RedisState
from maestro.policy.bundle import build

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
pytestmark = [
    pytest.mark.skipif(not Path(REDIS_SERVER).exists(), reason="redis-server not installed"),
    pytest.mark.slow,
]
URL = "/v1/tenants/alpha/policy/{what}"


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A throwaway redis-server on loopback (no persistence)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "redis").mkdir()
    proc = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path / "redis"),
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


class Replica:
    def __init__(self, client: TestClient) -> None:  # type: ignore[type-arg]
        self.client = client

    async def auth(self, api_key: str) -> dict[str, str]:
        resp = await self.client.post("/v1/token", json={"api_key": api_key})
        assert resp.status == 200, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}

    async def publish(self, admin: str, data: bytes) -> tuple[int, dict[str, Any]]:
        resp = await self.client.put(
            URL.format(what="bundle"), data=data, headers=await self.auth(admin)
        )
        return resp.status, (await resp.json() if resp.status != 204 else {})

    async def status(self, key: str) -> dict[str, Any]:
        resp = await self.client.get(URL.format(what="status"), headers=await self.auth(key))
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body

    async def metrics(self) -> str:
        return await (await self.client.get("/metrics")).text()

    async def refusal_rule(self, key: str) -> str:
        auth = await self.auth(key)
        url = f"/alpha/cas/{hashlib.sha256(b'x').hexdigest()}"
        for _ in range(5):
            resp = await self.client.get(url, headers=auth)
            if resp.status == 429:
                return str((await resp.json())["rule"])
        raise AssertionError("five reads at a burst of 1 a second were all served")


def bundle(
    key: ec.EllipticCurvePrivateKey, version: int, rego: bytes = TEAM_BURST, kid: str = "k1"
) -> bytes:
    return build(
        {"burst.rego": rego, "data.json": b"{}"}, key=key, kid=kid, revision=f"r{version}",
        version=version, expires=datetime.now(UTC) + timedelta(days=1),
    )  # fmt: skip


def pem(key: ec.EllipticCurvePrivateKey, path: Path) -> str:
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return str(path)


SECOND = ec.generate_private_key(ec.SECP256R1())
"""Signs as key k2, which replica a trusts and replica b does not."""


@pytest.fixture
async def replicas(
    tmp_path: Path, redis_url: str
) -> AsyncIterator[tuple[Replica, Replica, ec.EllipticCurvePrivateKey, dict[str, str]]]:
    signer = ec.generate_private_key(ec.SECP256R1())
    k1 = pem(signer, tmp_path / "k1.pem")
    trusted = {"a": {"k1": k1, "k2": pem(SECOND, tmp_path / "k2.pem")}, "b": {"k1": k1}}
    state = RedisState.from_url(redis_url)
    keys = {}
    try:
        await state.add_tenant("alpha")
        for role in (Role.ADMIN, Role.READ_WRITE):
            key = new_key("alpha", role, "test")
            await state.add_key(key.record)
            keys[role.value] = key.plaintext
    finally:
        await state.close()
    clients = []
    for name in ("a", "b"):
        settings = Settings(
            data_dir=tmp_path / name, state_backend="redis", redis_url=redis_url,
            blob_backend="http", blob_upstream_url="http://127.0.0.1:9/",
            rate_limits="enforce", tenants={"alpha": {"burst": 1}}, metrics_public=True,
            policy_bundle_keys=trusted[name],
        )  # fmt: skip
        client = await serve(create_app(settings))
        clients.append(client)
    try:
        yield Replica(clients[0]), Replica(clients[1]), signer, keys
    finally:
        for client in clients:
            await client.close()


async def test_replicas_share_the_bundle_its_version_and_its_incident(
    replicas: tuple[Replica, Replica, ec.EllipticCurvePrivateKey, dict[str, str]],
) -> None:
    a, b, signer, keys = replicas
    admin, user = keys[Role.ADMIN.value], keys[Role.READ_WRITE.value]
    incident = "maestro_coordinator_policy_bundle_incident"

    second, fourth = bundle(signer, 2), bundle(signer, 4)
    assert await a.publish(admin, second) == (204, {})
    served = await b.client.get(URL.format(what="bundle"), headers=await b.auth(user))
    assert served.status == 200 and await served.read() == second
    held = await b.status(user)  # b follows before answering
    assert held["revision"] == "r2" and held["version"] == 2 and held["published"]
    assert await b.refusal_rule(user) == "team.burst"  # b decides with a's bundle

    # the rollback floor is shared: b refuses an older version than the one a published
    status, body = await b.publish(admin, bundle(signer, 1))
    assert status == 422 and body["message"].startswith("rollback:"), body

    # an incident raised at b is seen at a (status and gauge) ...
    status, body = await b.publish(admin, bundle(signer, 3, rego=b"package maestro.team.run\n{"))
    assert status == 422 and body["message"].startswith("compile:"), body
    seen = await a.status(user)
    assert seen["incident"]["reason"] == "compile" and seen["revision"] == "r2"
    assert series(await a.metrics(), incident, tenant="alpha") == 1
    # ... and a good bundle published at a clears it at b, which follows by itself
    assert (await a.publish(admin, fourth))[0] == 204
    for _ in range(60):
        if series(await b.metrics(), incident, tenant="alpha") == 0:
            break
        await asyncio.sleep(0.1)
    assert series(await b.metrics(), incident, tenant="alpha") == 0
    cleared = await b.status(user)
    assert "incident" not in cleared and cleared["version"] == 4
    served = await b.client.get(URL.format(what="bundle"), headers=await b.auth(user))
    assert await served.read() == fourth


async def test_a_shared_bundle_a_replica_cannot_verify_is_refused_there_once(
    replicas: tuple[Replica, Replica, ec.EllipticCurvePrivateKey, dict[str, str]],
) -> None:
    a, b, signer, keys = replicas
    admin, user = keys[Role.ADMIN.value], keys[Role.READ_WRITE.value]
    rejected = "maestro_coordinator_policy_bundle_rejected_total"
    assert (await a.publish(admin, bundle(signer, 1)))[0] == 204
    assert (await b.status(user))["version"] == 1
    assert (await a.publish(admin, bundle(SECOND, 2, kid="k2")))[0] == 204  # a trusts k2
    await asyncio.sleep(2 * FOLLOW_S + 0.5)  # b's follower meets it at least twice
    held = await b.status(user)
    assert held["version"] == 1 and held["incident"]["reason"] == "unknown_key"
    assert series(await b.metrics(), rejected, reason="unknown_key", tenant="alpha") == 1
    assert "incident" not in await a.status(user)  # a's verdict is a's
