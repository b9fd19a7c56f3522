"""The graph at the terminal: `maestro impacted|why|graph`, with git change sources."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import write_tree
from gitutil import git, git_init

Make = Callable[[dict[str, str | bytes]], Path]

WORKSPACE: dict[str, str | bytes] = {
    "pyproject.toml": "[project]\nname='demo'\n\n[tool.ruff]\nline-length = 100\n",
    "src/demo/__init__.py": "",
    "src/demo/core.py": "from demo import util\n",
    "src/demo/util.py": "",
    "tests/test_core.py": "from demo.core import *\n",
    "tests/test_util.py": "import demo.util\n",
    "tests/test_other.py": "",
}


def maestro(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "maestro.cli", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAESTRO_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(tmp_path / "cache"))


def test_impacted_json_is_stable_and_complete(make_ws: Make) -> None:
    root = make_ws(WORKSPACE)
    proc = maestro(root, "impacted", "src/demo/util.py", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["schema"] == "maestro.impacted/1"
    assert data["changes"] == [{"path": "src/demo/util.py", "status": "modified"}]
    by_target = {i["target"]: i for i in data["impacted"]}
    assert set(by_target) == {"tests/test_core.py", "tests/test_util.py"}
    reason = by_target["tests/test_core.py"]["reason"]
    assert [h["target"] for h in reason] == ["src/demo/core.py", "src/demo/util.py"]
    assert reason[0] == {
        "source": "tests/test_core.py",
        "target": "src/demo/core.py",
        "kind": "import",
        "line": 1,
        "detail": "demo.core",
        "text": "imports demo.core (line 1)",
    }


def test_impacted_human_output_is_a_tree_of_reasons(make_ws: Make) -> None:
    root = make_ws(WORKSPACE)
    proc = maestro(root, "impacted", "src/demo/util.py")
    assert proc.returncode == 0, proc.stderr
    assert "2 test files impacted by 1 change" in proc.stdout
    assert "imports demo.core (line 1)" in proc.stdout


def test_impacted_from_git_working_tree_and_since(make_ws: Make) -> None:
    root = make_ws(WORKSPACE)
    git_init(root)
    (root / "src/demo/util.py").write_text("X = 2\n")  # modified
    (root / "tests/test_new.py").write_text("")  # untracked
    data = json.loads(maestro(root, "impacted", "--json").stdout)
    assert {c["path"] for c in data["changes"]} == {"src/demo/util.py", "tests/test_new.py"}
    assert {i["target"] for i in data["impacted"]} == {
        "tests/test_core.py",
        "tests/test_util.py",
        "tests/test_new.py",
    }
    # a branch: commits since the merge-base plus the working tree
    git(root, "checkout", "-qb", "feature")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "feature work")
    (root / "tests/test_other.py").unlink()  # deleted, uncommitted
    data = json.loads(maestro(root, "impacted", "--since", "main", "--json").stdout)
    statuses = {c["path"]: c["status"] for c in data["changes"]}
    assert statuses == {
        "src/demo/util.py": "modified",
        "tests/test_new.py": "added",
        "tests/test_other.py": "deleted",
    }


def test_git_pyproject_change_is_section_aware(make_ws: Make) -> None:
    root = make_ws(WORKSPACE)
    git_init(root)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("100", "88"))
    data = json.loads(maestro(root, "impacted", "--json").stdout)
    assert data["impacted"] == []
    pyproject.write_text(pyproject.read_text() + "\n[tool.pytest.ini_options]\naddopts='-x'\n")
    data = json.loads(maestro(root, "impacted", "pyproject.toml", "--json").stdout)
    assert len(data["impacted"]) == 3


def test_why_and_errors(make_ws: Make) -> None:
    root = make_ws(WORKSPACE)
    proc = maestro(root, "why", "tests/test_core.py", "src/demo/util.py")
    assert proc.returncode == 0
    assert "tests/test_core.py imports demo.core (line 1) → src/demo/core.py" in proc.stdout
    proc = maestro(root, "why", "tests/test_other.py", "src/demo/util.py")
    assert proc.returncode == 1 and "does not depend on" in proc.stdout
    proc = maestro(root, "why", "tests/nope.py", "src/demo/util.py")
    assert proc.returncode == 2 and "not a test file or declared target" in proc.stderr
    proc = maestro(root, "impacted", "--since", "no-such-ref")
    assert proc.returncode == 2 and "hint:" in proc.stderr


def test_bad_config_is_a_clear_error_not_a_traceback(make_ws: Make) -> None:
    root = make_ws({**WORKSPACE, "maestro.toml": "[targets.docs]\nsrcs = 'x'\n"})
    proc = maestro(root, "graph", "stats")
    assert proc.returncode == 2
    assert "maestro.toml:2: targets.docs.srcs" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_graph_stats_prints_paths_and_messages_as_they_are(make_ws: Make) -> None:
    """A path or message is never read as rich markup (`[red]` vanished, `[/x]` crashed)."""
    root = make_ws({**WORKSPACE, "src/[red]/bad.py": "def f(:\n", "src/[/x]/bad.py": "def g(:\n"})
    for env in ({"TTY_COMPATIBLE": "0"}, {"TTY_COMPATIBLE": "1"}):  # stdlib, then rich
        proc = maestro(root, "graph", "stats", "--check-syntax", env={**env, "COLUMNS": "200"})
        assert proc.returncode == 0, proc.stderr
        assert "src/[red]/bad.py:1: " in proc.stdout and "src/[/x]/bad.py:1: " in proc.stdout
        assert ("\x1b[" in proc.stdout) is (env["TTY_COMPATIBLE"] == "1")


def test_cold_graph_stats_imports_no_model_layer_and_no_rich(make_ws: Make) -> None:
    root = make_ws({**WORKSPACE, "src/demo/bad.py": "def f(:\n"})
    env = {"MAESTRO_DAEMON": "auto"}  # not a terminal: never starts one
    for json_flag, seen in (
        ((), "syntax not checked yet in 7 Python files"),
        (
            ("--json",),
            '"syntax_unchecked": 7',
        ),
    ):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "maestro.cli", "graph", "stats", *json_flag],
            cwd=root, capture_output=True, text=True, env={**os.environ, **env}, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0 and seen in proc.stdout
        imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines()}
        # no daemon to talk to: not even the socket module
        assert "maestro" in imported and not {"pydantic", "rich", "typer", "socket"} & imported


@pytest.fixture
def short_root() -> Iterator[Path]:
    """A workspace whose path is short: its title fits over the stats table."""
    base = Path(tempfile.mkdtemp(prefix="m", dir="/tmp"))
    try:
        yield write_tree(base, WORKSPACE)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_graph_stats_on_a_terminal_is_styled_as_rich_styles_it_without_rich(
    short_root: Path,
) -> None:
    import pty

    root = short_root
    main, screen = pty.openpty()
    env = {**os.environ, "MAESTRO_DAEMON": "off", "COLUMNS": "120", "TERM": "xterm-256color"}
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "maestro.cli", "graph", "stats"],
        cwd=root, stdout=screen, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    os.close(screen)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    _, errors = proc.communicate(timeout=60)
    os.close(main)
    assert proc.returncode == 0, errors
    text = out.decode().replace("\r\n", "\n")
    title = f"Build graph of {root}"
    assert text.startswith("\x1b[3m") and title in text.splitlines()[0], text
    assert "\x1b[2msyntax not checked yet in 6 Python files" in text, text
    imported = {line.split("|")[-1].strip().split(".")[0] for line in errors.splitlines()}
    assert "maestro" in imported and "rich" not in imported


def test_graph_stats_and_export(make_ws: Make, tmp_path: Path) -> None:
    root = make_ws({**WORKSPACE, "src/demo/bad.py": "def f(:\n"})
    data = json.loads(maestro(root, "graph", "stats", "--json", "--targets").stdout)
    assert data["tests"] == 3 and data["python_files"] == 7
    assert data["targets"] == ["tests/test_core.py", "tests/test_other.py", "tests/test_util.py"]
    # Compiling every file is slow: syntax is checked when asked, then remembered per content.
    assert data["diagnostics"] == [] and data["syntax_unchecked"] == 7
    hint = maestro(root, "graph", "stats").stdout
    assert "syntax not checked yet in 7 Python files (--check-syntax compiles them)" in hint
    checked = json.loads(maestro(root, "graph", "stats", "--json", "--check-syntax").stdout)
    assert [(d["path"], d["line"]) for d in checked["diagnostics"]] == [("src/demo/bad.py", 1)]
    assert checked["syntax_unchecked"] == 0
    for args in (("--json",), ("--json", "--no-daemon")):
        again = json.loads(maestro(root, "graph", "stats", *args).stdout)
        assert [(d["path"], d["line"]) for d in again["diagnostics"]] == [("src/demo/bad.py", 1)]
    text = maestro(root, "graph", "stats").stdout
    assert "src/demo/bad.py:1" in text and "syntax not checked" not in text
    out = tmp_path / "g.dot"
    assert maestro(root, "graph", "export", "--format", "dot", "-o", str(out)).returncode == 0
    assert '"tests/test_core.py" -> "src/demo/core.py" [label=import];' in out.read_text()
    exported = json.loads(maestro(root, "graph", "export").stdout)
    assert {
        "source": "src/demo/core.py",
        "target": "src/demo/util.py",
        "kind": "import",
        "line": 1,
        "detail": "demo.util",
    } in exported["edges"]


def test_why_takes_the_pytest_node_id_a_failure_line_shows(make_ws: Make) -> None:
    """`maestro why` given what a user copies from a failure line, a node id with its
    parameters, answers for that node's file and names the node; an unknown node says what
    the file defines."""
    files = {
        **WORKSPACE,
        "tests/test_core.py": (
            "from demo.core import *\nimport pytest\n\n\n"
            "@pytest.mark.parametrize('p', ['a/b', 'c'])\ndef test_y(p):\n    pass\n\n\n"
            "class TestK:\n    def test_m(self):\n        pass\n"
        ),
        "tests/test_util.py": (
            "import demo.util\n\n\ndef test_y():\n    pass\n\n\nclass TestK:\n    pass\n"
        ),
    }
    root = make_ws(files)
    for extra in ((), ("--no-daemon",)):
        proc = maestro(root, "why", "tests/test_core.py::test_y[a/b]", "src/demo/util.py", *extra)
        assert proc.returncode == 0, proc.stderr
        assert "tests/test_core.py::test_y[a/b] depends on src/demo/util.py" in proc.stdout
        assert "tests/test_core.py imports demo.core (line 1) → src/demo/core.py" in proc.stdout
        proc = maestro(root, "why", "tests/test_core.py::TestK::test_m", "src/demo/util.py", *extra)
        assert proc.returncode == 0, proc.stderr
        proc = maestro(
            root, "why", "tests/test_core.py::test_from_star", "src/demo/util.py", *extra
        )
        assert proc.returncode == 0, proc.stderr  # a star import may bind it
        proc = maestro(root, "why", "tests/test_other.py::test_z", "src/demo/util.py", *extra)
        assert proc.returncode == 2
        assert "tests/test_other.py defines no 'test_z'" in proc.stderr, proc.stderr
        proc = maestro(root, "why", "tests/test_util.py::test_nope[c]", "src/demo/util.py", *extra)
        assert proc.returncode == 2
        assert "defines no 'test_nope'; its tests are TestK, test_y" in proc.stderr, proc.stderr
        proc = maestro(root, "why", "tests/nope.py::test_y", "src/demo/util.py", *extra)
        assert proc.returncode == 2
        assert "'tests/nope.py' is not a test file of this workspace" in proc.stderr


def test_impacted_says_maestro_test_reruns_only_tests_that_executed_the_change(
    make_ws: Make,
) -> None:
    # cookiecutter 2.7.1, a comment added to cookiecutter/utils.py: `maestro impacted` said
    # "50 test files impacted by 2 changes" and `maestro test` then re-ran 5: the user read 50
    root = make_ws(
        {
            "pyproject.toml": "[tool.pytest.ini_options]\npythonpath = ['src']\n",
            "src/demo/__init__.py": "",
            "src/demo/core.py": "def add(a, b):\n    return a + b\n",
            "tests/test_add.py": "from demo.core import add\n\n\ndef test_add():\n"
            "    assert add(1, 2) == 3\n",
        }
    )
    git_init(root)
    off = {"MAESTRO_DAEMON": "off"}
    for comment in ("# first\n", "# second\n"):  # the first run leaves no per-test record
        assert maestro(root, "test", env=off).returncode == 0
        with (root / "src/demo/core.py").open("a") as f:
            f.write(comment)
    impacted = maestro(root, "impacted", env=off).stdout
    assert "1 test file impacted by 1 change" in impacted
    assert "`maestro test` re-runs only the tests that executed changed code" in impacted, impacted
    assert "`maestro stale` lists the test files it would run" in impacted
    assert "0 of 1 test file stale" in maestro(root, "stale", env=off).stdout
    assert "ran 0 files, 1 cached" in maestro(root, "test", env=off).stdout
