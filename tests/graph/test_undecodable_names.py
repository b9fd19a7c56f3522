"""File names that are not valid UTF-8: reported, left out of the graph, never a crash.

POSIX names are bytes; Python decodes them with the file-system encoding and surrogateescape
(os.fsdecode), so `notes_\\xff.txt` arrives as the str 'notes_\\udcff.txt', which cannot be
encoded to UTF-8. Every test here puts such names on a real disk and uses the real graph, git and
CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from gitutil import git, git_init
from project_python import project_python

from maestro import git as maestro_git
from maestro.engine import changes as sources
from maestro.graph.build import BuildGraph, Change
from maestro.graph.index import FileEntry, Index
from maestro.graph.scanner import RawImport

Make = Callable[[dict[str, str | bytes]], Path]

BAD_DATA = b"data/notes_\xff.txt"
BAD_BLOB = b"pkg/blob_\xfe.bin"
BAD_MODULE = b"pkg/mod_\xe9.py"  # latin-1 e-acute: a valid name on some other machine
BAD_DIR = b"pkg_\xff"

WORKSPACE: dict[str, str | bytes] = {
    "pyproject.toml": "[project]\nname = 'demo'\n",
    "data/ok.txt": "ok\n",
    "pkg/__init__.py": "",
    "pkg/a.py": "def one():\n    return 1\n",
    "pkg/b.py": "from pkg.a import one\n",
    "tests/test_a.py": "from pkg.a import one\n\n\ndef test_one():\n    assert one() == 1\n",
    "tests/test_b.py": "import pkg.b\n\n\ndef test_b():\n    assert pkg.b.one() == 1\n",
}


def name(raw: bytes) -> str:
    """A relative name as the graph and git see it (os.fsdecode)."""
    return os.fsdecode(raw)


def create(root: Path, raw: bytes, content: bytes = b"x\n") -> None:
    """Write a file under a bytes path; skip where the file system refuses such names."""
    path = os.path.join(os.fsencode(root), raw)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with open(path, "wb") as f:
            f.write(content)
    except OSError as exc:  # e.g. a file system that only accepts valid UTF-8 names
        pytest.skip(f"this file system refuses non-UTF-8 names: {exc}")


def with_bad_names(make_ws: Make) -> Path:
    root = make_ws(WORKSPACE)
    create(root, BAD_DATA)
    create(root, BAD_BLOB)
    create(root, BAD_MODULE, b"from pkg.a import one\n")
    create(root, BAD_DIR + b"/__init__.py", b"")
    create(root, BAD_DIR + b"/c.py", b"import pkg.a\n")
    return root


def age(root: Path, seconds: int = 10) -> None:
    """Make every file look older than the index (outside the racily-clean window)."""
    past = time.time() - seconds
    for base, _, files in os.walk(os.fsencode(root)):
        for leaf in files:
            os.utime(os.path.join(base, leaf), (past, past))


def maestro(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "maestro.cli", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "MAESTRO_DAEMON": "off"},
        timeout=120,
    )


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAESTRO_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(tmp_path / "cache"))


def test_build_reports_each_bad_name_and_leaves_it_out(make_ws: Make, tmp_path: Path) -> None:
    root = with_bad_names(make_ws)
    graph = BuildGraph.build(root, index_path=tmp_path / "index.msgpack")
    assert graph.all_files == {
        "pyproject.toml", "data/ok.txt", "pkg/__init__.py", "pkg/a.py", "pkg/b.py",
        "tests/test_a.py", "tests/test_b.py",
    }  # fmt: skip
    assert graph.tests == {"tests/test_a.py", "tests/test_b.py"}
    found = {d.path: d for d in graph.diagnostics()}
    # named printably (the undecodable bytes as escapes), with what to do about it
    for shown in ("data/notes_\\xff.txt", "pkg/blob_\\xfe.bin", "pkg/mod_\\xe9.py", "pkg_\\xff"):
        assert shown in found, found
        assert "not valid UTF-8" in found[shown].message
        assert "rename" in found[shown].message
        assert found[shown].severity == "warning"
    assert "directory" in found["pkg_\\xff"].message
    # every diagnostic can be written as UTF-8 (JSON, the wire, a log file)
    for d in graph.diagnostics():
        d.path.encode("utf-8")
        d.message.encode("utf-8")
    # the rest of the graph works as before
    impacted = {i.target: i for i in graph.impacted([Change("pkg/a.py")])}
    assert set(impacted) == {"tests/test_a.py", "tests/test_b.py"}
    assert impacted["tests/test_b.py"].why == "imports pkg.b (line 1) -> imports pkg.a (line 1)"
    assert graph.closure("tests/test_b.py") >= {"pkg/a.py", "pkg/b.py", "pkg/__init__.py"}
    assert graph.why("tests/test_a.py", "pkg/a.py") is not None


def test_changes_to_bad_names_impact_nothing_and_do_not_crash(make_ws: Make) -> None:
    root = make_ws({**WORKSPACE, "maestro.toml": "[targets.data]\nsrcs = ['data/*']\n"})
    create(root, BAD_DATA)
    graph = BuildGraph.build(root)
    changes = [Change(name(BAD_DATA), "added"), Change(name(BAD_MODULE), "deleted")]
    assert graph.impacted(changes) == []
    # together with a real change, the real one still counts
    assert {i.target for i in graph.impacted([*changes, Change("data/ok.txt")])} == {"//data"}


def test_warm_restart_with_bad_names(make_ws: Make, tmp_path: Path) -> None:
    root = with_bad_names(make_ws)
    age(root)
    index = tmp_path / "index.msgpack"
    first = BuildGraph.build(root, index_path=index)
    # a recorded read of such a file (the pytest plugin saw a test open it) is not a node
    first.record_dynamic("tests/test_a.py", [name(BAD_DATA), "data/ok.txt"])
    first.save()
    assert index.exists()
    second = BuildGraph.build(root, index_path=index)
    assert second.stats.scanned == 0 and second.stats.reused_from_index == 5
    assert {i.target for i in second.impacted([Change("data/ok.txt")])} == {"tests/test_a.py"}
    assert second.closure("tests/test_a.py") >= {"pkg/a.py", "data/ok.txt"}
    assert "pkg_\\xff" in {d.path for d in second.diagnostics()}
    assert second.tests == first.tests and second.deps == first.deps


def test_index_keeps_such_a_name_exact(tmp_path: Path) -> None:
    """The graph never gives the index such a name, but the index stays exact if it gets one."""
    path = tmp_path / "index.msgpack"
    index = Index(path, dirty=True)
    index.files[name(BAD_MODULE)] = FileEntry(3, 4, 5, "", [RawImport("import", "pkg.a", 0, (), 1)])
    index.dynamic["tests/test_a.py"] = [name(BAD_DATA)]
    index.save()
    loaded = Index.load(path)
    assert [os.fsencode(k) for k in loaded.files] == [BAD_MODULE]
    assert loaded.files[name(BAD_MODULE)].imports == [RawImport("import", "pkg.a", 0, (), 1)]
    assert loaded.dynamic == {"tests/test_a.py": [name(BAD_DATA)]}


def test_update_when_a_bad_name_appears_and_goes(make_ws: Make, tmp_path: Path) -> None:
    root = make_ws(WORKSPACE)
    graph = BuildGraph.build(root, index_path=tmp_path / "index.msgpack")
    before = dict(graph.deps)
    create(root, BAD_DATA)
    create(root, BAD_DIR + b"/c.py", b"import pkg.a\n")
    touched = graph.update([name(BAD_DATA), name(BAD_DIR + b"/c.py")])
    assert touched == set()  # nothing to relink: such names are never nodes
    assert graph.deps == before
    shown = {d.path for d in graph.diagnostics()}
    assert {"data/notes_\\xff.txt", "pkg_\\xff"} <= shown
    graph.update([name(BAD_DATA)])  # a second event for the same file: one diagnostic
    assert [d.path for d in graph.diagnostics()].count("data/notes_\\xff.txt") == 1
    os.unlink(os.path.join(os.fsencode(root), BAD_DATA))
    graph.update([name(BAD_DATA)])
    assert "data/notes_\\xff.txt" not in {d.path for d in graph.diagnostics()}
    assert {i.target for i in graph.impacted([Change("pkg/a.py")])} == {
        "tests/test_a.py",
        "tests/test_b.py",
    }
    graph.save()


def test_git_status_and_diff_give_exact_names(make_ws: Make) -> None:
    """-z output is parsed byte-exact: os.fsencode of each path is the name on disk."""
    root = make_ws(WORKSPACE)
    git_init(root)
    create(root, BAD_DATA)  # untracked
    create(root, BAD_DIR + b"/c.py")
    found = {os.fsencode(c.path): c.status for c in maestro_git.working_tree_changes(root)}
    assert found == {BAD_DATA: "added", BAD_DIR + b"/c.py": "added"}
    # a workspace in such a directory: git prints its prefix raw
    inside = maestro_git.working_tree_changes(root / name(BAD_DIR))
    assert [(c.path, c.status) for c in inside] == [("c.py", "added")]
    git(root, "checkout", "-qb", "feature")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "bad name")
    create(root, BAD_BLOB)
    found = {os.fsencode(c.path): c.status for c in maestro_git.changes_since(root, "main")}
    assert found == {BAD_DATA: "added", BAD_DIR + b"/c.py": "added", BAD_BLOB: "added"}
    # a workspace in a sub-directory of the repository strips its prefix from such names too
    sub = {os.fsencode(c.path) for c in maestro_git.working_tree_changes(root / "pkg")}
    assert sub == {b"blob_\xfe.bin"}
    # the graph's change records leave them out (no node stands for them)
    assert sources.from_git(root) == [] and sources.from_git(root, "main") == []


def test_explicit_bad_paths_are_dropped_with_a_warning(
    make_ws: Make, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_ws(WORKSPACE)
    create(root, BAD_DATA)
    changes = sources.from_paths(root, [name(BAD_DATA), "pkg/a.py"])
    assert changes == [Change("pkg/a.py", "modified")]
    assert "data/notes_\\xff.txt" in caplog.text and "not valid UTF-8" in caplog.text
    assert sources.from_buffers(root, {str(root) + "/" + name(BAD_DATA): "y\n"}) == []


def test_cli_impacted_and_graph_stats_with_bad_names(make_ws: Make) -> None:
    root = with_bad_names(make_ws)
    git_init(root)
    (root / "pkg/a.py").write_text("def one():\n    return 1  # edited\n")
    create(root, b"data/more_\xfa.txt")  # untracked too
    proc = maestro(root, "impacted", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["changes"] == [{"path": "pkg/a.py", "status": "modified"}]
    assert {i["target"] for i in data["impacted"]} == {"tests/test_a.py", "tests/test_b.py"}
    proc = maestro(root, "impacted")
    assert proc.returncode == 0, proc.stderr
    assert "2 test files impacted by 1 change" in proc.stdout
    proc = maestro(root, "impacted", os.fsdecode(os.path.join(b"data", b"more_\xfa.txt")))
    assert proc.returncode == 0, proc.stderr
    assert "data/more_\\xfa.txt" in proc.stderr and "No changes." in proc.stdout
    proc = maestro(root, "graph", "stats", "--json")
    assert proc.returncode == 0, proc.stderr
    shown = {d["path"] for d in json.loads(proc.stdout)["diagnostics"]}
    assert {"data/notes_\\xff.txt", "data/more_\\xfa.txt", "pkg_\\xff"} <= shown


def test_cli_test_runs_with_bad_names(make_ws: Make) -> None:
    root = with_bad_names(make_ws)
    (root / "maestro.toml").write_text(f"interpreter = {str(project_python())!r}\n")
    # reads every file in data/, the badly named one too: its other reads are still recorded
    (root / "tests/test_data.py").write_text(
        "import os\n\n\ndef test_data():\n"
        "    for leaf in sorted(os.listdir(b'data')):\n"
        "        assert open(os.path.join(b'data', leaf), 'rb').read()\n"
    )
    git_init(root)
    proc = maestro(root, "test", "--all")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout
    (root / "pkg/a.py").write_text("def one():\n    return 2\n")
    proc = maestro(root, "test")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "2 failed" in proc.stdout and "inputs changed: pkg/a.py" in proc.stdout
    (root / "data/ok.txt").write_text("changed\n")
    proc = maestro(root, "test", "tests/test_data.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "inputs changed: data/ok.txt" in proc.stdout and "1 passed" in proc.stdout
