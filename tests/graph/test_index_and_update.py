"""The persisted index makes a second process warm; incremental updates follow edits."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from maestro.graph.build import BuildGraph, Change

Make = Callable[[dict[str, str | bytes]], Path]


def _age(root: Path, seconds: int = 10) -> None:
    """Make every file look older than the index (outside the racily-clean window)."""
    past = time.time() - seconds
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (past, past))


def test_second_process_reuses_every_unchanged_file(make_ws: Make, tmp_path: Path) -> None:
    root = make_ws({"pkg/__init__.py": "", "pkg/a.py": "", "tests/test_a.py": "import pkg.a\n"})
    _age(root)
    index = tmp_path / "index.msgpack"
    first = BuildGraph.build(root, index_path=index)
    assert first.stats.scanned == 3
    second = BuildGraph.build(root, index_path=index)
    assert second.stats.reused_from_index == 3 and second.stats.scanned == 0
    assert {i.target for i in second.impacted([Change("pkg/a.py")])} == {"tests/test_a.py"}


def test_changed_file_is_rescanned_and_racy_files_are_not_trusted(
    make_ws: Make, tmp_path: Path
) -> None:
    root = make_ws({"pkg/__init__.py": "", "pkg/a.py": "", "tests/test_a.py": ""})
    _age(root)
    index = tmp_path / "index.msgpack"
    BuildGraph.build(root, index_path=index)
    (root / "tests/test_a.py").write_text("import pkg.a\n")  # fresh mtime: inside racy window
    graph = BuildGraph.build(root, index_path=index)
    assert graph.stats.scanned == 1
    assert "pkg/a.py" in graph.deps["tests/test_a.py"]


def test_corrupt_index_is_rebuilt_not_fatal(make_ws: Make, tmp_path: Path) -> None:
    root = make_ws({"tests/test_a.py": ""})
    index = tmp_path / "index.msgpack"
    index.write_bytes(b"\x93garbage\xff")
    graph = BuildGraph.build(root, index_path=index)
    assert graph.tests == {"tests/test_a.py"}
    assert BuildGraph.build(root, index_path=index).tests == {"tests/test_a.py"}


def test_index_damaged_inside_a_valid_structure_is_a_miss(make_ws: Make, tmp_path: Path) -> None:
    """A flipped byte in an import blob (decoded only on demand) never becomes a wrong edge:
    the whole file is checked before anything in it is trusted."""
    root = make_ws({"pkg/__init__.py": "", "pkg/a.py": "", "tests/test_a.py": "import pkg.a\n"})
    _age(root)
    index = tmp_path / "index.msgpack"
    BuildGraph.build(root, index_path=index)
    raw = bytearray(index.read_bytes())
    at = raw.index(b"pkg.a")  # inside the nested blob of tests/test_a.py's imports
    raw[at : at + 5] = b"pkg.b"
    index.write_bytes(bytes(raw))
    graph = BuildGraph.build(root, index_path=index)
    assert graph.stats.reused_from_index == 0 and graph.stats.scanned == 3
    assert {i.target for i in graph.impacted([Change("pkg/a.py")])} == {"tests/test_a.py"}


def test_incremental_update_of_one_file(make_ws: Make) -> None:
    root = make_ws(
        {"pkg/__init__.py": "", "pkg/a.py": "", "pkg/b.py": "", "tests/test_x.py": "import pkg.a\n"}
    )
    graph = BuildGraph.build(root)
    assert {i.target for i in graph.impacted([Change("pkg/b.py")])} == set()
    (root / "pkg/a.py").write_text("from pkg import b\n")
    assert graph.update(["pkg/a.py"]) == {"pkg/a.py"}
    impacts = graph.impacted([Change("pkg/b.py")])
    assert [h.target for h in impacts[0].chain] == ["pkg/a.py", "pkg/b.py"]
    # a comment-only rewrite with the same imports changes no edge
    (root / "pkg/a.py").write_text("from pkg import b\n# a comment changes no edge\n")
    assert graph.update(["pkg/a.py"]) == set()


def test_update_with_added_and_deleted_files(make_ws: Make) -> None:
    root = make_ws({"pkg/__init__.py": "", "tests/test_x.py": "from pkg import c\n"})
    graph = BuildGraph.build(root)
    (root / "pkg/c.py").write_text("")
    graph.update(["pkg/c.py"])
    assert {i.target for i in graph.impacted([Change("pkg/c.py")])} == {"tests/test_x.py"}
    (root / "tests/test_new.py").write_text("import pkg.c\n")
    graph.update(["tests/test_new.py"])
    assert "tests/test_new.py" in graph.tests


def test_a_text_doctest_file_follows_its_edits(make_ws: Make, tmp_path: Path) -> None:
    root = make_ws(
        {"pkg/__init__.py": "", "pkg/a.py": "", "pkg/b.py": "", "tests/test_doc.txt": "data\n"}
    )
    index = tmp_path / "index"
    graph = BuildGraph.build(root, index_path=index)
    graph.save()
    assert graph.tests == set()  # no example yet: pytest collects no test from it
    (root / "tests/test_doc.txt").write_text(">>> import pkg.a\n")
    graph.update(["tests/test_doc.txt"])
    assert graph.tests == {"tests/test_doc.txt"}
    assert {i.target for i in graph.impacted([Change("pkg/a.py")])} == {"tests/test_doc.txt"}
    (root / "tests/test_doc.txt").write_text(">>> import pkg.b\n")
    assert graph.update(["tests/test_doc.txt"]) == {"tests/test_doc.txt"}
    assert {i.target for i in graph.impacted([Change("pkg/a.py")])} == set()
    assert {i.target for i in graph.impacted([Change("pkg/b.py")])} == {"tests/test_doc.txt"}
    graph.save()
    # a second process restores the links of the file as last read, not an older snapshot
    again = BuildGraph.build(root, index_path=index)
    assert {i.target for i in again.impacted([Change("pkg/b.py")])} == {"tests/test_doc.txt"}
    (root / "tests/test_doc.txt").write_text(">>> import pkg.a\n>>> import pkg.b\n")
    third = BuildGraph.build(root, index_path=index)
    assert {i.target for i in third.impacted([Change("pkg/a.py")])} == {"tests/test_doc.txt"}


def test_recorded_dynamic_deps_join_the_graph_and_persist(make_ws: Make, tmp_path: Path) -> None:
    root = make_ws({"tests/test_data.py": "", "tests/data/input.json": "{}"})
    index = tmp_path / "index.msgpack"
    graph = BuildGraph.build(root, index_path=index)
    graph.record_dynamic("tests/test_data.py", ["tests/data/input.json"])
    graph.save()
    again = BuildGraph.build(root, index_path=index)
    [impact] = again.impacted([Change("tests/data/input.json")])
    assert impact.target == "tests/test_data.py"
    assert impact.chain[0].describe() == "read it while running (recorded)"


def test_recorded_module_is_said_imported_not_read(make_ws: Make) -> None:
    """A module the recorder found a test loading at run time is not "read" as data."""
    root = make_ws({"tests/test_plugins.py": "", "pkg/__init__.py": "", "pkg/late.py": ""})
    graph = BuildGraph.build(root)
    graph.record_dynamic("tests/test_plugins.py", ["pkg/late.py"])
    [impact] = graph.impacted([Change("pkg/late.py")])
    assert impact.chain[0].describe() == "imported it while running (recorded)"
    hops = graph.why("tests/test_plugins.py", "pkg/late.py")
    assert hops is not None
    assert [h.describe() for h in hops] == ["imported it while running (recorded)"]


def test_a_recorded_conftest_of_another_folder_is_not_said_imported_by_the_test_file(
    make_ws: Make,
) -> None:
    # pytest loads the conftests of every path it is given before any test; a test file of
    # tests/a never imports tests/b/conftest.py, it runs after pytest loaded it
    root = make_ws({"tests/a/test_x.py": "", "tests/b/conftest.py": "", "tests/b/test_y.py": ""})
    graph = BuildGraph.build(root)
    graph.record_dynamic("tests/a/test_x.py", ["tests/b/conftest.py"])
    hops = graph.why("tests/a/test_x.py", "tests/b/conftest.py")
    assert hops is not None
    assert [h.describe() for h in hops] == ["ran after pytest loaded it (recorded)"]


def test_why_and_closure(make_ws: Make) -> None:
    root = make_ws(
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "import pkg.b\n",
            "pkg/b.py": "",
            "tests/test_a.py": "import pkg.a\n",
        }
    )
    graph = BuildGraph.build(root)
    chain = graph.why("tests/test_a.py", "pkg/b.py")
    assert chain is not None and [h.target for h in chain] == ["pkg/a.py", "pkg/b.py"]
    assert graph.why("tests/test_a.py", "README.md") is None
    assert {"pkg/a.py", "pkg/b.py", "pkg/__init__.py"} <= graph.closure("tests/test_a.py")


def test_why_names_a_package_under_a_source_root_by_its_module_name(make_ws: Make) -> None:
    # itsdangerous: "runs package init of src.itsdangerous (line 9)" for
    # `from itsdangerous.exc import ...` (the package is itsdangerous, under src/)
    root = make_ws(
        {
            "pyproject.toml": '[project]\nname = "pkg"\nversion = "0"\n',
            "src/pkg/__init__.py": "from . import b\n",
            "src/pkg/a.py": "",
            "src/pkg/b.py": "",
            "tests/test_a.py": "from pkg.a import x\n",
        }
    )
    chain = BuildGraph.build(root).why("tests/test_a.py", "src/pkg/b.py")
    assert chain is not None
    assert chain[0].describe() == "runs package init of pkg (line 1)"


def test_parallel_cold_scan_gives_the_same_graph(
    make_ws: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    files: dict[str, str | bytes] = {"pkg/__init__.py": ""}
    for i in range(450):
        files[f"pkg/m{i}.py"] = f"import pkg.m{(i + 1) % 450}\nimport os\n"
    files["tests/test_m.py"] = "from pkg import m0\n"
    files["pkg/latin.py"] = b"x = '\xe9'\n"
    root = make_ws(files)
    from maestro.graph import build as build_module

    parallel = BuildGraph.build(root)
    monkeypatch.setattr(build_module, "PARALLEL_SCAN_MIN", 10**9)
    sequential = BuildGraph.build(root)
    assert parallel.stats.scanned == sequential.stats.scanned == 453
    assert parallel.deps == sequential.deps
    assert [d.message for d in parallel.diagnostics()] == [
        d.message for d in sequential.diagnostics()
    ]
    assert len(parallel.impacted([Change("pkg/m200.py")])) == 1


def test_a_new_recording_replaces_the_old_one(make_ws: Make) -> None:
    root = make_ws({"tests/test_data.py": "", "data/a.json": "{}", "data/b.json": "{}"})
    graph = BuildGraph.build(root)
    graph.record_dynamic("tests/test_data.py", ["data/a.json"])
    graph.record_dynamic("tests/test_data.py", ["data/b.json"])
    assert graph.impacted([Change("data/a.json")]) == []
    assert [i.target for i in graph.impacted([Change("data/b.json")])] == ["tests/test_data.py"]


def test_a_name_added_to_or_removed_from_a_listed_directory_impacts_its_listers(
    make_ws: Make,
) -> None:
    root = make_ws(
        {"tests/test_cases.py": "", "tests/test_other.py": "", "cases/a.txt": "1", "top.txt": ""}
    )
    graph = BuildGraph.build(root)
    graph.record_dynamic("tests/test_cases.py", ["dir:cases", "dir:."])
    assert graph.file_digest("dir:cases") != graph.file_digest("dir:.")
    (root / "cases" / "b.txt").write_text("2")
    assert [i.target for i in graph.impacted([Change("cases/b.txt", "added")])] == [
        "tests/test_cases.py"
    ]
    assert [i.target for i in graph.impacted([Change("new.txt", "added")])] == [
        "tests/test_cases.py"
    ]
    assert [i.target for i in graph.impacted([Change("cases/a.txt", "deleted")])] == [
        "tests/test_cases.py"
    ]
    assert graph.impacted([Change("top.txt")]) == []  # an edit keeps the names


def test_a_listing_keeps_its_names_once_the_graph_knows_the_new_file(
    make_ws: Make, tmp_path: Path
) -> None:
    """A warm graph that has folded in a new or removed file (the daemon's watcher did) tells
    it from an edit by the names the listers saw, kept in the index across a restart."""
    root = make_ws({"tests/test_cases.py": "", "cases/a.txt": "1", "cases/sub/b.txt": "2"})
    index = tmp_path / "index"
    graph = BuildGraph.build(root, index_path=index)
    graph.record_dynamic("tests/test_cases.py", ["dir:cases", "dir:cases/sub"])
    graph.save()
    (root / "cases" / "new.txt").write_text("3")
    (root / "cases" / "more").mkdir()
    (root / "cases" / "more" / "c.txt").write_text("4")
    (root / "cases" / "sub" / "b.txt").unlink()
    for known in (graph, BuildGraph.build(root, index_path=index)):
        known.update(["cases/new.txt", "cases/more/c.txt", "cases/sub/b.txt"])
        assert "cases/new.txt" in known.all_files
        for rel in ("cases/new.txt", "cases/more/c.txt", "cases/sub/b.txt"):
            status = "modified" if (root / rel).exists() else "deleted"
            assert [i.target for i in known.impacted([Change(rel, status)])] == [
                "tests/test_cases.py"
            ], rel
        assert known.impacted([Change("cases/a.txt")]) == []  # an edit keeps the names


def test_a_new_directory_reported_alone_brings_its_files(make_ws: Make) -> None:
    """The watcher may report a new directory and not the file written into it right away
    (before the directory's own watch was set up): the update walks it."""
    root = make_ws({"tests/test_a.py": "", "pkg/__init__.py": ""})
    graph = BuildGraph.build(root)
    (root / "pkg" / "sub").mkdir()
    (root / "pkg" / "sub" / "mod.py").write_text("X = 1\n")
    assert graph.update(["pkg/sub"]) == {"*"}
    assert "pkg/sub/mod.py" in graph.all_files and "pkg/sub/mod.py" in graph.py
    (root / "pkg" / "sub" / "mod.py").unlink()
    (root / "pkg" / "sub").rmdir()
    assert graph.update(["pkg/sub"]) == {"*"}
    assert "pkg/sub/mod.py" not in graph.all_files
    assert graph.update(["pkg/sub"]) == set()  # known to be gone: nothing to relink


def test_a_name_git_says_was_added_impacts_its_listers_even_once_they_saw_it(
    make_ws: Make,
) -> None:
    """`impacted --since BASE` asks about the change from BASE, not from the last run: a case
    file the branch added changes the listing though the listers already ran with it."""
    root = make_ws({"tests/test_cases.py": "", "cases/a.txt": "1", "cases/new.txt": "2"})
    graph = BuildGraph.build(root)
    graph.record_dynamic("tests/test_cases.py", ["dir:cases"])
    assert graph.impacted([Change("cases/new.txt")]) == []  # an edit: the names it saw
    for status in ("added", "deleted"):
        assert [i.target for i in graph.impacted([Change("cases/new.txt", status)])] == [
            "tests/test_cases.py"
        ]
