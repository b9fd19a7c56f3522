"""A tenant rate-limited by the team coordinator (set with `maestro coordinator tenant set`,
limits enforced): the daemon's runs keep working from the local cache, and `maestro status`
says the coordinator asked it to back off, until when and by which rule. Real coordinator,
real daemon started by `maestro test`, the real CLI."""

from __future__ import annotations

import time

import pytest
from sync_helpers import Team, cached_count

pytestmark = pytest.mark.slow

BACKING_OFF = "coordinator asked us to back off until "


def test_a_rate_limited_daemon_works_from_the_local_cache_and_says_so(team: Team) -> None:
    coord = team.coord
    coord.stop()
    said = coord.cli("tenant", "set", "team", "--priority", "ci", "--rate", "0.1", "--burst", "1")
    assert "priority=ci" in said and "rate_per_s=0.1" in said and "burst=1" in said, said
    assert "priority=ci" in coord.cli("tenant", "list")
    coord.settings_env["MAESTRO_COORDINATOR_RATE_LIMITS"] = "enforce"
    coord.start()
    ws = team.workspace("limited", "read-write")
    ws.setup()
    first = ws.test()
    assert first.returncode == 0 and "3 passed" in first.stdout, first.stderr + first.stdout

    # one request per 10 s: the run's lookups and uploads ran into it, and the sync waits
    line = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and BACKING_OFF not in line:
        text = ws.maestro("status", timeout=60)
        assert text.returncode == 0, text.stderr
        line = next((ln for ln in text.stdout.splitlines() if BACKING_OFF in ln), "")
    assert "(rate.tenant" in line, line
    assert line.endswith("working from the local cache, uploads wait"), line

    # meanwhile the workspace works as without a coordinator: served from its own cache
    second = ws.test()
    assert second.returncode == 0, second.stderr + second.stdout
    assert cached_count(second.stdout) == 2, second.stdout
    ws.stop_daemon()
