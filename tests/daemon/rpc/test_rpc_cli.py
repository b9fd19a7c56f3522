"""`maestro daemon start|status|logs|stop` against a real daemon process."""

from __future__ import annotations

import json

import pytest
from conftest import DaemonEnv
from typer.testing import CliRunner

from maestro.cli.daemon_cmd import daemon_app
from maestro.workspace import find_root

runner = CliRunner()


def test_cli_lifecycle(daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = daemon_env.root / "pkg" / "deep"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert find_root() == daemon_env.root

    result = runner.invoke(daemon_app, ["status", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["running"] is False

    result = runner.invoke(daemon_app, ["start"])
    assert result.exit_code == 0, result.output
    pid = daemon_env.holder()
    assert pid and f"pid {pid}" in result.stdout

    result = runner.invoke(daemon_app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["running"], data["pid"], data["root"]) == (True, pid, str(daemon_env.root))

    result = runner.invoke(daemon_app, ["status"])
    assert result.exit_code == 0 and str(pid) in result.stdout

    result = runner.invoke(daemon_app, ["logs", "-n", "3"])
    assert result.exit_code == 0
    assert 0 < len(result.stdout.splitlines()) <= 3

    result = runner.invoke(daemon_app, ["stop", "--root", str(daemon_env.root)])
    assert result.exit_code == 0 and f"pid {pid}" in result.stdout
    assert daemon_env.wait_stopped(5)
    assert "daemon not running" in runner.invoke(daemon_app, ["stop"]).stdout
    assert "starting for" in runner.invoke(daemon_app, ["logs"]).stdout
