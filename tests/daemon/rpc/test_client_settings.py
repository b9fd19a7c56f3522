"""An editor's settings over the workspace configuration, in a real daemon: `configure` turns
speculation on (or off) for as long as the editor stays connected, then the workspace's own
configuration applies again."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import DaemonEnv
from test_speculation import edit, run_all, sessions, setup, spec, wait_for

from maestro import wire
from maestro.config import MlSettings, RemoteSettings, Settings, SpeculationSettings
from maestro.daemon.services.client_settings import apply_client_settings
from maestro.daemon.transport.client import SyncDaemonClient


def test_speculation_follows_the_connected_editor(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = setup(daemon_env, monkeypatch, speculate=False)  # the workspace says off
    with SyncDaemonClient(daemon_env.root, start=False) as cli:
        assert run_all(cli).passed == 2
        with SyncDaemonClient(daemon_env.root, start=False) as editor:
            applied = editor.call(wire.CONFIGURE, wire.ClientSettings(speculation=True))
            assert applied.speculation is True
            assert spec(cli).enabled and spec(cli).state != "off"
            started = sessions(marker)
            edit(daemon_env.root, "def one():\n    return 2\n")
            wait_for(lambda: spec(cli).runs >= 1, what="a speculative run")
            assert sessions(marker) == started + 1
        # the editor is gone: the workspace's configuration (off) applies again
        wait_for(lambda: not spec(cli).enabled, what="speculation off again")
        runs = spec(cli).runs
        edit(daemon_env.root, "def one():\n    return 3\n")
        run_all(cli)  # after the save, so the watcher has seen it
        assert spec(cli).runs == runs


def test_editor_can_turn_off_what_the_workspace_turns_on(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(daemon_env, monkeypatch, speculate=True)
    with SyncDaemonClient(daemon_env.root, start=False) as editor:
        # the daemon reads the workspace's speculation settings while it starts up
        wait_for(lambda: spec(editor).enabled, what="the workspace's speculation on")
        applied = editor.call(wire.CONFIGURE, wire.ClientSettings(speculation=False))
        assert applied.speculation is False
        assert not spec(editor).enabled and spec(editor).state == "off"
        # None keeps the workspace's value
        editor.call(wire.CONFIGURE, wire.ClientSettings())
        assert spec(editor).enabled


def test_coordinator_url_without_a_tenant_says_what_is_missing(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(daemon_env, monkeypatch, speculate=False)  # no [tool.maestro.remote]
    with SyncDaemonClient(daemon_env.root, start=False) as editor:
        url = "http://127.0.0.1:9"
        applied = editor.call(wire.CONFIGURE, wire.ClientSettings(coordinator_url=url + "/"))
        assert applied.coordinator_url == url
        assert applied.remote_problem and "tenant" in applied.remote_problem
        remote = editor.call(wire.STATUS).remote
        assert remote is not None and remote.url == url and remote.last_error
        assert "[tool.maestro.remote]" in remote.last_error


def test_apply_client_settings_replaces_only_what_is_given() -> None:
    remote = RemoteSettings(url="http://team:1", tenant="team", api_key_env="K")
    config = Settings(interpreter="/ws/python", remote=remote, ml=MlSettings(SpeculationSettings()))
    assert apply_client_settings(config, wire.ClientSettings()) is config
    out = apply_client_settings(
        config, wire.ClientSettings(coordinator_url="http://near:2", speculation=True)
    )
    assert out.remote == replace(remote, url="http://near:2")
    assert out.ml.speculation.enabled
    assert out.ml.speculation.delay_ms == config.ml.speculation.delay_ms
    assert out.interpreter == "/ws/python"
    assert apply_client_settings(config, wire.ClientSettings(interpreter="/x")).interpreter == "/x"


def test_bad_coordinator_url_is_refused_at_the_boundary() -> None:
    with pytest.raises(ValueError, match=r"http\(s\)://HOST"):
        wire.ClientSettings(coordinator_url="ftp://x")
