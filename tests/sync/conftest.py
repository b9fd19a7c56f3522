"""Fixtures for the daemon-sync tests: a real coordinator with two tenants and keys per role, and
workspaces with their own cache dirs and daemons (stopped at teardown)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sync_helpers import Coordinator, Workspace


@dataclass
class Team:
    coord: Coordinator
    base: Path
    keys: dict[str, str]
    workspaces: list[Workspace] = field(default_factory=list)

    def workspace(self, name: str, role: str | None, tenant: str = "team") -> Workspace:
        key = self.keys[f"{tenant}:{role}"] if role else None
        ws = Workspace(self.base, name, key, self.coord.url, tenant)
        self.workspaces.append(ws)
        return ws


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
