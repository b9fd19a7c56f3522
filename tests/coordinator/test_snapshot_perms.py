"""`maestro coordinator snapshot` writes every tenant's data and key records: the directory is
0700 and every file 0600, whatever the umask, and however the target directory was made."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from maestro.coordinator.auth import create_key
from maestro.coordinator.models import Role
from maestro.coordinator.snapshot import take_snapshot
from maestro.coordinator.store import Store

MAESTRO = str(Path(sys.executable).parent / "maestro")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _assert_private(snap: Path) -> None:
    assert _mode(snap) == 0o700
    files = list(snap.iterdir())
    assert {p.name for p in files} >= {"data.mdb", "manifest.json"}
    assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "coord" / "store") as s:
        s.add_tenant("alpha")
        create_key(s, "alpha", Role.ADMIN)
        yield s


@pytest.mark.usefixtures("loose_umask")
def test_snapshot_is_private_in_a_new_directory(tmp_path: Path, store: Store) -> None:
    take_snapshot(store, tmp_path / "backups" / "snap")
    _assert_private(tmp_path / "backups" / "snap")


@pytest.mark.usefixtures("loose_umask")
def test_an_existing_empty_directory_is_made_private(tmp_path: Path, store: Store) -> None:
    snap = tmp_path / "snap"
    snap.mkdir(mode=0o755)
    snap.chmod(0o755)
    take_snapshot(store, snap)
    _assert_private(snap)


def test_the_command_writes_a_private_snapshot(tmp_path: Path, store: Store) -> None:
    store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    snap = tmp_path / "cli-snap"
    subprocess.run(
        ["sh", "-c", 'umask 022 && exec "$@"', "sh", MAESTRO, "coordinator", "snapshot",
         str(snap), "--data", str(tmp_path / "coord")],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    _assert_private(snap)
