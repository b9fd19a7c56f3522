"""replace_file: the small state files Maestro rewrites (policy, flags, bundles) go through it."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any, cast

import pytest

from maestro.paths import replace_file


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
