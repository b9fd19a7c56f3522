"""A non-Python program makes a test depend on the whole workspace, unless what it reads is known:
`file` and `cat` read their operands, `sh -c` with one simple command what that command reads,
a program found nowhere on the PATH never runs, and a repository
query (`git rev-parse`, `git describe --dirty`) that an installed tool makes outside the tests
(pytest-benchmark's commit info at start-up) is no input. Each narrowing keeps its other side:
a change to what the program reads still re-runs the test and fails it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testing_helpers import Workspace, ran
from typer.testing import CliRunner

from maestro.cli.app import app
from maestro.engine import testing
from maestro.engine.runner import plugin_dir


def outcomes(summary: testing.Summary) -> dict[str, str]:
    return {t.node_id: t.outcome for r, _ in summary.results() for t in r.tests}


def opaque(summary: testing.Summary, node: str) -> list[str]:
    """Why the node (or its file, when the run was not traced) depends on the whole workspace."""
    return next(
        [*r.opaque, *t.opaque] for r, _ in summary.results() for t in r.tests if t.node_id == node
    )


@pytest.mark.skipif(shutil.which("file") is None, reason="needs the file(1) tool")
def test_file_depends_on_its_operand_only(ws: Workspace) -> None:
    ws.write("tests/blob.txt", "plain words\n")
    ws.write(
        "tests/test_kind.py",
        """
        import subprocess

        def test_kind():
            out = subprocess.run(["file", "-b", "tests/blob.txt"], capture_output=True, text=True)
            assert "text" in out.stdout
        """,
    )
    node = "tests/test_kind.py::test_kind"
    first = ws.run()
    assert outcomes(first)[node] == "passed"
    assert opaque(first, node) == []  # its reads are known: no "depends on the whole workspace"
    ws.edit("pkg/a.py", "return a + b", "return a - b")  # not read by `file`
    assert "tests/test_kind.py" not in ran(ws.run())
    (ws.root / "tests/blob.txt").write_bytes(b"\x00\x01\x02\x03\xff\xfe" * 40)
    summary = ws.run()
    assert "tests/test_kind.py" in ran(summary)
    assert outcomes(summary)[node] == "failed"


@pytest.mark.skipif(shutil.which("file") is None, reason="needs the file(1) tool")
def test_file_with_an_unknown_option_stays_opaque(ws: Workspace) -> None:
    ws.write("tests/names.txt", "tests/blob.txt\n")
    ws.write("tests/blob.txt", "plain words\n")
    ws.write(
        "tests/test_kinds.py",
        """
        import subprocess

        def test_kinds():  # -f: the files to look at are listed in another file
            out = subprocess.run(["file", "-b", "-f", "tests/names.txt"],
                                 capture_output=True, text=True)
            assert "text" in out.stdout
        """,
    )
    node = "tests/test_kinds.py::test_kinds"
    first = ws.run()
    assert outcomes(first)[node] == "passed"
    assert any("not Python" in note for note in opaque(first, node))
    (ws.root / "tests/blob.txt").write_bytes(b"\x00\x01\x02\x03\xff\xfe" * 40)
    assert outcomes(ws.run())[node] == "failed"


def test_a_pager_fed_through_a_shell_reads_only_its_input(ws: Workspace) -> None:
    """click's echo_via_pager: Popen(["/usr/bin/cat"], shell=True, stdin=PIPE), i.e.
    `sh -c /usr/bin/cat`: what it shows is what the test wrote to it."""
    ws.write("tests/words.txt", "hello\n")
    ws.write(
        "tests/test_pager.py",
        """
        import shutil, subprocess

        def test_pager():
            c = subprocess.Popen([shutil.which("cat")], shell=True, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
            assert c.communicate("paged\\n")[0] == "paged\\n"

        def test_shell_cat():
            out = subprocess.run("cat tests/words.txt", shell=True, capture_output=True,
                                 text=True)
            assert out.stdout == "hello\\n"
        """,
    )
    first = ws.run()
    assert first.failed == 0
    assert opaque(first, "tests/test_pager.py::test_pager") == []
    ws.edit("pkg/a.py", "return a + b", "return a - b")
    assert "tests/test_pager.py" not in ran(ws.run())
    ws.write("tests/words.txt", "bye\n")
    summary = ws.run()
    assert outcomes(summary)["tests/test_pager.py::test_shell_cat"] == "failed"


def test_a_program_found_nowhere_never_ran(ws: Workspace) -> None:
    ws.write(
        "tests/test_missing.py",
        """
        import subprocess, pytest

        def test_missing():
            with pytest.raises(FileNotFoundError):
                subprocess.run(["maestro-no-such-tool-here", "--version"])
        """,
    )
    node = "tests/test_missing.py::test_missing"
    first = ws.run()
    assert outcomes(first)[node] == "passed" and opaque(first, node) == []
    ws.edit("pkg/a.py", "return a + b", "return a - b")
    assert "tests/test_missing.py" not in ran(ws.run())


def _compiled_ldconfig() -> bool:
    """A compiled /sbin/ldconfig (some distributions wrap it in a shell script)."""
    try:
        with open("/sbin/ldconfig", "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


@pytest.mark.skipif(not _compiled_ldconfig(), reason="needs a compiled /sbin/ldconfig")
def test_a_library_lookup_reads_nothing_of_the_workspace(ws: Workspace) -> None:
    # tenacity 9.2.1 with trio installed: trio's import asks ctypes.util.find_library, which
    # runs `ldconfig -p`, and every test file depended on the whole workspace
    ws.write(
        "tests/test_lib.py",
        """
        import ctypes.util

        def test_find():
            assert ctypes.util.find_library("c")
        """,
    )
    node = "tests/test_lib.py::test_find"
    first = ws.run()
    assert outcomes(first)[node] == "passed"
    assert opaque(first, node) == []
    ws.edit("pkg/a.py", "return a + b", "return a - b")
    assert "tests/test_lib.py" not in ran(ws.run())


def _compiled_ip() -> bool:
    """A compiled `ip` on the search path uuid uses (it adds /sbin and /usr/sbin)."""
    found = shutil.which(
        "ip", path=os.pathsep.join([os.environ.get("PATH", ""), "/sbin", "/usr/sbin"])
    )
    if found is None:
        return False
    with open(found, "rb") as f:
        return f.read(4) == b"\x7fELF"


@pytest.mark.skipif(not _compiled_ip(), reason="needs a compiled ip (iproute2)")
def test_the_network_listing_uuid_runs_reads_nothing_of_the_workspace(ws: Workspace) -> None:
    # time-machine: uuid.getnode() without libuuid's answer runs `ip link`, and the test that
    # asked depended on the whole workspace, re-running at every edit
    ws.write(
        "tests/test_node.py",
        """
        import subprocess

        def test_mac():
            out = subprocess.run(["ip", "link"], capture_output=True, text=True)
            assert out.returncode == 0
        """,
    )
    node = "tests/test_node.py::test_mac"
    first = ws.run()
    assert outcomes(first)[node] == "passed"
    assert opaque(first, node) == []
    ws.edit("pkg/a.py", "return a + b", "return a - b")
    assert "tests/test_node.py" not in ran(ws.run())


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_repository_query_from_a_conftest_stays_opaque(ws: Workspace) -> None:
    """The workspace's own code asking git at import (a version from `git describe`) may feed
    any test: every test still depends on the whole workspace."""
    ws.write(
        "tests/conftest.py",
        """
        import subprocess

        DESCRIBED = subprocess.run(["git", "describe", "--dirty", "--always"],
                                   capture_output=True, text=True).stdout
        """,
    )
    first = ws.run()
    assert outcomes(first)["tests/test_b.py::test_mul"] == "passed"
    assert any("git" in note for note in opaque(first, "tests/test_b.py::test_mul"))
    ws.edit("pkg/a.py", "return a + b", "return a - b")
    assert "tests/test_b.py" in ran(ws.run())  # pkg/a.py is not its input: @workspace is


# -- who asked: an installed tool or the workspace --------------------------------------------


@pytest.fixture
def record(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    monkeypatch.syspath_prepend(str(plugin_dir()))
    spec = importlib.util.spec_from_file_location(
        "maestro_record_under_test", plugin_dir() / "maestro_record.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module


def _caller(filename: str) -> Any:
    """A frame of code that lives at `filename`, calling through the standard library."""
    namespace: dict[str, Any] = {"sys": sys}
    exec(compile("def ask():\n    return sys._getframe()\n", filename, "exec"), namespace)
    return namespace["ask"]()


def test_started_by_installed_looks_past_the_standard_library(
    record: types.ModuleType, tmp_path: Path
) -> None:
    site = sysconfig.get_paths()["purelib"]
    assert record.started_by_installed(_caller(os.path.join(site, "some_plugin", "utils.py")))
    assert not record.started_by_installed(_caller(str(tmp_path / "ws" / "conftest.py")))
    # subprocess.py itself is the standard library's: the frame above it decides
    stdlib = os.path.join(sysconfig.get_paths()["stdlib"], "subprocess.py")
    namespace: dict[str, Any] = {"sys": sys}
    exec(compile("def inner():\n    return sys._getframe()\n", stdlib, "exec"), namespace)
    conftest = str(tmp_path / "conftest.py")
    exec(compile("def outer(f):\n    return f()\n", conftest, "exec"), namespace)
    assert not record.started_by_installed(namespace["outer"](namespace["inner"]))


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_vcs_queries_are_read_only_ones(record: types.ModuleType) -> None:
    def popen(*argv: str) -> tuple[Any, ...]:
        return (argv[0], list(argv), None, None)

    assert record.vcs_query("subprocess.Popen", popen("git", "rev-parse", "--git-dir"))
    assert record.vcs_query("subprocess.Popen", popen("git", "describe", "--dirty", "--always"))
    assert record.vcs_query("subprocess.Popen", popen("git", "-C", "x", "config", "--local", "a"))
    assert not record.vcs_query("subprocess.Popen", popen("git", "status"))
    assert not record.vcs_query("subprocess.Popen", popen("git", "diff", "--name-only"))
    assert not record.vcs_query("subprocess.Popen", popen("git", "-c", "a=b", "log"))
    assert not record.vcs_query("subprocess.Popen", popen("cat", "README"))
    assert not record.vcs_query("os.system", (b"git rev-parse HEAD",))


def test_known_reads(record: types.ModuleType, tmp_path: Path) -> None:
    def popen(*argv: str, cwd: str | None = None) -> tuple[Any, ...]:
        return (argv[0], list(argv), cwd, None)

    missing = popen("maestro-no-such-tool-here")
    assert record.known_reads("subprocess.Popen", missing) == []
    assert record.known_reads("subprocess.Popen", popen("./maestro-no-such-tool-here")) is None
    env = {"PATH": f"bin{os.pathsep}/usr/bin"}  # a relative entry: found from the child's cwd?
    odd = ("maestro-no-such-tool-here", ["maestro-no-such-tool-here"], None, env)
    assert record.known_reads("subprocess.Popen", odd) is None
    if shutil.which("file"):
        at = str(tmp_path)
        found = record.known_reads("subprocess.Popen", popen("file", "-b", "a.txt", cwd=at))
        assert found == [str(tmp_path / "a.txt")]
        assert record.known_reads("subprocess.Popen", popen("file", "-f", "names")) is None
        assert record.known_reads("subprocess.Popen", popen("file", "-m", "magic", "x")) is None
    if _compiled_ldconfig():
        assert record.known_reads("subprocess.Popen", popen("/sbin/ldconfig", "-p")) == []
        assert record.known_reads("subprocess.Popen", popen("/sbin/ldconfig", "/opt/lib")) is None
        assert record.known_reads("subprocess.Popen", popen("/sbin/ldconfig")) is None
    if shutil.which("cat") and shutil.which("sh"):
        at = str(tmp_path)
        sh = shutil.which("sh")
        assert record.known_reads("subprocess.Popen", popen("cat", "-n", "a", "-", cwd=at)) == [
            str(tmp_path / "a")
        ]
        assert record.known_reads("subprocess.Popen", popen(sh, "-c", "cat 'a b'", cwd=at)) == [
            str(tmp_path / "a b")
        ]
        for command in (
            "cat $F",
            "cat a; cat b",
            "cat a | head",
            "cat < a",
            "cat *.txt",
            "eval cat a",
            "exec cat a",
            "X=1 cat a",
            "head a",
            "sh -c 'cat a'",
        ):
            found = record.known_reads("subprocess.Popen", popen(sh, "-c", command, cwd=at))
            assert found is None, command
        sourced = (sh, [sh, "-c", "cat a"], at, {"PATH": os.environ["PATH"], "BASH_ENV": "x"})
        assert record.known_reads("subprocess.Popen", sourced) is None
    script = tmp_path / "file"  # a script named like the tool is not the tool
    script.write_text('#!/bin/sh\ncat "$@"\n')
    script.chmod(0o755)
    assert record.known_reads("subprocess.Popen", popen(str(script), "a.txt")) is None
    if shutil.which("head"):
        assert record.known_reads("subprocess.Popen", popen("head", "a.txt")) is None


def test_a_child_environment_without_path_searches_the_default_path(
    record: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # exec looks a bare name up on the child's PATH, and on os.defpath when the child's
    # environment has none: never on the parent's
    tool = tmp_path / "bin" / "maestro-private-tool"
    tool.parent.mkdir()
    tool.write_text('#!/bin/sh\ncat "$@"\n')
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tool.parent}{os.pathsep}{os.environ['PATH']}")
    name = tool.name
    inherited = (name, [name, "a"], str(tmp_path), None)
    assert record.known_reads("subprocess.Popen", inherited) is None  # found: reads unknown
    cleared = (name, [name, "a"], str(tmp_path), {"LANG": "C"})
    assert record.known_reads("subprocess.Popen", cleared) == []  # found nowhere: never ran


def test_a_fork_is_said_as_a_fork_where_the_reason_is_shown(ws: Workspace) -> None:
    """A test that forks its own process, or whose Python child forks, is opaque; the reason
    says what happened (it read "ran fork(), which is not Python"), in the result and in
    `maestro explain`."""
    ws.write(
        "tests/test_forks.py",
        """
        import os
        import subprocess
        import sys

        def test_bare_fork():
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)

        def test_child_forks():
            code = "import os\\npid = os.fork()\\nif pid == 0: os._exit(0)\\nos.waitpid(pid, 0)"
            subprocess.run([sys.executable, "-c", code], check=True)
        """,
    )
    bare, child = "tests/test_forks.py::test_bare_fork", "tests/test_forks.py::test_child_forks"
    summary = ws.run()
    assert outcomes(summary)[bare] == outcomes(summary)[child] == "passed"
    said = "forked the test process (a fork is not recorded): what the fork read is unknown"
    assert said in opaque(summary, bare), opaque(summary, bare)
    assert not any("fork()" in note for note in opaque(summary, bare))
    assert any("a Python process it started forked itself" in n for n in opaque(summary, child))
    shown = CliRunner().invoke(app, ["explain", bare, "--root", str(ws.root)])
    assert shown.exit_code == 0, shown.output
    assert "forked the test process (a fork is not recorded)" in " ".join(shown.output.split())
    assert "fork()" not in shown.output


def test_the_child_recorder_and_the_key_name_the_same_per_user_variables(
    record: types.ModuleType,
) -> None:
    # two copies across a process boundary (the CLI's fast path imports no recorder): one list
    from maestro import envvars

    assert frozenset(envvars.KEYED_WHEN_READ) == record.KEYED_WHEN_READ
