"""Tenant overrides reach a real daemon: a coordinator process, a workspace daemon polling it
(every 0.3 s here), the admin's change made with `maestro flags set --scope tenant`."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flags_helpers import KEY_ENV, Coordinator, Workspace

POLL_S = 0.3
pytestmark = pytest.mark.slow


@pytest.fixture(params=["read"])
def team(request: pytest.FixtureRequest) -> Iterator[tuple[Coordinator, Workspace, str]]:
    """A coordinator, an admin key, and a workspace (daemon) using a key of the given role."""
    base = Path(tempfile.mkdtemp(prefix="mfl", dir="/tmp"))
    coord = Coordinator(base)
    coord.cli("tenant", "add", "team")
    key = coord.key("team", request.param)
    admin = coord.key("team", "admin")
    coord.start()
    ws = Workspace(
        base, "dev", key, coord.url, "team", extra_env={"MAESTRO_FLAGS_POLL_S": str(POLL_S)}
    )
    ws.setup(maestro_extra="ml.speculation.enabled = true")
    try:
        yield coord, ws, admin
    finally:
        ws.stop_daemon()
        coord.stop()
        shutil.rmtree(base, ignore_errors=True)


def daemon_flags(ws: Workspace) -> dict[str, Any]:
    """The daemon's `flags` report, through the CLI's daemon client (a real socket)."""
    out = ws.maestro("flags", "list", "--json", "--daemon", timeout=60)
    assert out.returncode == 0, out.stderr + out.stdout
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def wait_for(pred: Callable[[], bool], timeout: float = 30.0) -> float:
    start = time.monotonic()
    while not pred():
        assert time.monotonic() - start < timeout, "condition never held"
        time.sleep(0.05)
    return time.monotonic() - start


def speculation_enabled(ws: Workspace) -> bool:
    spec = ws.status()["daemon"]["speculation"]
    return bool(spec["enabled"])


def test_kill_switch_and_override_apply_within_one_poll(
    team: tuple[Coordinator, Workspace, str],
) -> None:
    coord, ws, admin = team
    assert ws.maestro("daemon", "start").returncode == 0
    wait_for(lambda: daemon_flags(ws)["tenant"]["state"] == "polling")
    assert speculation_enabled(ws)  # the workspace configuration's older key

    polls_before = daemon_flags(ws)["tenant"]["polls"]
    before_wall = time.time()
    kill = ws.maestro(
        "flags", "set", "ml.speculation.enabled", "--kill", "--scope", "tenant",
        "--reason", "speculation pegs the shared runners", **{KEY_ENV: admin},
    )  # fmt: skip
    assert kill.returncode == 0, kill.stderr + kill.stdout
    after_wall = time.time()
    # A poll that started after the change ends at most two poll periods later: by then the
    # daemon must hold it, and every decision reads it.
    wait_for(lambda: daemon_flags(ws)["tenant"]["polls"] >= polls_before + 2)
    assert not speculation_enabled(ws)
    applied_at = daemon_flags(ws)["tenant"]["last_change_at"]
    assert before_wall < applied_at < after_wall + 2 * POLL_S + 1.0  # 1 s: a loaded host
    print(f"kill-switch applied {applied_at - after_wall:+.2f} s after the CLI returned")

    report = {f["name"]: f for f in daemon_flags(ws)["flags"]}
    spec = report["ml.speculation.enabled"]
    assert spec["value"] is False and spec["killed"] and spec["layer"] == "tenant"
    assert "speculation pegs the shared runners" in spec["why"]

    # The CLI without the daemon reads the overrides the daemon saved.
    explain = ws.maestro("flags", "explain", "ml.speculation.enabled", "--json")
    assert explain.returncode == 0, explain.stderr
    data = json.loads(explain.stdout)
    assert data["layer"] == "tenant" and data["killed"] is True
    config_layer = next(x for x in data["layers"] if x["layer"] == "config")
    assert config_layer["setting"]["value"] is True  # still there, outranked

    # A tenant value (not a kill): fail-first off for everyone.
    out = ws.maestro(
        "flags", "set", "ml.fail-first", "off", "--scope", "tenant", "--reason", "flaky order",
        **{KEY_ENV: admin},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    wait_for(
        lambda: {f["name"]: f for f in daemon_flags(ws)["flags"]}["ml.fail-first"]["value"] == "off"
    )

    # Clearing the kill gives the workspace its own setting back at the next poll.
    out = ws.maestro(
        "flags", "set", "ml.speculation.enabled", "--clear", "--scope", "tenant",
        "--reason", "runners scaled up", **{KEY_ENV: admin},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    wait_for(lambda: speculation_enabled(ws))

    # A reader key cannot change tenant flags.
    denied = ws.maestro(
        "flags", "set", "ml.fail-first", "tests", "--scope", "tenant", "--reason", "r"
    )
    assert denied.returncode != 0 and "403" in denied.stderr

    # The coordinator's audit trail has every change: who, when, old -> new, why.
    entries = tenant_audit(coord.url, admin)
    assert [(e["flag"], e["reason"]) for e in entries] == [
        ("ml.speculation.enabled", "speculation pegs the shared runners"),
        ("ml.fail-first", "flaky order"),
        ("ml.speculation.enabled", "runners scaled up"),
    ]
    assert entries[0]["new"]["kill"] is True and "old" not in entries[0]
    assert entries[2]["old"]["kill"] is True and "new" not in entries[2]
    assert all(e["who"].startswith("key ") and e["at"] for e in entries)


def tenant_audit(url: str, admin_key: str) -> list[dict[str, Any]]:
    request = urllib.request.Request(
        f"{url}/v1/token",
        data=json.dumps({"api_key": admin_key}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        token = json.loads(resp.read())["token"]
    request = urllib.request.Request(
        f"{url}/v1/tenants/team/flags/audit", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        entries: list[dict[str, Any]] = json.loads(resp.read())["entries"]
    return entries


@pytest.mark.parametrize("team", ["read-write"], indirect=True)
def test_the_mirror_flag_keeps_results_local(team: tuple[Coordinator, Workspace, str]) -> None:
    _, ws, admin = team
    off = ws.maestro("flags", "set", "cas.mirror.enabled", "false", "--reason", "on a plane")
    assert off.returncode == 0, off.stderr
    first = ws.test()
    assert first.returncode == 0, first.stdout + first.stderr
    time.sleep(1.0)
    remote = ws.remote()
    assert remote["uploaded"] == 0 and remote["queue_length"] == 0  # nothing left the machine

    back = ws.maestro("flags", "set", "cas.mirror.enabled", "--clear", "--reason", "landed")
    assert back.returncode == 0, back.stderr
    ws.write("tests/test_new.py", "def test_new():\n    assert True\n")
    assert ws.test().returncode == 0
    ws.wait_remote(lambda r: r["uploaded"] >= 1 and r["queue_length"] == 0)
    uploaded = ws.remote()["uploaded"]

    # The tenant's kill-switch turns the mirror off for every daemon at its next poll.
    kill = ws.maestro(
        "flags", "set", "cas.mirror.enabled", "--kill", "--scope", "tenant",
        "--reason", "coordinator disk full", **{KEY_ENV: admin},
    )  # fmt: skip
    assert kill.returncode == 0, kill.stderr
    polls = daemon_flags(ws)["tenant"]["polls"]
    wait_for(lambda: daemon_flags(ws)["tenant"]["polls"] >= polls + 2)
    ws.write("tests/test_newer.py", "def test_newer():\n    assert True\n")
    assert ws.test().returncode == 0
    time.sleep(1.0)
    assert ws.remote()["uploaded"] == uploaded
