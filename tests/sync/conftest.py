"""Fixtures for the daemon-sync tests: a real coordinator with two tenants and keys per role, and
workspaces with their own cache dirs and daemons (stopped at teardown)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sync_helpers import Coordinator, Team


@pytest.fixture
def team() -> Iterator[Team]:
    base = Path(tempfile.mkdtemp(prefix="msy", dir="/tmp"))
    coord = Coordinator(base)
    coord.cli("tenant", "add", "team")
    coord.cli("tenant", "add", "other")
    keys = {
        "team:read-write": coord.key("team", "read-write"),
        "team:read": coord.key("team", "read"),
        "other:read-write": coord.key("other", "read-write"),
    }
    coord.start()
    t = Team(coord, base, keys)
    try:
        yield t
    finally:
        for ws in t.workspaces:
            ws.stop_daemon()
        coord.stop()
        shutil.rmtree(base, ignore_errors=True)
