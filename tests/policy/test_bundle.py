"""Signed team bundles: what is refused, what stays in force, incidents, warm start, rotation."""

from __future__ import annotations

import io
import logging
import tarfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from maestro.policy import PolicyEngine, RunInput
from maestro.policy.bundle import BundleRejected, BundleStore, Incident, build

FREEZE = b"""package maestro.team.run

import rego.v1

# METADATA
# custom:
#   id: team.freeze
#   remediation: the freeze ends Monday
deny contains {"rule": "team.freeze", "msg": "release freeze"} if input.kind == "background"
"""
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def bundle(
    signer: ec.EllipticCurvePrivateKey, kid: str, version: int, *, rego: bytes = FREEZE,
    expires: datetime | None = NOW + timedelta(days=1), data: bytes = b'{"owner": "platform"}',
) -> bytes:  # fmt: skip
    files = {"freeze.rego": rego, "data.json": data}
    return build(files, key=signer, kid=kid, revision=f"r{version}", version=version,
                 expires=expires)  # fmt: skip


def tamper(data: bytes, name: str, new: bytes) -> bytes:
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as src,
        tarfile.open(fileobj=out, mode="w:gz") as dst,
    ):
        for member in src.getmembers():
            raw = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.lstrip("/") == name:
                raw = new
            info = tarfile.TarInfo(member.name)
            info.size = len(raw)
            dst.addfile(info, io.BytesIO(raw))
    return out.getvalue()


def background(engine: PolicyEngine) -> str:
    return engine.decide(RunInput(kind="background", now_ms=1)).result


@pytest.fixture
def store_for(tmp_path: Path, workspace: Callable[..., Path]) -> Callable[..., BundleStore]:
    root = workspace()

    def make(keys: dict[str, Any], engine: PolicyEngine | None = None) -> BundleStore:
        return BundleStore(
            tmp_path / "bundle", engine or PolicyEngine.open(root), keys, clock=lambda: NOW
        )

    return make


def test_good_bundle_in_force_then_bad_ones_quarantined_with_incident_and_recovery(
    store_for: Callable[..., BundleStore], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="maestro.policy.bundle")
    a, other = key(), key()
    store = store_for({"a": a.public_key()})
    events: list[Incident] = []
    store.listeners.append(events.append)
    store.apply(bundle(a, "a", 1), etag='"e1"')
    assert background(store.engine) == "deny"
    good = store.engine.current

    bad: dict[str, bytes] = {
        "digest": tamper(bundle(a, "a", 2), "freeze.rego", FREEZE.replace(b"background", b"x")),
        "unknown_key": bundle(other, "b", 3),
        "signature": bundle(other, "a", 3),  # right kid, wrong key
        "expired": bundle(a, "a", 3, expires=NOW - timedelta(seconds=1)),
        "rollback": bundle(a, "a", 0),
        "compile": bundle(a, "a", 4, rego=b"package maestro.team.run\n\ndeny contains x if {\n"),
        "unsigned": tamper(bundle(a, "a", 5), ".signatures.json", b"{}"),
    }
    for reason, data in bad.items():
        with pytest.raises(BundleRejected) as caught:
            store.apply(data)
        assert caught.value.reason in (reason, "unsigned"), (reason, caught.value)
        assert store.engine.current is good, reason  # the last good stays in force
        assert events[-1].active and events[-1].reason == caught.value.reason
    assert store.metrics.families.incident._value.get() == 1
    assert store.metrics.families.rejected.labels("rollback")._value.get() == 1
    assert len(list((store.folder / "quarantine").iterdir())) == len(bad)
    assert "QUARANTINED" in store.status()["state"]
    # the incident's log line: an error per quarantined bundle, naming its reason
    quarantined = [r for r in caplog.records if "quarantined" in r.getMessage()]
    assert [r.levelno for r in quarantined] == [logging.ERROR] * len(bad)
    assert "(rollback)" in quarantined[4].getMessage()

    store.apply(bundle(a, "a", 6))  # a good bundle clears the incident
    assert events[-1].active is False and store.incident is None
    assert store.metrics.families.incident._value.get() == 0
    assert store.status()["version"] == 6
    assert any("incident" in r.getMessage() and "cleared" in r.getMessage() for r in caplog.records)


def test_warm_start_from_the_persisted_last_good_without_the_coordinator(
    store_for: Callable[..., BundleStore], workspace: Callable[..., Path]
) -> None:
    a = key()
    first = store_for({"a": a.public_key()})
    first.apply(bundle(a, "a", 7), etag='"e7"')
    assert (first.folder / "last-good.tar.gz").stat().st_mode & 0o777 == 0o600

    # a restart: a fresh engine (built-in and workspace only) and no network
    restarted = store_for({"a": a.public_key()}, PolicyEngine.open(workspace()))
    assert background(restarted.engine) == "allow"
    assert restarted.warm_start()
    assert background(restarted.engine) == "deny"
    assert restarted.etag == '"e7"'

    async def unreachable() -> str:
        return await restarted.fetch("http://127.0.0.1:9", "team", "tok", timeout_s=1)

    import asyncio

    assert asyncio.run(unreachable()) == "unreachable"
    assert background(restarted.engine) == "deny"  # still warm


def test_two_trusted_keys_overlap_for_rotation(store_for: Callable[..., BundleStore]) -> None:
    old, new = key(), key()
    store = store_for({"2026-old": old.public_key(), "2026-new": new.public_key()})
    store.apply(bundle(old, "2026-old", 1))
    store.apply(bundle(new, "2026-new", 2))  # the coordinator switched keys: accepted
    # the old key retired from the trusted set: its bundles are refused from now on
    store.keys = {"2026-new": new.public_key()}
    with pytest.raises(BundleRejected) as caught:
        store.apply(bundle(old, "2026-old", 3))
    assert caught.value.reason == "unknown_key"
    assert store.status()["version"] == 2
