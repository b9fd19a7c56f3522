"""The `maestro` console script's fast path (maestro/cli/fast.py) against a real daemon.

`maestro test` through a warm daemon skips typer and pydantic; these tests hold it to the full
CLI's behaviour: the same bytes on stdout and stderr, the same exit codes, the full CLI when no
daemon runs (and no daemon left behind by a script), `--help` untouched.
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DaemonEnv, daemon_processes
from project_python import plain_pytest, project_python
from workspace_procs import wait_dead, waiting_pytest

from maestro import paths, wire
from maestro.cli import fast
from maestro.daemon.lifecycle import start_daemon, stop_daemon

MAESTRO = str(Path(sys.executable).with_name("maestro"))

FILES = {
    "pyproject.toml": (
        f'[project]\nname = "ws"\n\n[tool.maestro]\ninterpreter = "{project_python()}"\n\n'
        '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
    ),
    "src/pkg/__init__.py": "",
    "src/pkg/core.py": "def one():\n    return 1\n",
    "src/pkg/extra.py": "def two():\n    return 2\n",
    "tests/conftest.py": (
        "import os, sys\nsys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'src'))\n"
    ),
    "tests/test_core.py": "from pkg.core import one\n\ndef test_one():\n    assert one() == 1\n",
    "tests/test_extra.py": "from pkg.extra import two\n\ndef test_two():\n    assert two() == 2\n",
}
TIMES = re.compile(r"\d+\.\d\ds")


@pytest.fixture
def ws(daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch) -> DaemonEnv:
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(daemon_env.base / "cache"))
    monkeypatch.delenv("MAESTRO_DAEMON", raising=False)
    monkeypatch.delenv("CI", raising=False)
    old = time.time() - 3600
    for rel, text in FILES.items():
        path = daemon_env.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.utime(path, (old, old))
    return daemon_env


def maestro(
    env: DaemonEnv, *args: str, daemon: str | None = None, python_flags: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "COLUMNS": "200"}  # no wrapping: timings may differ in width
    if daemon is not None:
        environ["MAESTRO_DAEMON"] = daemon
    cmd = [sys.executable, *python_flags, MAESTRO, *args] if python_flags else [MAESTRO, *args]
    return subprocess.run(
        cmd, cwd=env.root, env=environ, capture_output=True, text=True, timeout=120, check=False
    )


def started(env: DaemonEnv) -> int:
    reply = start_daemon(env.root)
    assert reply is not None
    return env.track(reply.pid)


def served_by_daemon(env: DaemonEnv, *args: str) -> bool:
    """Whether `maestro *args` was answered by the daemon's fast path: without typer, and
    without the engine (a plain `maestro test` in process skips typer too, never the engine)."""
    done = maestro(env, *args, python_flags=("-X", "importtime"))
    assert "import time:" in done.stderr
    modules = ("typer", "maestro.engine.testing")
    return not any(re.search(rf"\| +{re.escape(m)}$", done.stderr, flags=re.M) for m in modules)


def same(a: subprocess.CompletedProcess[str], b: subprocess.CompletedProcess[str]) -> None:
    assert (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr)


def test_no_change_run_is_byte_identical_to_the_full_cli(ws: DaemonEnv) -> None:
    started(ws)
    first = maestro(ws, "test")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "ran 2 files, 0 cached" in first.stdout
    through_daemon = maestro(ws, "test")
    assert through_daemon.returncode == 0
    assert "2 test files: 2 cached (2 tests), 0 to run" in through_daemon.stdout
    assert "ran 0 files, 2 cached" in through_daemon.stdout
    same(through_daemon, maestro(ws, "test", daemon="off"))
    same(through_daemon, maestro(ws, "test", "--no-daemon"))
    assert served_by_daemon(ws, "test")
    # The selection flags and pytest arguments are forwarded, not dropped.
    forwarded = maestro(ws, "test", "--all", "--", "-k", "one")
    assert forwarded.returncode == 0
    assert "ran 2 files, 0 cached" in forwarded.stdout  # other pytest args: another key
    assert "1 passed" in forwarded.stdout
    again = maestro(ws, "test", "--all", "--", "-k", "one")
    assert "ran 0 files, 2 cached" in again.stdout
    same(again, maestro(ws, "test", "--all", "--no-daemon", "--", "-k", "one"))


def test_failures_exit_1_with_the_same_report(ws: DaemonEnv) -> None:
    started(ws)
    maestro(ws, "test")
    (ws.root / "src/pkg/core.py").write_text("def one():\n    return 2\n")
    fast_run = maestro(ws, "test")
    assert fast_run.returncode == 1, fast_run.stdout + fast_run.stderr
    assert "FAILED tests/test_core.py::test_one" in fast_run.stdout
    assert "1 failed, 1 passed" in fast_run.stdout
    # A failed result always re-runs ("failed last time"), by either route.
    fast_again = maestro(ws, "test")
    slow_run = maestro(ws, "test", "--no-daemon")
    assert fast_again.returncode == slow_run.returncode == 1
    assert "test_one failed last time" in fast_again.stdout
    assert TIMES.sub("T", fast_again.stdout) == TIMES.sub("T", slow_run.stdout)
    assert fast_again.stderr == slow_run.stderr
    assert served_by_daemon(ws, "test")


def test_domain_errors_from_the_daemon_are_reported_like_the_full_cli(ws: DaemonEnv) -> None:
    started(ws)
    through_daemon = maestro(ws, "test", "--since", "no-such-ref")  # not a git repository
    assert through_daemon.returncode == 4, through_daemon.stdout + through_daemon.stderr
    assert "error:" in through_daemon.stderr
    same(through_daemon, maestro(ws, "test", "--since", "no-such-ref", "--no-daemon"))


def test_without_a_daemon_the_full_cli_runs_in_process_and_starts_none(ws: DaemonEnv) -> None:
    done = maestro(ws, "test")  # not a terminal: policy "auto" never starts a daemon
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ran 2 files, 0 cached" in done.stdout
    assert not daemon_processes(ws.root)
    again = maestro(ws, "test")
    assert "ran 0 files, 2 cached" in again.stdout
    same(again, maestro(ws, "test", "--no-daemon"))
    assert not served_by_daemon(ws, "test")
    assert not daemon_processes(ws.root)


def test_without_a_daemon_pytest_starts_before_the_plan(ws: DaemonEnv) -> None:
    """The default policy in a script, no daemon: the run is in process, so pytest's process
    starts ahead of the plan (it once never did unless --no-daemon was given)."""
    assert fast.runs_in_process(ws.root, no_daemon=False)
    started(ws)
    assert not fast.runs_in_process(ws.root, no_daemon=False)
    assert fast.runs_in_process(ws.root, no_daemon=True)


PARENT_TEST = (
    "import os, pathlib\n\ndef test_parent():\n"
    "    root = pathlib.Path(__file__).resolve().parent.parent\n"
    "    (root / 'parent.txt').write_text(str(os.getppid()))\n"
)


def in_a_terminal(env: DaemonEnv, *args: str) -> tuple[int, str, int]:
    """`maestro *args` with stdin and stdout on a pseudo-terminal, as a person types it: its
    exit code, output and pid."""
    main, other = pty.openpty()
    environ = {**os.environ, "COLUMNS": "200", "TERM": "dumb"}
    proc = subprocess.Popen(
        [MAESTRO, *args], cwd=env.root, env=environ, stdin=other, stdout=other, stderr=other
    )
    os.close(other)
    out = bytearray()
    with contextlib.suppress(OSError):  # EIO: the terminal's other end is closed
        while chunk := os.read(main, 65536):
            out += chunk
    os.close(main)
    return proc.wait(timeout=120), out.decode(errors="replace"), proc.pid


def test_a_terminal_first_run_does_not_wait_for_a_daemon(ws: DaemonEnv) -> None:
    """No daemon, a person at a terminal: the run starts at once in process (a cold daemon
    costs about a second before it could begin), then leaves a daemon for the next command."""
    ws.write_old({"tests/test_parent.py": PARENT_TEST})
    code, out, pid = in_a_terminal(ws, "test")
    assert code == 0, out
    assert "ran 3 files, 0 cached" in out
    ran_by = int((ws.root / "parent.txt").read_text())
    assert ran_by == pid, "pytest was not this command's child: it waited for a daemon"
    deadline = time.monotonic() + 30
    while ws.holder() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    holder = ws.holder()
    assert holder is not None, "no daemon was left for the next command"
    assert started(ws) == holder  # it answers (start_daemon waits for the one starting)
    assert served_by_daemon(ws, "test")
    assert "ran 0 files, 3 cached" in maestro(ws, "test").stdout


PID_TEST = (
    "import os, pathlib\n\ndef test_pid():\n"
    "    root = pathlib.Path(__file__).resolve().parent.parent\n"
    "    (root / 'pid.txt').write_text(str(os.getpid()))\n"
)


def one_waiting(env: DaemonEnv, other_than: int | None = None) -> int:
    """The daemon's waiting pytest process (started in the background), once there is one."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [p for p in waiting_pytest(env.root) if p != other_than]
        if found:
            assert len(found) == 1, found
            return found[0]
        time.sleep(0.05)
    raise AssertionError("the daemon keeps no pytest process waiting")


def test_a_run_through_the_daemon_takes_the_pytest_process_waiting_for_it(ws: DaemonEnv) -> None:
    """The daemon keeps a pytest process started (interpreter up, pytest imported) for the next
    run, so a run through it does not pay for either; it never outlives the daemon."""
    ws.write_old({"tests/test_pid.py": PID_TEST})
    started(ws)
    waiting = one_waiting(ws)
    done = maestro(ws, "test")
    assert done.returncode == 0 and "ran 3 files, 0 cached" in done.stdout, done.stdout
    assert int((ws.root / "pid.txt").read_text()) == waiting
    following = one_waiting(ws, other_than=waiting)  # one more, for the run after
    assert "ran 0 files, 3 cached" in maestro(ws, "test").stdout
    assert waiting_pytest(ws.root) == [following]  # a run that needed none kept it
    stop_daemon(ws.root)
    assert wait_dead(following)


def test_help_and_other_commands_still_go_to_the_full_cli(ws: DaemonEnv) -> None:
    started(ws)
    top = maestro(ws, "--help")
    assert top.returncode == 0 and "test" in top.stdout and "cache" in top.stdout
    sub = maestro(ws, "test", "--help")
    assert sub.returncode == 0 and "--impacted" in sub.stdout and "--junit-xml" in sub.stdout
    bad = maestro(ws, "test", "--no-such-flag")
    assert bad.returncode == 2 and "No such option" in bad.stderr
    assert maestro(ws, "impacted", "src/pkg/core.py").returncode == 0


FULL_CLI = "from maestro.cli.app import main; main()"  # typer, never the fast path


def test_a_junit_report_through_the_daemon_takes_the_fast_path(ws: DaemonEnv) -> None:
    # VB's trial: `maestro test --junitxml` in a terminal beside the editor took 0.8-1.9 s for
    # a fully cached run (the editor: 0.06 s): --junitxml left the fast path for the full
    # client (via_daemon, the wire models), 0.26 s of CPU where the fast path takes 0.17 s
    started(ws)
    assert "ran 2 files, 0 cached" in maestro(ws, "test").stdout
    fast_xml, full_xml = ws.base / "fast.xml", ws.base / "full.xml"
    done = maestro(ws, "test", "--junitxml", str(fast_xml), python_flags=("-X", "importtime"))
    assert done.returncode == 0, done.stderr
    for module in ("typer", "maestro.engine.testing", "maestro.cli.via_daemon"):
        assert not re.search(rf"\| +{re.escape(module)}$", done.stderr, flags=re.M), module
    same(maestro(ws, "test", "--junit-xml", str(fast_xml)), maestro(ws, "test", "--no-daemon"))
    maestro(ws, "test", "--no-daemon", "--junitxml", str(full_xml))
    volatile = re.compile(r' (time|timestamp)="[^"]*"')
    fast_text, full_text = (volatile.sub("", p.read_text()) for p in (fast_xml, full_xml))
    assert 'tests="2"' in fast_text and 'name="maestro.cached" value="true"' in fast_text
    assert fast_text == full_text


def test_a_junit_path_that_cannot_be_written_is_an_error_not_a_traceback(ws: DaemonEnv) -> None:
    # the full CLI and the fast path both crashed with a Python traceback (OSError) when the
    # --junitxml path could not be written; pytest makes a folder on the way that is missing
    started(ws)
    assert "ran 2 files, 0 cached" in maestro(ws, "test").stdout
    bad = "tests/test_core.py/report.xml"  # a file where a folder is: not writable, even as root
    fast_done = maestro(ws, "test", "--junitxml", bad)
    assert fast_done.returncode == 4, fast_done.stdout + fast_done.stderr
    assert "Traceback" not in fast_done.stderr, fast_done.stderr
    said = "tests/test_core.py/report.xml: could not write the JUnit report: "
    assert said + "tests/test_core.py is a file, not a folder" in fast_done.stderr
    assert "hint: give --junitxml a file in a folder you can write" in fast_done.stderr
    assert "2 passed" in fast_done.stdout  # the run's summary stands
    same(fast_done, maestro(ws, "test", "--no-daemon", "--junitxml", bad))
    same(fast_done, full_cli(ws, "test", "--junitxml", bad))
    # nothing stored was lost
    assert "ran 0 files, 2 cached" in maestro(ws, "test").stdout
    # a missing folder is made, as pytest makes it
    truth = plain_pytest(project_python(), ws.root, "--junitxml", "made/by/pytest.xml")
    assert truth.returncode == 0 and (ws.root / "made/by/pytest.xml").is_file(), truth.stdout
    for args in (("--junitxml", "out/fast/r.xml"), ("--no-daemon", "--junitxml", "out/full/r.xml")):
        done = maestro(ws, "test", *args)
        assert done.returncode == 0, done.stdout + done.stderr
        assert 'tests="2"' in (ws.root / args[-1]).read_text()


def test_a_junit_report_asked_of_pytest_is_written_by_maestro(ws: DaemonEnv) -> None:
    # CI sets PYTEST_ADDOPTS=--junitxml=report.xml (or passes -- --junitxml): the option went to
    # the pytest process, which wrote only the files it ran, and nothing when all were cached
    started(ws)
    assert "ran 2 files, 0 cached" in maestro(ws, "test").stdout
    truth = plain_pytest(project_python(), ws.root, "--junitxml", "plain.xml")
    assert 'tests="2"' in (ws.root / "plain.xml").read_text(), truth.stdout
    environ = {**os.environ, "COLUMNS": "200", "PYTEST_ADDOPTS": "--junitxml=ci.xml"}
    for daemon in ("auto", "off"):  # the fast path, and a run in process
        (ws.root / "ci.xml").unlink(missing_ok=True)
        done = subprocess.run(
            [MAESTRO, "test"], cwd=ws.root, env={**environ, "MAESTRO_DAEMON": daemon},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert "ran 0 files, 2 cached" in done.stdout, done.stdout + done.stderr
        assert 'tests="2"' in (ws.root / "ci.xml").read_text()
    done = maestro(ws, "test", "--", "--junit-xml", "args.xml")
    assert "ran 0 files, 2 cached" in done.stdout, done.stdout + done.stderr
    assert 'tests="2"' in (ws.root / "args.xml").read_text()


def test_a_configured_workspace_runs_through_the_daemon_without_pydantic(ws: DaemonEnv) -> None:
    # the fixture's pyproject.toml has [tool.maestro]: the fast path validated it with pydantic
    # at every run (0.15 s of CPU where an unconfigured workspace's run takes 0.06 s)
    started(ws)
    assert "ran 2 files, 0 cached" in maestro(ws, "test").stdout
    assert "pydantic" not in imported(ws, "test")
    same(maestro(ws, "test"), maestro(ws, "test", "--no-daemon"))


def test_the_allowlist_setting_is_validated_again_once_its_text_changed(tmp_path: Path) -> None:
    from maestro.errors import ConfigError

    root, state = tmp_path / "ws", tmp_path / "state"
    root.mkdir()
    state.mkdir()
    config = root / "maestro.toml"
    config.write_text('env-allowlist = ["ONE"]\n')
    assert fast.settings_allowlist(root, state) == ["ONE"]
    assert (state / fast.ALLOWLIST_MEMO).is_file()
    assert fast.settings_allowlist(root, state) == ["ONE"]  # remembered
    config.write_text('env-allowlist = ["TWO"]\n')
    assert fast.settings_allowlist(root, state) == ["TWO"]
    config.write_text('env-allowlist = "TWO"\nno-such-setting = 1\n')
    with pytest.raises(ConfigError):
        fast.settings_allowlist(root, state)
    config.write_text('env-allowlist = ["ONE"]\n')
    assert fast.settings_allowlist(root, state) == ["ONE"]
    (root / "maestro.toml").unlink()
    (root / "pyproject.toml").write_text('[tool.maestro]\nenv-allowlist = ["THREE"]\n')
    assert fast.settings_allowlist(root, state) == ["THREE"]


ELAPSED = re.compile(r"\(\d+\.\d ms\)")


def full_cli(env: DaemonEnv, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-c", FULL_CLI, *args],
        cwd=env.root,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def imported(env: DaemonEnv, *args: str) -> set[str]:
    """Top-level packages `maestro *args` imported."""
    done = maestro(env, *args, python_flags=("-X", "importtime"))
    found = re.findall(r"^import time:.*\| ( *)([\w.]+)$", done.stderr, flags=re.M)
    return {name.split(".")[0] for indent, name in found if not indent}


def same_answer(a: subprocess.CompletedProcess[str], b: subprocess.CompletedProcess[str]) -> None:
    """Same output and exit code, but for the query's own time in the summary line."""
    assert a.returncode == b.returncode, (a.stdout + a.stderr, b.stdout + b.stderr)
    assert ELAPSED.sub("(T)", a.stdout) == ELAPSED.sub("(T)", b.stdout)
    assert a.stderr == b.stderr


GRAPH_QUERIES = [
    ("impacted", "src/pkg/core.py"),
    ("impacted", "src/pkg/core.py", "src/pkg/extra.py", "--all"),
    ("impacted", "tests/test_core.py"),  # changed itself
    ("impacted", "README.md"),  # nothing impacted
    ("impacted", "--root", ".", "src/pkg/__init__.py"),
    ("why", "tests/test_core.py", "src/pkg/core.py"),
    ("why", "tests/test_extra.py", "src/pkg/core.py"),  # does not depend: exit 1
]


@pytest.mark.parametrize("args", GRAPH_QUERIES, ids=" ".join)
def test_impacted_and_why_answer_like_the_full_cli_without_typer_or_pydantic(
    ws: DaemonEnv, args: tuple[str, ...]
) -> None:
    (ws.root / "README.md").write_text("hello\n")
    started(ws)
    fast_answer = maestro(ws, *args)
    expected = 1 if args[:2] == ("why", "tests/test_extra.py") else 0
    assert fast_answer.returncode == expected, fast_answer.stderr
    assert fast_answer.stdout
    same_answer(fast_answer, full_cli(ws, *args))  # the full CLI, through the daemon
    same_answer(fast_answer, maestro(ws, *args, "--no-daemon"))  # ... and in process
    assert not {"typer", "pydantic", "click"} & imported(ws, *args)


def test_graph_queries_the_fast_path_leaves_to_the_full_cli(ws: DaemonEnv) -> None:
    started(ws)
    # errors are reported by the full CLI, exactly as without a daemon
    for args in (
        ("why", "tests/nope.py", "src/pkg/core.py"),  # not a target: exit 2
        ("impacted", "/elsewhere/x.py"),  # outside the workspace
        ("impacted", "src/pkg/core.py", "--since", "main"),  # paths and --since
    ):
        through_daemon = maestro(ws, *args)
        assert through_daemon.returncode == 2, through_daemon.stdout + through_daemon.stderr
        same(through_daemon, maestro(ws, *args, "--no-daemon"))
    # JSON, --help and --no-daemon are the full CLI's
    as_json = maestro(ws, "impacted", "src/pkg/core.py", "--json")
    assert as_json.returncode == 0 and '"schema": "maestro.impacted/1"' in as_json.stdout
    assert "typer" in imported(ws, "impacted", "src/pkg/core.py", "--json")
    assert "--since" in maestro(ws, "impacted", "--help").stdout
    # no daemon: the full CLI computes in process (and, from a script, starts none)
    assert stop_daemon(ws.root)
    alone = maestro(ws, "why", "tests/test_core.py", "src/pkg/core.py")
    assert alone.returncode == 0 and "depends on" in alone.stdout
    assert "typer" in imported(ws, "why", "tests/test_core.py", "src/pkg/core.py")
    assert not daemon_processes(ws.root)


STATS = [
    ("graph", "stats"),
    ("graph", "stats", "--json", "--targets"),
    ("graph", "stats", "--check-syntax"),
    ("graph", "stats", "--json"),  # the syntax error, remembered
]
BUILD_TIME = re.compile(r'\d+ ms|"build_seconds": [\d.e-]+')


def same_stats(a: subprocess.CompletedProcess[str], b: subprocess.CompletedProcess[str]) -> None:
    assert (a.returncode, a.stderr) == (b.returncode, b.stderr) == (0, "")
    # a build time of another width ("9 ms" vs "120 ms") pads the table's columns differently
    assert _words(a.stdout) == _words(b.stdout)


def _words(out: str) -> list[str]:
    return BUILD_TIME.sub("T", out).split()


def test_graph_stats_answers_like_the_full_cli_without_typer(ws: DaemonEnv) -> None:
    ws.write_old({"src/pkg/bad.py": "def f(:\n"})
    assert maestro(ws, "graph", "stats").returncode == 0  # the index exists from here on
    for args in STATS:  # no daemon: both compute in process
        fast_answer = maestro(ws, *args)
        same_stats(fast_answer, full_cli(ws, *args))
        assert "typer" not in imported(ws, *args)
    assert "src/pkg/bad.py:1" in maestro(ws, "graph", "stats").stdout
    # printed to a pipe with the stdlib alone (pydantic reads this workspace's [tool.maestro])
    assert not {"typer", "rich"} & imported(ws, "graph", "stats")
    assert not daemon_processes(ws.root)
    started(ws)
    for args in STATS:  # both ask the daemon
        fast_answer = maestro(ws, *args)
        same(fast_answer, full_cli(ws, *args))
        assert "typer" not in imported(ws, *args)
    with_daemon = maestro(ws, "graph", "stats", "--json")
    assert '"path": "src/pkg/bad.py"' in with_daemon.stdout
    same_stats(with_daemon, maestro(ws, "graph", "stats", "--json", "--no-daemon"))


def test_a_daemon_in_the_usual_state_dir_is_found_without_platformdirs(
    ws: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAESTRO_STATE_DIR")  # the state dir is then platformdirs' choice
    monkeypatch.setenv("XDG_STATE_HOME", str(ws.base / "xdg-state"))
    started(ws)
    assert (ws.base / "xdg-state" / "maestro" / "workspaces").is_dir()
    args = ("impacted", "src/pkg/core.py")
    assert not {"platformdirs", "typer"} & imported(ws, *args)
    same_answer(maestro(ws, *args), maestro(ws, *args, "--no-daemon"))


@pytest.mark.parametrize("xdg", [None, "/somewhere/state"])
def test_usual_state_dir_is_where_platformdirs_puts_it(
    xdg: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAESTRO_STATE_DIR", raising=False)
    if xdg is None:
        monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_STATE_HOME", xdg)
    monkeypatch.setattr(os, "makedirs", lambda *a, **k: None)  # platformdirs may create it
    usual = paths.usual_state_dir()
    if sys.platform == "linux":
        assert usual == paths.state_dir()
    monkeypatch.setenv("MAESTRO_STATE_DIR", "/elsewhere")
    assert paths.usual_state_dir() is None


def test_parse_graph_args() -> None:
    flags = ("--since", "--all", "--root")
    assert fast.parse_graph_args(["a.py", "--all", "--root=x", "b.py"], flags=flags) == (
        fast.GraphArgs(positional=("a.py", "b.py"), show_all=True, root="x")
    )
    assert fast.parse_graph_args(["--since", "main"], flags=flags) == fast.GraphArgs(since="main")
    for argv in (["--json"], ["--no-daemon"], ["--help"], ["--since"], ["--since="], ["--", "x"]):
        assert fast.parse_graph_args(argv, flags=flags) is None, argv
    assert fast.parse_graph_args(["t.py", "x.py", "--all"], flags=("--root",)) is None


def test_parse_test_args() -> None:
    parsed = fast.parse_test_args(
        ["test", "--impacted", "--since=main", "--root", "x", "--", "-k", "a b"]
    )
    assert parsed == fast.TestArgs(impacted=True, since="main", root="x", pytest_args=("-k", "a b"))
    assert fast.parse_test_args(["test", "--", "tests/x.py"]) == fast.TestArgs(
        pytest_args=("tests/x.py",)
    )
    # read for the in-process route (fast.plain_test); the daemon's fast path leaves them
    assert fast.parse_test_args(["test", "--junit-xml", "r.xml", "--no-daemon"]) == fast.TestArgs(
        junit_xml="r.xml", no_daemon=True
    )
    for argv in (
        [],
        ["impacted"],
        ["test", "tests/test_core.py"],
        ["test", "--help"],
        ["test", "--junit-xml"],
        ["test", "--since"],
        ["test", "--since", "--all"],
        ["test", "--predictive"],
        ["test", "--all", "--impacted"],
    ):
        assert fast.parse_test_args(argv) is None, argv


def test_protocol_version_matches_the_wire_contract() -> None:
    assert fast.PROTOCOL_VERSION == wire.PROTOCOL_VERSION


def test_pipes_subfolders_and_empty_impact_through_the_daemon(ws: DaemonEnv) -> None:
    """What the full CLI promises a CI log or a subfolder, the fast path keeps: whole node ids
    at any width, a subfolder's own tests, exit 0 when a change impacts nothing."""
    long_id = "x" * 90
    (ws.root / "tests/unit").mkdir()
    (ws.root / "tests/unit/test_long.py").write_text(
        f"import pytest\n\n@pytest.mark.parametrize('v', ['{long_id}'])\n"
        "def test_long(v):\n    assert v == ''\n"
    )
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(git + args, cwd=ws.root, check=True, capture_output=True)
    started(ws)
    environ = {k: v for k, v in os.environ.items() if k != "COLUMNS"}

    def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-X", "importtime", MAESTRO, *args]
        return subprocess.run(
            cmd, cwd=cwd, env=environ, capture_output=True, text=True, timeout=120
        )

    sub = run(ws.root / "tests/unit", "test")
    assert sub.returncode == 1, sub.stdout + sub.stderr
    assert not re.search(r"\| +typer$", sub.stderr, flags=re.M)  # served by the daemon
    assert "tests under tests/unit/" in sub.stdout and "1 test file:" in sub.stdout
    assert f"FAILED tests/unit/test_long.py::test_long[{long_id}]\n" in sub.stdout
    assert "1 failed —" in sub.stdout
    nothing = run(ws.root, "test", "--impacted")
    assert nothing.returncode == 0, nothing.stdout + nothing.stderr
    assert not re.search(r"\| +typer$", nothing.stderr, flags=re.M)
    assert "nothing impacted" in nothing.stdout


STALE = [
    ("stale",),
    ("stale", "--json"),
    ("stale", "--", "tests/test_core.py"),  # one file named: only it is counted
    ("stale", "--root", ".", "--", "-k", "one"),  # pytest arguments key the results
]


def test_stale_answers_like_the_full_cli_without_typer(ws: DaemonEnv) -> None:
    # BE: `maestro stale`, read first after an edit, took 0.36 s through a warm daemon on a
    # small project (typer, pydantic, the full client) where `maestro impacted` takes 0.08 s
    assert maestro(ws, "test").returncode == 0
    ws.write_old({"src/pkg/core.py": "def one():\n    return 1  # edited\n"})
    said = maestro(ws, "stale")
    assert said.stdout.startswith("tests/test_core.py  inputs changed: src/pkg/core.py")
    assert said.stdout.endswith("\n1 of 2 test files stale\n"), said.stdout
    for args in STALE:  # no daemon: both compute in process
        fast_answer = maestro(ws, *args)
        assert fast_answer.returncode == 0 and fast_answer.stdout, fast_answer.stderr
        same(fast_answer, full_cli(ws, *args))
        assert "typer" not in imported(ws, *args)
    assert not daemon_processes(ws.root)
    started(ws)
    for args in STALE:  # both ask the daemon
        fast_answer = maestro(ws, *args)
        same(fast_answer, full_cli(ws, *args))
        cut = args.index("--") if "--" in args else len(args)
        same(fast_answer, maestro(ws, *args[:cut], "--no-daemon", *args[cut:]))
        assert not {"typer", "pydantic", "click"} & imported(ws, *args)
    # --help and an unknown option are the full CLI's
    assert "--no-daemon" in maestro(ws, "stale", "--help").stdout
    assert maestro(ws, "stale", "-x").returncode == 2


EXPLAIN = [
    ("explain", "tests/test_core.py"),
    ("explain", "tests/test_core.py::test_one", "--record"),
    ("explain", "--json", "tests/test_core.py"),
    ("explain", "tests/test_core.py", "--root", ".", "--", "-k", "one"),
]


def test_explain_answers_like_the_full_cli_without_typer(ws: DaemonEnv) -> None:
    # BE: `maestro explain FILE` loaded typer and every test command's module before the engine
    assert maestro(ws, "test").returncode == 0
    ws.write_old({"src/pkg/core.py": "def one():\n    return 1  # edited\n"})
    said = maestro(ws, "explain", "tests/test_core.py")
    assert said.stdout.startswith("tests/test_core.py: inputs changed: src/pkg/core.py"), said
    for args in EXPLAIN:
        fast_answer = maestro(ws, *args)
        assert fast_answer.returncode == 0 and fast_answer.stdout, fast_answer.stderr
        same(fast_answer, full_cli(ws, *args))
        assert "typer" not in imported(ws, *args)
    # an error, no TEST, --execution and --help are the full CLI's, as they were
    for args in (
        ("explain", "tests/nope.py"),
        ("explain", "tests/test_core.py::test_nope"),
        ("explain",),
        ("explain", "--execution", "x"),
    ):
        alone = maestro(ws, *args)
        assert alone.returncode in (0, 4) and alone.stdout + alone.stderr, args
        same(alone, full_cli(ws, *args))
    assert "typer" in imported(ws, "explain", "tests/nope.py")
    assert "--record" in maestro(ws, "explain", "--help").stdout
    assert not daemon_processes(ws.root)
