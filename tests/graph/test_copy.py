"""`BuildGraph.copy()`: a run's own graph, independent of the shared one in memory and on disk."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from maestro.graph.build import BuildGraph, Change

Make = Callable[[dict[str, str | bytes]], Path]

FILES: dict[str, str | bytes] = {
    "pkg/__init__.py": "",
    "pkg/a.py": "import pkg.b\n",
    "pkg/b.py": "",
    "pkg/c.py": "",
    "pkg/broken.py": "def f(:\n",
    "tests/conftest.py": "",
    "tests/test_a.py": "from pkg import a\n",
    "tests/test_c.py": "import pkg.c\n",
    "data/a.json": "{}",
    "pyproject.toml": "[tool.pytest.ini_options]\ntestpaths = ['tests']\n",
}


def _aged(make_ws: Make) -> Path:
    """A workspace older than the racily-clean window, so an index reuses every file."""
    root = make_ws(FILES)
    past = time.time() - 10
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (past, past))
    return root


def _targets(graph: BuildGraph, path: str) -> list[str]:
    return [i.target for i in graph.impacted([Change(path)])]


def test_a_copy_answers_like_the_original(make_ws: Make, tmp_path: Path) -> None:
    graph = BuildGraph.build(_aged(make_ws), index_path=tmp_path / "index")
    graph.record_dynamic("tests/test_c.py", ["data/a.json"])
    own = graph.copy()
    assert set(vars(own)) == set(vars(graph))  # no piece of state forgotten
    assert (own.deps, own.rdeps, own.tests, own.sections) == (
        graph.deps, graph.rdeps, graph.tests, graph.sections,
    )  # fmt: skip
    for path in ("pkg/b.py", "data/a.json", "pyproject.toml", "tests/conftest.py"):
        assert [(i.target, i.why) for i in own.impacted([Change(path)])] == [
            (i.target, i.why) for i in graph.impacted([Change(path)])
        ]
    assert own.why("tests/test_a.py", "pkg/b.py") == graph.why("tests/test_a.py", "pkg/b.py")
    assert own.closure("tests/test_a.py") == graph.closure("tests/test_a.py")
    assert own.compute_stats().edges == graph.compute_stats().edges


def test_what_a_copy_records_stays_in_the_copy(make_ws: Make, tmp_path: Path) -> None:
    graph = BuildGraph.build(_aged(make_ws), index_path=tmp_path / "index")
    own = graph.copy()
    own.record_dynamic("tests/test_a.py", ["data/a.json"])
    assert _targets(own, "data/a.json") == ["tests/test_a.py"]
    assert _targets(graph, "data/a.json") == []
    assert "tests/test_a.py" not in graph.index.dynamic
    # and the other way round: what the shared graph learns later does not reach the copy
    graph.record_dynamic("tests/test_c.py", ["data/a.json"])
    assert _targets(own, "data/a.json") == ["tests/test_a.py"]
    assert own.index.dynamic == {"tests/test_a.py": ["data/a.json"]}


def test_a_copy_never_writes_the_index(make_ws: Make, tmp_path: Path) -> None:
    index = tmp_path / "index"
    graph = BuildGraph.build(_aged(make_ws), index_path=index)
    graph.save()
    before = (index.read_bytes(), index.stat().st_mtime_ns)
    own = graph.copy()
    own.record_dynamic("tests/test_a.py", ["data/a.json"])
    own.file_digest("pkg/a.py")
    own.save()
    (own.root / "pkg/new.py").write_text("import pkg.c\n")
    assert own.update(["pkg/new.py"]) == {"*"}  # a structural change relinks the copy
    own.save()
    assert own.index.path is None
    assert (index.read_bytes(), index.stat().st_mtime_ns) == before
    # the shared graph still saves, and what it saves holds nothing of the copy's
    graph.record_dynamic("tests/test_c.py", ["data/a.json"])
    graph.save()
    reloaded = BuildGraph.build(graph.root, index_path=index)
    assert _targets(reloaded, "data/a.json") == ["tests/test_c.py"]


def test_updates_and_checks_on_a_copy_leave_the_original_alone(
    make_ws: Make, tmp_path: Path
) -> None:
    root = _aged(make_ws)
    graph = BuildGraph.build(root, index_path=tmp_path / "index")
    unchecked = graph.syntax_unchecked()
    own = graph.copy()
    assert [d.path for d in own.diagnostics(check_syntax_now=True)] == ["pkg/broken.py"]
    assert own.syntax_unchecked() == 0
    assert graph.syntax_unchecked() == unchecked
    assert graph.py["pkg/a.py"].digest == ""  # hashed in the copy only
    (root / "pkg/a.py").write_text("import pkg.b\nimport pkg.c\n")
    assert own.update(["pkg/a.py"]) == {"pkg/a.py"}
    assert sorted(_targets(own, "pkg/c.py")) == ["tests/test_a.py", "tests/test_c.py"]
    assert _targets(graph, "pkg/c.py") == ["tests/test_c.py"]
    (root / "pkg/d.py").write_text("")
    own.update(["pkg/d.py"])
    assert "pkg/d.py" in own.all_files and "pkg/d.py" not in graph.all_files
    assert "pkg/d.py" in own.py and "pkg/d.py" not in graph.py
