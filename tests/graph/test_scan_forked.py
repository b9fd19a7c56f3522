"""A cold build's parallel scan: forked children send their share back; a failed child's share
is scanned in the parent instead of being lost."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from maestro.graph import build as build_module
from maestro.graph import environment
from maestro.graph.build import scan_files, scan_forked


def _files(root: Path, count: int) -> list[str]:
    rels = []
    for i in range(count):
        rel = f"pkg/m{i}.py"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"import os\nfrom pkg import m{(i + 1) % count}\n")
        rels.append(rel)
    (root / "pkg/bad.py").write_bytes(b"x = '\xe9'\n")  # a problem travels back too
    return [*rels, "pkg/bad.py", "pkg/missing.py"]


def test_children_return_what_one_process_finds(tmp_path: Path) -> None:
    rels = _files(tmp_path, 30)
    forked = scan_forked(str(tmp_path), [rels[i::3] for i in range(3)])
    assert sorted(forked) == sorted(scan_files(str(tmp_path), rels))


def test_a_failed_child_share_is_scanned_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rels = _files(tmp_path, 10)
    parent = os.getpid()
    real = build_module.scan_files

    def dies_in_children(root: str, chunk: list[str]) -> list[build_module.ScanResult]:
        if os.getpid() != parent:
            raise RuntimeError("child lost")
        return real(root, chunk)

    monkeypatch.setattr(build_module, "scan_files", dies_in_children)
    forked = scan_forked(str(tmp_path), [rels[i::2] for i in range(2)])
    assert sorted(forked) == sorted(real(str(tmp_path), rels))


def test_call_forked_returns_the_child_result_or_none() -> None:
    assert build_module.call_forked(sorted, {"b": 1, "a": 2})() == ["a", "b"]

    def fails() -> None:
        raise RuntimeError("child lost")

    assert build_module.call_forked(fails)() is None


def test_a_cold_build_reads_the_environment_aside_and_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold build's distribution map is read in a forked child while the parent links, and
    kept in the index: the next process does not read site-packages again."""
    if not build_module.may_fork(build_module.PARALLEL_SCAN_MIN):
        pytest.skip("a build forks its helpers only with a second core and no other thread")
    _files(tmp_path, build_module.PARALLEL_SCAN_MIN)
    index = tmp_path / "index.msgpack"
    parent = os.getpid()
    real = environment.distribution_map
    seen: list[int] = []

    def where(dirs: list[Path]) -> dict[str, list[str]]:
        seen.append(os.getpid())
        return real(dirs)

    monkeypatch.setattr(environment, "distribution_map", where)
    cold = build_module.BuildGraph.build(tmp_path, index_path=index)
    expected = real(environment.site_packages(tmp_path))
    assert expected and cold.distributions() == expected
    assert seen == [], "read in the child, whose calls this process does not see"
    assert parent == os.getpid()
    again = build_module.BuildGraph.build(tmp_path, index_path=index)
    assert again.distributions() == expected and seen == []  # from the index
