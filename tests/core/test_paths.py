"""replace_file: the small state files Maestro rewrites (policy, flags, bundles) go through it.
workspace_key: the name of a workspace's state directory."""

from __future__ import annotations

import hashlib
import stat
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from maestro.paths import replace_file, workspace_key


def test_the_content_is_replaced_whole_and_private(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    replace_file(target, b'{"new": 1}')
    assert target.read_bytes() == b'{"new": 1}'
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    replace_file(target, b"synced", sync=True)
    assert target.read_bytes() == b"synced"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary left


def test_a_failed_write_keeps_the_old_content_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        replace_file(target, cast(Any, "not bytes"))
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_workspace_keeps_its_state_directory_name(tmp_path: Path) -> None:
    """The name hashes the resolved path as it always has (SHA-256, whichever module computes
    it): an upgrade must not lose a workspace's graph, last keys and fingerprints."""
    root = tmp_path / "proj\u00e9ct"
    root.mkdir()
    digest = hashlib.sha256(bytes(root.resolve())).hexdigest()[:16]
    assert workspace_key(root) == f"proj\u00e9ct-{digest}"
    assert workspace_key(root / ".") == workspace_key(root)


def test_user_directories_follow_their_variables_else_the_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shared cache, the workspaces' state and the coordinator's data: each where its
    variable says (the coordinator's under MAESTRO_STATE_DIR too), else the platform's place."""
    import platformdirs

    from maestro.coordinator.settings import default_data_dir
    from maestro.paths import cache_dir, state_dir

    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("MAESTRO_STATE_DIR", str(tmp_path / "s"))
    assert (cache_dir(), state_dir()) == (tmp_path / "c", tmp_path / "s")
    assert default_data_dir() == tmp_path / "s" / "coordinator"
    monkeypatch.delenv("MAESTRO_CACHE_DIR")
    monkeypatch.setenv("MAESTRO_STATE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xc"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xs"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xd"))
    assert cache_dir() == Path(platformdirs.user_cache_dir("maestro", appauthor=False))
    assert state_dir() == Path(platformdirs.user_state_dir("maestro", appauthor=False))
    assert default_data_dir() == Path(
        platformdirs.user_data_dir("maestro", appauthor=False), "coordinator"
    )
    if sys.platform == "linux":
        assert (cache_dir(), state_dir(), default_data_dir()) == (
            tmp_path / "xc" / "maestro",
            tmp_path / "xs" / "maestro",
            tmp_path / "xd" / "maestro" / "coordinator",
        )
