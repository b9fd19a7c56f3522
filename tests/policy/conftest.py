from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def workspace(tmp_path: Path) -> Callable[..., Path]:
    """A workspace with [tool.maestro.policy] settings and .maestro/policy modules."""

    def make(policy_toml: str = "", modules: dict[str, str] | None = None) -> Path:
        root = tmp_path / "ws"
        root.mkdir(exist_ok=True)
        (root / "pyproject.toml").write_text(
            f'[project]\nname = "ws"\nversion = "0"\n\n{policy_toml}\n', encoding="utf-8"
        )
        folder = root / ".maestro" / "policy"
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in (modules or {}).items():
            (folder / name).write_text(text, encoding="utf-8")
        return root

    return make


@pytest.fixture(autouse=True)
def _state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAESTRO_STATE_DIR", str(tmp_path / "state"))
