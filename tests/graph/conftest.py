from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from maestro.graph.build import BuildGraph

Files = dict[str, str | bytes]


def write_tree(root: Path, files: Files) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def make_ws(tmp_path: Path) -> Callable[[Files], Path]:
    def make(files: Files) -> Path:
        return write_tree(tmp_path / "ws", files)

    return make


@pytest.fixture
def build() -> Callable[..., BuildGraph]:
    def _build(root: Path, index: Path | None = None) -> BuildGraph:
        return BuildGraph.build(root, index_path=index)

    return _build
