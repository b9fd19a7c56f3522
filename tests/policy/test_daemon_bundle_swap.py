"""A team bundle swapped while the daemon decides: the daemon's policy service fetches signed
bundles from a real coordinator on loopback (verified, compiled in a child, put in force) one
after another while runs are admitted and plans ask their cache ``serve`` decisions, both at
once. No request is dropped: every run is denied by a rule of a published bundle (never let
through without the team layer, never an error), and every plan's served files are decided by
one bundle's rules, each exactly the files that bundle denies."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from test_coordinator_policy import Env, env  # noqa: F401  (the fixture)

from maestro.coordinator.auth import create_key
from maestro.coordinator.models import Role
from maestro.engine.testing import Plan, PlannedFile
from maestro.errors import PolicyDeniedError
from maestro.policy.bundle import build

TEAM = """package maestro.team.{point}

import rego.v1

# METADATA
# custom:
#   id: team.{name}{n}
#   remediation: bundle {n}
deny contains {{"rule": "team.{name}{n}", "target": input.target, "msg": "{name} {n}"}} if {{
\t{cond}
}}
"""
FREEZE = 'input.kind == "background"'
LIVE = 'input.action == "serve"\n\tstartswith(input.target, "tests/live")'
FILES = [f"tests/{'live' if i % 4 == 0 else 'unit'}_{i}.py" for i in range(60)]
LIVE_FILES = {t for t in FILES if t.startswith("tests/live")}
SWAPS = 3
BOUND_S = 20.0
"""No new swap starts after this long (each compiles the set in a child first)."""


def bundle(signer: ec.EllipticCurvePrivateKey, n: int) -> bytes:
    run = TEAM.format(point="run", name="freeze", n=n, cond=FREEZE).replace(
        ', "target": input.target', ""
    )
    cache = TEAM.format(point="cache", name="live", n=n, cond=LIVE)
    return build(
        {"run.rego": run.encode(), "cache.rego": cache.encode(), "data.json": b"{}"},
        key=signer, kid="k1", revision=f"r{n}", version=n,
        expires=datetime.now(UTC) + timedelta(days=1),
    )  # fmt: skip


def plan() -> Plan:
    """Every file served from the cache (what asks the most serve decisions)."""
    files = [
        PlannedFile(
            target=t, nodes=None, key=SimpleNamespace(inputs={}),  # type: ignore[arg-type]
            cached=SimpleNamespace(exit_code=0), reason=None,  # type: ignore[arg-type]
        )
        for t in FILES
    ]  # fmt: skip
    return Plan(files, None, (), (), None, None)  # type: ignore[arg-type]


class _App:
    def __init__(self, root: Path) -> None:
        self.root = root

    def broadcast(self, event: str, payload: object = None) -> int:
        return 0


async def test_no_decision_is_dropped_while_the_daemon_swaps_team_bundles(
    env: Env,  # noqa: F811
    workspace: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from maestro.daemon.services.policy import PolicyService

    signer = ec.generate_private_key(ec.SECP256R1())
    admin = await env.auth("alpha", Role.ADMIN)
    url = "/v1/tenants/alpha/policy/bundle"

    async def publish(n: int) -> None:
        resp = await env.client.put(url, data=bundle(signer, n), headers=admin)
        assert resp.status == 204, await resp.text()

    await publish(1)
    monkeypatch.setenv(
        "MAESTRO_TEST_POLICY_KEY", create_key(env.store, "alpha", Role.READ_WRITE).plaintext
    )
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
    await service.sync_once()
    published = {1}
    stop = asyncio.Event()
    failed: list[str] = []
    runs: dict[int, int] = {}
    plans: dict[int, int] = {}

    def bundle_of(text: str, name: str) -> int | None:
        for n in sorted(published, reverse=True):
            if f"(rule team.{name}{n})" in text:
                return n
        return None

    async def admit() -> None:
        while not stop.is_set():
            eid = uuid.uuid4().hex
            try:
                await service.admit(eid, ["tests/unit_1.py"], kind="background")
                failed.append("a background run was let through")
                await service.finished(eid)
            except PolicyDeniedError as exc:
                n = bundle_of(exc.message, "freeze")
                if n is None:
                    failed.append(f"run denied by no published bundle: {exc.message}")
                else:
                    runs[n] = runs.get(n, 0) + 1
            except Exception as exc:  # every other outcome is a failure
                failed.append(f"run: {type(exc).__name__}: {exc}")
            await asyncio.sleep(0.005)  # a daemon's pace, not a spin: the swaps get the CPU too

    async def serve() -> None:
        while not stop.is_set():
            eid = uuid.uuid4().hex
            try:
                denied = await service.serve(plan(), eid)
                notes = service.notes(eid)
            except Exception as exc:
                failed.append(f"serve: {type(exc).__name__}: {exc}")
                continue
            if set(denied) != LIVE_FILES:
                failed.append(f"served files denied: {sorted(set(denied) ^ LIVE_FILES)}")
            found = {bundle_of(note, "live") for note in notes}
            if None in found or len(found) != 1:  # one plan, one policy set
                failed.append(f"serve decisions of several or no bundles: {notes[:3]}")
            else:
                n = found.pop()
                assert n is not None
                plans[n] = plans.get(n, 0) + 1
            await asyncio.sleep(0.005)

    workers = [asyncio.create_task(admit()) for _ in range(3)]
    workers += [asyncio.create_task(serve()) for _ in range(2)]
    deadline = time.monotonic() + BOUND_S
    swapped = 0
    try:
        await asyncio.sleep(0.2)
        for n in range(2, SWAPS + 2):
            if time.monotonic() > deadline:
                break
            published.add(n)  # before: a decision may see it at once
            await publish(n)
            await service.sync_once()  # fetch, verify, compile in a child, put in force
            swapped += 1
            await asyncio.sleep(0.2)
        current = gate.engine.current
        assert current is not None and current.sources.revision == f"r{swapped + 1}"
        await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.gather(*workers)
        await service.stop(None)  # type: ignore[arg-type]

    assert failed == [], (failed[:5], runs, plans)
    assert swapped >= 2
    # decisions were made under several bundles, runs and plans alike
    assert len(runs) >= 3 and len(plans) >= 2, (runs, plans)
    assert service.bundles.incident is None
