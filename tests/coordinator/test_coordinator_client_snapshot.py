"""The daemon-side client (token refresh, verified GETs) and the snapshot/restore drill."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from coord_helpers import Clock, Env, sha

from maestro.coordinator.client import CoordinatorClient
from maestro.coordinator.models import Role
from maestro.coordinator.snapshot import restore_snapshot, take_snapshot
from maestro.coordinator.store import Store
from maestro.errors import CoordinatorAuthError, CoordinatorError, IntegrityError
from maestro.redaction import RedactedBlob, Redactor


def cleared(data: bytes) -> RedactedBlob:
    """Bytes through the egress gate's last scan (the client sends nothing else)."""
    blob = Redactor().vet(data).blob
    assert blob is not None
    return blob


async def test_client_roundtrip_refresh_and_verification(env: Env) -> None:
    base = str(env.client.make_url("/"))
    clock = Clock(env.clock.now)
    async with CoordinatorClient(
        base, "alpha", env.key("alpha"), refresh_margin_s=60, clock=clock
    ) as client:
        small, big = b"small blob", os.urandom(100_000)
        d_small = await client.put_cas(cleared(small))
        d_big = await client.put_cas(cleared(big))  # zstd-compressed upload
        assert await client.get_cas(d_small) == small
        assert await client.get_cas(d_big) == big
        assert await client.has_cas(d_big)
        assert await client.get_cas(sha(b"absent")) is None
        first = client.token_info
        assert first is not None and first.role == Role.READ_WRITE
        # within the margin of expiry -> a fresh token before the next request
        clock.now += 300 - 59
        env.clock.now = clock.now
        assert await client.has_cas(d_small)
        assert client.token_info is not None and client.token_info.token != first.token
        # server-side expiry without client-side knowledge (e.g. skew): one 401, then refresh
        env.clock.now += 10_000
        clock.now = env.clock.now - 10_000
        # both clocks disagree; the retry path mints with the server clock and succeeds
        assert await client.has_cas(d_small)

        # a corrupted response is refused, never returned
        original = env.store.get_cas

        def corrupt(tenant, key):  # type: ignore[no-untyped-def]
            data = original(tenant, key)
            return data[:-1] + b"!" if data else data

        env.store.get_cas = corrupt  # type: ignore[method-assign]
        try:
            with pytest.raises(IntegrityError):
                await client.get_cas(d_small)
        finally:
            del env.store.get_cas

        with pytest.raises(CoordinatorError, match="HTTP 400") as refused:
            await client.put_ac(sha(b"act"), cleared(b"not an ActionResult"))
        # typed: the status, and the server's own message and remediation hint
        assert refused.value.status == 400
        assert "not a Maestro ActionResult" in refused.value.message
        assert refused.value.hint is not None and "raw-ac" in refused.value.hint


async def test_client_revoked_key(env: Env) -> None:
    key = env.key("beta", Role.READ)
    env.store.revoke_key(key.split("_")[1])
    async with CoordinatorClient(str(env.client.make_url("/")), "beta", key) as client:
        with pytest.raises(CoordinatorAuthError) as refused:
            await client.get_cas(sha(b"x"))
        assert refused.value.status == 401


async def test_client_reader_cannot_write(env: Env) -> None:
    async with CoordinatorClient(
        str(env.client.make_url("/")), "beta", env.key("beta", Role.READ)
    ) as client:
        with pytest.raises(CoordinatorAuthError) as refused:
            await client.put_cas(cleared(b"nope"))
        assert refused.value.status == 403 and "cannot write" in refused.value.message


def test_snapshot_restore_drill(tmp_path: Path) -> None:
    live = tmp_path / "data" / "store"
    with Store(live) as store:
        tenant = store.add_tenant("t1")
        blobs = [os.urandom(1000 + i) for i in range(50)]
        for blob in blobs:
            store.put_cas(tenant, bytes.fromhex(sha(blob)), blob)
        manifest = take_snapshot(store, tmp_path / "snap")
    assert manifest.cas_entries == 50 and manifest.tenants == 1
    with pytest.raises(CoordinatorError, match="already exists"):
        restore_snapshot(tmp_path / "snap", live)
    report = restore_snapshot(tmp_path / "snap", live, force=True)
    assert report.replaced is not None and report.cas_entries == 50
    with Store(live) as store:
        t = store.get_tenant("t1")
        assert t is not None
        assert all(store.get_cas(t, bytes.fromhex(sha(b))) == b for b in blobs)

    # a damaged snapshot is refused and the live store untouched
    data = tmp_path / "snap" / "data.mdb"
    raw = bytearray(data.read_bytes())
    index = raw.find(blobs[7][:32])
    raw[index] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError):
        restore_snapshot(tmp_path / "snap", live, force=True)
    with Store(live) as store:
        t = store.get_tenant("t1")
        assert t is not None and store.get_cas(t, bytes.fromhex(sha(blobs[7]))) == blobs[7]


def test_a_manifest_whose_entries_disagree_is_refused_before_the_store_is_touched(
    tmp_path: Path,
) -> None:
    # the data file matches its hash, so only the check of the staged copy's entries refuses
    live = tmp_path / "data" / "store"
    blob = os.urandom(100)
    with Store(live) as store:
        tenant = store.add_tenant("t1")
        store.put_cas(tenant, bytes.fromhex(sha(blob)), blob)
        take_snapshot(store, tmp_path / "snap")
    manifest = tmp_path / "snap" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"cas_entries": 1', '"cas_entries": 2'))
    with pytest.raises(IntegrityError, match="entries differ"):
        restore_snapshot(tmp_path / "snap", live, force=True)
    assert not list(live.parent.glob("*.replaced-*")) and not list(live.parent.glob(".*restore*"))
    with Store(live) as store:
        t = store.get_tenant("t1")
        assert t is not None and store.get_cas(t, bytes.fromhex(sha(blob))) == blob
