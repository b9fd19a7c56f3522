"""The daemon's flag service against a real coordinator on loopback: polling with ETag, the
last overrides kept when the coordinator cannot be reached, expiry warnings for editors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from flags_helpers import Coord

from maestro.config import RemoteSettings, Settings
from maestro.coordinator.models import Role
from maestro.daemon.address import DaemonPaths
from maestro.daemon.app import DaemonApp
from maestro.daemon.services.flags import FlagsService
from maestro.daemon.services.sync import SyncService
from maestro.flags import BUILTIN_FLAGS, Flag, Registry, Scope
from maestro.flags.store import tenant_cache_path, user_flags_path

TODAY = date(2026, 12, 3)
OLD = Flag(
    name="old.switch", owner="platform", description="a finished rollout", kind="bool",
    default=True, scopes=frozenset(Scope), expires=date(2026, 11, 30), kill_value=False,
)  # fmt: skip
KEY_ENV = "MAESTRO_FLAGS_TEST_KEY"


async def test_poll_apply_keep_last_good_and_warn(
    coord: Coord, tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    app = DaemonApp(DaemonPaths.for_root(root))
    sync = SyncService(app)
    app.provide(SyncService, sync)
    url = str(coord.client.make_url("")).rstrip("/")
    sync.config = RemoteSettings(url=url, tenant="alpha", api_key_env=KEY_ENV)
    monkeypatch.setenv(KEY_ENV, coord.key("alpha", Role.READ))  # the daemon's key, as in use
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(tmp_path / "cache"))
    flags = FlagsService(
        app, poll_s=60, registry=Registry([*BUILTIN_FLAGS, OLD]), today=lambda: TODAY
    )
    try:
        await flags.poll_once()
        assert flags.tenant_poll.state == "polling" and flags.tenant is not None
        assert flags.value("ml.fail-first") == "off"

        admin = await coord.auth("alpha", Role.ADMIN)
        put = await coord.client.put(
            "/v1/tenants/alpha/flags/ml.fail-first",
            json={"value": "files", "reason": "first failure sooner"},
            headers=admin,
        )
        assert put.status == 200
        await flags.poll_once()
        assert flags.value("ml.fail-first") == "files" and flags.tenant_poll.changes == 2
        assert tenant_cache_path(root).is_file()  # for the CLI and the next daemon
        await flags.poll_once()  # unchanged: a 304, nothing applied again
        assert flags.tenant_poll.changes == 2 and flags.tenant_poll.polls == 3
        user_file = user_flags_path()
        user_file.parent.mkdir(parents=True, exist_ok=True)
        user_file.write_text("{not json")  # a broken local file never drops the tenant's word
        assert flags.value("ml.fail-first") == "files"
        user_file.unlink()

        # secrets.redaction.enforce: the tenant's word reaches the sync's upload gate at once.
        assert sync.enforce is True
        put = await coord.client.put(
            "/v1/tenants/alpha/flags/secrets.redaction.enforce",
            json={"value": False, "reason": "false positives on fixtures, triaging"},
            headers=admin,
        )
        assert put.status == 200
        await flags.poll_once()
        assert sync.enforce is False
        assert sync.engine is not None and sync.engine.enforce is False
        assert flags.apply(Settings()).secrets.redaction.enforce is False
        kill = await coord.client.put(
            "/v1/tenants/alpha/flags/secrets.redaction.enforce",
            json={"kill": True, "reason": "no"},
            headers=admin,
        )
        assert kill.status == 400  # a guardrail has no kill-switch

        sync.config = RemoteSettings(url="http://127.0.0.1:9", tenant="alpha", api_key_env=KEY_ENV)
        await flags.poll_once()
        assert flags.tenant_poll.state.startswith("failing") and flags.tenant_poll.last_error
        assert flags.value("ml.fail-first") == "files"  # a kill or override never lapses

        report = flags.report()
        assert report.warnings == [
            "flag old.switch expired on 2026-11-30: ask its owner (platform) to remove it or "
            "renew its expiry"
        ]
        states = {f.name: f for f in report.flags}
        assert states["old.switch"].expired and not states["ml.fail-first"].expired
        assert states["ml.fail-first"].layer == "tenant"
        assert "first failure sooner" in states["ml.fail-first"].why
        assert report.tenant.state.startswith("failing") and report.tenant.overrides == 2

        sync.config = None  # the workspace no longer has a coordinator: its overrides go
        await flags.poll_once()
        assert flags.value("ml.fail-first") == "off"
        assert not tenant_cache_path(root).exists()
    finally:
        await flags.stop(app)
        await sync.stop(app)
