"""Every body the daemon or the CLI sends to the coordinator goes through the egress gate:
policy decisions, telemetry batches, team model metadata. A real coordinator on loopback records
each request body it receives (`record_requests_dir`); the red-team seeds planted in what those
uploads carry must arrive redacted (0 unredacted, >= 99% per sink), and a body that still holds
a secret at the last scan is blocked (enforce) or sent and counted (not enforcing)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from coordinator_apps import serve
from redaction_seeds import ENV_NAMES, Seed, seeds
from test_redaction import leaked

from maestro.cache import Cache
from maestro.cache.remote import RemoteSync
from maestro.cli.model_cmd import push_team_model
from maestro.coordinator.app import create_app
from maestro.coordinator.auth import create_key
from maestro.coordinator.client import CoordinatorClient, EgressBlockedError, send_telemetry
from maestro.coordinator.models import Role
from maestro.coordinator.settings import Settings
from maestro.coordinator.store import Store
from maestro.policy import CacheInput
from maestro.redaction import Redactor

TOKEN = "ghp_" + "Ab1Cd2Ef3Gh4" * 3


@dataclass
class Coord:
    base: str
    store: Store
    bodies: Path

    def key(self, role: Role = Role.READ_WRITE) -> str:
        return create_key(self.store, "alpha", role).plaintext

    def received(self, endpoint: str) -> str:
        """Every body recorded for requests whose path holds ``endpoint``."""
        files = sorted(p for p in self.bodies.glob("*.body") if endpoint in p.name)
        return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in files)


@pytest.fixture
async def coord(tmp_path: Path) -> AsyncIterator[Coord]:
    settings = Settings(
        data_dir=tmp_path / "coord",
        token_ttl_s=300,
        io_threads=2,
        record_requests_dir=tmp_path / "bodies",
    )
    with Store(settings.data_dir / "store") as store:
        store.add_tenant("alpha")
        client = await serve(create_app(settings, store=store))
        try:
            yield Coord(str(client.make_url("")).rstrip("/"), store, tmp_path / "bodies")
        finally:
            await client.close()


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> list[Seed]:
    """The red-team seeds; the env-kind ones are in this process's environment (the shell the
    daemon or CLI was started from), so they are known values."""
    found = list(seeds())
    for i, s in enumerate(found):
        if s.kind in ENV_NAMES:
            monkeypatch.setenv(f"{ENV_NAMES[s.kind]}_{i}", s.value)
    return found


def _rate(planted: list[Seed], text: str) -> tuple[float, Counter[str]]:
    missed = Counter(s.kind for s in planted if leaked(s, text))
    return 1 - sum(missed.values()) / len(planted), missed


class _App:
    """What PolicyService uses of the daemon: its root and its broadcast."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def broadcast(self, event: str, payload: object = None) -> int:
        return 1


def _workspace(tmp_path: Path, base: str) -> Path:
    root = tmp_path / "ws"
    (root / ".maestro" / "policy").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "ws"\nversion = "0"\n\n'
        f'[tool.maestro.remote]\nurl = "{base}"\ntenant = "alpha"\n'
        'api-key-env = "MAESTRO_TEST_EGRESS_KEY"\n',
        encoding="utf-8",
    )
    return root


async def test_policy_decisions_arrive_redacted(
    coord: Coord, planted: list[Seed], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maestro.daemon.services.policy import PolicyService

    monkeypatch.setenv("MAESTRO_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MAESTRO_TEST_EGRESS_KEY", coord.key())
    service = PolicyService(_App(_workspace(tmp_path, coord.base)))  # type: ignore[arg-type]
    gate = await service.gate()
    assert gate is not None and gate.log is not None
    for i, s in enumerate(planted):  # the seeds in the decision inputs the daemon records
        gate.decide(CacheInput(execution_id=f"exec-{i}", action="upload", target=s.text))
    await service.sync_once()
    await service.stop(None)  # type: ignore[arg-type]

    sent = coord.received("policy_decisions")
    assert sent.count('"execution_id"') + sent.count('"executionId"') >= len(planted), sent[:500]
    rate, missed = _rate(planted, sent)
    assert not missed, f"unredacted in policy decisions: {dict(missed)}"
    assert rate >= 0.99 and "[REDACTED:" in sent


async def test_telemetry_rows_arrive_redacted(
    coord: Coord, planted: list[Seed], tmp_path: Path
) -> None:
    sync = RemoteSync(
        Cache.open(tmp_path / "cache"),
        url=coord.base,
        tenant="alpha",
        api_key=coord.key(),
        queue_path=tmp_path / "q.sqlite",
        telemetry_transport=send_telemetry,
    )
    rows = [
        {"test": f"tests/test_{i}.py::test_x[{s.text}]", "outcome": "failed", "message": s.text}
        for i, s in enumerate(planted)
    ]
    sync.upload_telemetry({"rows": rows})  # queued: its strings are redacted here
    sync.start()
    try:
        for _ in range(200):
            if sync.telemetry.batches_sent or sync.counters.dropped:
                break
            await asyncio.sleep(0.05)
    finally:
        await asyncio.to_thread(sync.stop)
    assert sync.telemetry.batches_sent == 1 and sync.counters.egress_blocked == 0
    sent = coord.received("telemetry")
    assert sent.count('"test":"tests/test_') == len(planted)
    rate, missed = _rate(planted, sent)
    assert not missed, f"unredacted in telemetry: {dict(missed)}"
    assert rate >= 0.99


def _trained(model_dir: Path, names: list[str]) -> None:
    from maestro.model.features import FEATURES
    from maestro.model.train import ModelStore, train

    X = np.random.default_rng(1).random((60, len(FEATURES)))
    info = ModelStore(model_dir).save(train(X, (X[:, 0] > 0.5).astype(np.int_), kind="logistic"))
    # metric names are free text in the metadata a push sends: the seeds go there
    meta = model_dir / f"model-v{info.version}.json"
    doc = json.loads(meta.read_text())
    doc["metrics"] = {name: 0.5 for name in names}
    meta.write_text(json.dumps(doc))


async def test_model_push_metadata_goes_through_the_gate(
    coord: Coord, planted: list[Seed], tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    _trained(model_dir, [s.text for s in planted])
    async with CoordinatorClient(coord.base, "alpha", coord.key(Role.ADMIN)) as client:
        published = await push_team_model(client, model_dir)  # the .skops, then its metadata
    assert published["published_by"] and published["sha256"]
    sent = coord.received("v1_tenants_alpha_model")
    assert sent
    rate, missed = _rate(planted, sent)
    assert not missed, f"unredacted in model metadata: {dict(missed)}"
    assert rate >= 0.99


@pytest.mark.parametrize("enforce", [True, False], ids=["enforce", "warn"])
async def test_last_scan_blocks_or_counts_a_body_that_holds_a_secret(
    coord: Coord, enforce: bool
) -> None:
    # a redactor that knows nothing (no detectors) lets the token through; the client's last
    # scan (full detectors, as configured by default) still catches it
    lax = Redactor(detectors=False)
    body = lax.redact_json({"decisions": [{"note": f"token {TOKEN}"}]})
    async with CoordinatorClient(
        coord.base, "alpha", coord.key(), enforce=enforce, redactor=Redactor()
    ) as client:
        if enforce:
            with pytest.raises(EgressBlockedError) as blocked:
                await client.post_decisions(body)
            assert blocked.value.kinds and TOKEN not in blocked.value.message
            assert client.egress_blocked == 1
            assert TOKEN not in coord.received("policy_decisions")
        else:
            with pytest.raises(Exception):  # noqa: B017 - the server refuses the shape
                await client.post_decisions(body)
            assert client.egress_flagged == 1
            assert TOKEN in coord.received("policy_decisions")  # sent, as configured


async def test_raw_bytes_are_refused_at_run_time(coord: Coord) -> None:
    async with CoordinatorClient(coord.base, "alpha", coord.key()) as client:
        for call in (
            lambda: client.put_cas(b"raw"),  # type: ignore[arg-type]
            lambda: client.put("cas", "0" * 64, b"raw"),  # type: ignore[arg-type]
            lambda: client.ingest_telemetry(b"[]"),  # type: ignore[arg-type]
            lambda: client.post_decisions(b"{}"),  # type: ignore[arg-type]
        ):
            with pytest.raises((TypeError, AttributeError)):
                await call()
    assert not list(coord.bodies.glob("*.body")) if coord.bodies.exists() else True
