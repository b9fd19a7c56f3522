"""Tenant flag overrides over real HTTP (aiohttp on loopback, LMDB store): roles, validation,
ETag polling, audit trail, expiry in /metrics."""

from __future__ import annotations

from flags_helpers import AFTER_EXPIRY, Coord

from maestro.coordinator.models import Role

URL = "/v1/tenants/alpha/flags"


async def test_admin_sets_reader_polls_with_etag(coord: Coord) -> None:
    reader = await coord.auth("alpha", Role.READ)
    first = await coord.client.get(URL, headers=reader)
    assert first.status == 200
    assert (await first.json()) == {"tenant": "alpha", "overrides": {}}
    etag = first.headers["ETag"]
    unchanged = await coord.client.get(URL, headers={**reader, "If-None-Match": etag})
    assert unchanged.status == 304

    admin = await coord.auth("alpha", Role.ADMIN)
    put = await coord.client.put(
        f"{URL}/ml.speculation.enabled",
        json={"kill": True, "reason": "speculation pegs CI runners"},
        headers=admin,
    )
    assert put.status == 200, await put.text()
    changed = await coord.client.get(URL, headers={**reader, "If-None-Match": etag})
    assert changed.status == 200
    assert changed.headers["ETag"] != etag
    override = (await changed.json())["overrides"]["ml.speculation.enabled"]
    assert override["kill"] is True
    assert override["reason"] == "speculation pegs CI runners"
    assert override["set_by"].startswith("key ")


async def test_roles_and_tenants_are_enforced(coord: Coord) -> None:
    body = {"value": 0.2, "reason": "tighter"}
    for role in (Role.READ, Role.READ_WRITE):
        resp = await coord.client.put(
            f"{URL}/ml.predictive.threshold", json=body, headers=await coord.auth("alpha", role)
        )
        assert resp.status == 403, role
    beta_admin = await coord.auth("beta", Role.ADMIN)
    assert (await coord.client.get(URL, headers=beta_admin)).status == 403
    resp = await coord.client.put(f"{URL}/ml.predictive.threshold", json=body, headers=beta_admin)
    assert resp.status == 403
    assert (await coord.client.get(URL)).status == 401


async def test_values_are_checked_against_the_registry(coord: Coord) -> None:
    admin = await coord.auth("alpha", Role.ADMIN)

    async def put(name: str, body: dict[str, object]) -> tuple[int, dict[str, str]]:
        resp = await coord.client.put(f"{URL}/{name}", json=body, headers=admin)
        return resp.status, await resp.json()

    status, err = await put("ml.speculation.enable", {"value": True, "reason": "r"})
    assert status == 404 and "ml.speculation.enabled" in err["hint"]
    status, err = await put("ml.predictive.threshold", {"value": 3, "reason": "r"})
    assert status == 400 and "a number >= 0 and <= 1" in err["message"]
    status, err = await put("ml.fail-first", {"value": "sometimes", "reason": "r"})
    assert status == 400 and "one of tests, files, off" in err["message"]
    status, err = await put("ml.fail-first", {"value": "files"})
    assert status == 400 and "reason" in err["message"]
    status, err = await put("ml.fail-first", {"reason": "r"})
    assert status == 400 and "nothing to set" in err["message"]
    status, _ = await put("ml.fail-first", {"value": "files", "reason": "noisy", "extra": 1})
    assert status == 400


async def test_audit_trail_records_who_when_old_new_why(coord: Coord) -> None:
    admin = await coord.auth("alpha", Role.ADMIN)
    name = f"{URL}/ml.fail-first"
    for body in (
        {"value": "files", "reason": "test-level reorder confuses fixtures"},
        {"value": "off", "reason": "incident 7"},
        {"clear": True, "reason": "incident over"},
    ):
        assert (await coord.client.put(name, json=body, headers=admin)).status == 200
    trail = await coord.client.get(f"{URL}/audit", headers=admin)
    entries = (await trail.json())["entries"]
    assert [e["reason"] for e in entries] == [
        "test-level reorder confuses fixtures",
        "incident 7",
        "incident over",
    ]
    assert "old" not in entries[0] and entries[0]["new"]["value"] == "files"
    assert entries[1]["old"]["value"] == "files" and entries[1]["new"]["value"] == "off"
    assert entries[2]["old"]["value"] == "off" and "new" not in entries[2]
    assert all(e["who"].startswith("key ") and e["at"] for e in entries)
    reader = await coord.auth("alpha", Role.READ)
    assert (await coord.client.get(f"{URL}/audit", headers=reader)).status == 403
    now = await coord.client.get(URL, headers=reader)
    assert (await now.json())["overrides"] == {}


async def test_expired_flags_refuse_values_and_show_in_metrics(coord: Coord) -> None:
    admin = await coord.auth("alpha", Role.ADMIN)
    put = await coord.client.put(
        f"{URL}/cas.mirror.enabled", json={"value": False, "reason": "r"}, headers=admin
    )
    assert put.status == 200
    metrics = await (await coord.client.get("/metrics")).text()
    assert 'maestro_coordinator_flag_expired{flag="cas.mirror.enabled"} 0.0' in metrics
    assert (
        'maestro_coordinator_flag_overrides{expired="false",flag="cas.mirror.enabled",kill="false"}'
        " 1.0" in metrics
    )
    assert "alpha" not in metrics.split("maestro_coordinator_flag")[1]

    coord.clock.now = AFTER_EXPIRY
    admin = await coord.auth("alpha", Role.ADMIN)
    refused = await coord.client.put(
        f"{URL}/cas.mirror.enabled", json={"value": True, "reason": "r"}, headers=admin
    )
    assert refused.status == 409
    assert (await refused.json())["error"] == "expired_flag"
    metrics = await (await coord.client.get("/metrics")).text()
    assert 'maestro_coordinator_flag_expired{flag="cas.mirror.enabled"} 1.0' in metrics
    cleared = await coord.client.put(
        f"{URL}/cas.mirror.enabled", json={"clear": True, "reason": "flag retired"}, headers=admin
    )
    assert cleared.status == 200
