"""Fixtures for cache tests: a real LMDB cache in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from maestro.cache import Cache


@pytest.fixture
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache-home"
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(root))
    # `cache gc` and `stats` also look at every workspace's kept file versions: none here
    monkeypatch.setenv("MAESTRO_STATE_DIR", str(tmp_path / "state"))
    return root


@pytest.fixture
def cache(cache_root: Path) -> Iterator[Cache]:
    with Cache.open() as c:
        yield c
