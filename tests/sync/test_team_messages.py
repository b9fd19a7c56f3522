"""What a developer is told about the team cache: a read key (the documented laptop setup) is
no problem to warn about, and a wrong key or URL says how to fix it. Real coordinator, real
daemons on loopback."""

from __future__ import annotations

import time

import pytest
from sync_helpers import FILES, KEY_ENV, Team, Workspace

pytestmark = pytest.mark.slow


def _daemon_log(ws: Workspace) -> str:
    logs = list((ws.base / ws.name / "s").rglob("daemon.log"))
    return "".join(p.read_text(errors="replace") for p in logs)


def _status_text(ws: Workspace) -> str:
    out = ws.maestro("status", timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return " ".join(out.stdout.split())


def test_a_read_key_does_not_warn_about_policy_decisions_on_every_run(team: Team) -> None:
    laptop = team.workspace("dana", "read")
    laptop.setup(FILES, maestro_extra="[tool.maestro.policy.bundle]\nrefresh_s = 1")
    for _ in range(2):
        run = laptop.test()
        assert run.returncode == 0, run.stdout + run.stderr
        time.sleep(2.5)  # the policy sync's period: it had a turn after each run
    log = _daemon_log(laptop)
    assert "run 2:" in log, log
    warned = [line for line in log.splitlines() if "WARNING" in line and "policy" in line]
    assert warned == [], "\n".join(warned)
    assert "role read cannot write" not in log, log
    assert "role read" in _status_text(laptop)


def test_a_wrong_key_says_which_variable_holds_it(team: Team) -> None:
    ws = team.workspace("erin", "read")
    ws.key = "mk_not_a_key_of_this_coordinator"
    ws.setup(FILES)
    run = ws.test()
    assert run.returncode == 0, run.stdout + run.stderr  # pytest's outcomes all the same
    said = " ".join(run.stdout.split())
    assert f"note: the team cache ({ws.url}) could not be used: the coordinator rejected" in said
    ws.wait_remote(lambda r: bool(r["last_error"]))
    said = _status_text(ws)
    assert "the coordinator rejected the API key" in said, said
    assert f"hint: the API key is read from ${KEY_ENV}" in said, said
    assert "api_key_env in [tool.maestro.remote] of pyproject.toml" in said, said


def test_a_wrong_url_says_which_url_and_where_it_is_configured(team: Team) -> None:
    ws = team.workspace("frank", "read")
    ws.setup(FILES)
    ws.set_url("http://127.0.0.1:9")  # discard port: nothing listens
    run = ws.test()
    assert run.returncode == 0, run.stdout + run.stderr
    said = " ".join(run.stdout.split())
    assert "note: the team cache (http://127.0.0.1:9) could not be used: coordinator unre" in said
    ws.wait_remote(lambda r: bool(r["last_error"]))
    said = _status_text(ws)
    assert "coordinator unreachable" in said, said
    assert "hint: the coordinator URL http://127.0.0.1:9 is set by url in" in said, said
    assert "[tool.maestro.remote] of pyproject.toml" in said, said
