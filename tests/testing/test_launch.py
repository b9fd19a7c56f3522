"""An in-process `maestro test` starts its pytest process before the rest of the CLI loads
(maestro/cli/launch.py): the process starts as early as the console script can start it, the
run takes it (no second pytest), and what stops a run before pytest is reported as before."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from testing_helpers import Workspace
from workspace_procs import alive, wait_dead, wait_running

MAESTRO = str(Path(sys.executable).with_name("maestro"))

# Loaded into the `maestro` process only (PYTHONPATH is not among the variables its pytest gets):
# at each process it starts, the command and the modules loaded by then.
PROBE = """
import subprocess, sys

_init = subprocess.Popen.__init__

def _recording_init(self, args, *rest, **kw):
    modules = sorted(sys.modules)
    import json  # once the loaded modules are known

    with open({out!r}, "a") as f:
        f.write(json.dumps({{"args": [str(a) for a in args], "modules": modules}}))
        f.write("\\n")
    _init(self, args, *rest, **kw)

subprocess.Popen.__init__ = _recording_init
"""

# What the CLI loads for its run (its stack, the models, the event loop) and the heavier parts of
# the standard library it needs only then: none of it may delay pytest's start.
LATER = {
    "typer", "pydantic", "rich", "asyncio", "msgpack", "lmdb",
    "maestro.cli.fast", "maestro.cli.test_run", "maestro.engine.core", "maestro.engine.runner",
    "maestro.engine.interpreter", "maestro.config", "maestro.graph.build",
    "dataclasses", "logging", "typing", "json", "hashlib", "_hashlib",
}  # fmt: skip


def _env(site: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    run_env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "MAESTRO_DAEMON")}
    # the workspace has no .venv: its interpreter is the active one, this environment's
    run_env.update(VIRTUAL_ENV=sys.prefix, PYTHONPATH=str(site), **(env or {}))
    return run_env


def _run(
    ws: Workspace, tmp_path: Path, args: list[str], *, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, list[str]]]]:
    """One cold `maestro test` (the console script), and the processes it started."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    started = tmp_path / "started.jsonl"
    started.unlink(missing_ok=True)
    (site / "sitecustomize.py").write_text((PROBE + HAND_OVER).format(out=str(started)))
    done = subprocess.run(
        [MAESTRO, "test", *args], cwd=ws.root, env=_env(site, env), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    lines = started.read_text().splitlines() if started.exists() else []
    return done, [json.loads(line) for line in lines]


# Also, when the run hands its pytest process the run: the modules loaded by then.
HAND_OVER = """
import importlib.machinery


class _Finder:
    def find_spec(self, name, path, target=None):
        if name != "maestro.engine.warm":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            take = module.WarmPytest.take

            def recording_take(self, *args, **kw):
                modules = sorted(sys.modules)
                import json

                with open({out!r}, "a") as f:
                    f.write(json.dumps({{"args": ["hand-over"], "modules": modules}}) + "\\n")
                return take(self, *args, **kw)

            module.WarmPytest.take = recording_take

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _Finder())
"""


def _pytests(started: list[dict[str, list[str]]]) -> list[dict[str, list[str]]]:
    return [p for p in started if p["args"][1:3] == ["-m", "pytest"]]


def test_pytest_starts_before_the_cli_loads_its_stack_and_runs_the_tests(
    ws: Workspace, tmp_path: Path
) -> None:
    done, started = _run(ws, tmp_path, ["--no-daemon"], env={"MAESTRO_DAEMON": "off"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b5 passed\b", done.stdout), done.stdout
    pytests = _pytests(started)
    # the first process the CLI starts is pytest's, and the run took it: no second one
    assert started and started[0] is pytests[0], started
    assert len(pytests) == 1, [p["args"] for p in started]
    assert "maestro_warm" in pytests[0]["args"]
    assert not LATER & set(pytests[0]["modules"]), sorted(LATER & set(pytests[0]["modules"]))


def test_the_plan_shows_once_pytest_has_its_run_and_the_console_loads_after(
    ws: Workspace, tmp_path: Path
) -> None:
    """What shows the plan (rich) loads while pytest runs, not before the hand-over; the plan
    still comes first on the terminal, before the run's summary."""
    done, started = _run(ws, tmp_path, ["--no-daemon"], env={"MAESTRO_DAEMON": "off"})
    assert done.returncode == 0, done.stdout + done.stderr
    hand_over = [p for p in started if p["args"] == ["hand-over"]]
    assert len(hand_over) == 1, [p["args"] for p in started]
    loaded = {m.partition(".")[0] for m in hand_over[0]["modules"]}
    assert "rich" not in loaded
    plan = re.search(r"\b(\d+) test files?: 0 cached \(0 tests\), \1 to run\b", done.stdout)
    summary = re.search(r"\b5 passed\b", done.stdout)
    assert plan and summary and plan.start() < summary.start(), done.stdout


def test_with_no_daemon_running_the_default_policy_starts_pytest_first_too(
    ws: Workspace, tmp_path: Path
) -> None:
    """Under the default policy the CLI first looks for a running daemon (none here, and not a
    terminal: none is started); the run is then in process, its pytest started first."""
    done, started = _run(ws, tmp_path, [])
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b5 passed\b", done.stdout), done.stdout
    pytests = _pytests(started)
    assert len(pytests) == 1 and started[0] is pytests[0], [p["args"] for p in started]
    stack = {"typer", "pydantic", "rich", "asyncio", "maestro.cli.fast", "maestro.engine.runner"}
    assert not stack & set(pytests[0]["modules"])


def test_a_bad_interpreter_setting_is_reported_and_no_pytest_starts(
    ws: Workspace, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "python"
    ws.write("maestro.toml", f"interpreter = {str(missing)!r}\n")
    done, started = _run(ws, tmp_path, ["--no-daemon"])
    assert done.returncode == 3, done.stdout + done.stderr
    said = " ".join((done.stdout + done.stderr).split())
    assert f"the configured interpreter {missing} does not exist" in said, said
    assert not _pytests(started)


def test_outside_any_project_the_error_is_reported_and_no_pytest_starts(
    tmp_path: Path, ws: Workspace
) -> None:
    lost = tmp_path / "lost"
    lost.mkdir()
    nowhere = Workspace(lost, ws.interpreter)
    done, started = _run(nowhere, tmp_path, ["--no-daemon"])
    assert done.returncode == 4, done.stdout + done.stderr
    assert "not inside a project" in done.stdout + done.stderr
    assert not _pytests(started)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# Loaded into the `maestro` process: what the run warms up beside pytest (a module it imports in
# another thread) takes a minute, as a big workspace's fingerprints or a slow disk can.
SLOW_WARM_UP = """
import importlib.machinery, threading, time

class _Slow:
    def find_spec(self, name, path=None, target=None):
        main = threading.current_thread() is threading.main_thread()
        if name != "maestro.engine.summary" or main:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        real = spec.loader

        class Loader:
            def create_module(self, spec):
                return None

            def exec_module(self, module):
                time.sleep(60)
                real.exec_module(module)

        spec.loader = Loader()
        return spec

sys.meta_path.insert(0, _Slow())
"""


@pytest.mark.parametrize(
    ("sig", "busy"),
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGKILL, False)],
    ids=["ctrl-c", "ctrl-c-while-warming-up", "kill"],
)
def test_stopping_maestro_test_mid_run_stops_its_pytest(
    ws: Workspace, tmp_path: Path, sig: signal.Signals, busy: bool
) -> None:
    """Ctrl-C ends the run as interrupted, at once; a kill leaves nothing either: the pytest
    process the console script started first is gone with the run. Ctrl-C waited for the work
    the run does beside pytest to finish (seconds under load, here a minute) before it exited."""
    running = tmp_path / "running"
    ws.write(
        "tests/test_slow.py",
        "import os, pathlib, time\n\n\ndef test_slow():\n"
        f"    pathlib.Path({str(running)!r} + '.tmp').write_text(str(os.getpid()))\n"
        f"    os.replace({str(running)!r} + '.tmp', {str(running)!r})\n"
        "    time.sleep(120)\n",
    )
    site = tmp_path / "site"
    site.mkdir()
    if busy:
        (site / "sitecustomize.py").write_text("import sys\n" + SLOW_WARM_UP)
    # Ctrl-C as a terminal's foreground command gets it: an ignored SIGINT is inherited (a
    # background job's), and something in the suite's worker processes leaves it ignored
    cli = subprocess.Popen(
        [MAESTRO, "test", "--no-daemon", "tests/test_slow.py"], cwd=ws.root,
        env=_env(site, {"MAESTRO_DAEMON": "off"}), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint,
    )  # fmt: skip
    try:
        wait_running(running, cli, 60)
        pytest_pid = int(running.read_text())
        assert alive(pytest_pid)
        cli.send_signal(sig)
        out, _ = cli.communicate(timeout=20)
        assert wait_dead(pytest_pid, 10)
        if sig == signal.SIGINT:
            assert cli.returncode == 2
            assert "interrupted" in out
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
