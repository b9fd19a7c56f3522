"""A workspace rule that aborts rego-cpp (a `with input as` form it crashes on) is compiled in a
child first: the error names the file, the last good policy stays in force, the daemon and the
CLI live on."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from workspace_procs import daemon_processes as daemon_pids
from workspace_procs import daemon_workspace

from maestro import wire
from maestro.daemon.transport.client import DaemonClient
from maestro.errors import PolicyDeniedError, PolicyError, PolicySyntaxError
from maestro.policy.engine import PolicyEngine
from maestro.policy.isolate import ChildCompiler
from maestro.policy.sources import load

# rego-cpp 1.5 terminates the process compiling this ("shape `rego-localref` has no field
# `rego-refhead`")
CRASH = """package maestro.workspace.select

import rego.v1

helper contains "x" if {
\tsome p in input.changed
\tstartswith(p, "tests/db")
}

warn contains {"rule": "ws.crash", "msg": "m"} if {
\tcount(data.maestro.workspace.select.helper) == 1 with input as {"changed": ["tests/db/a.py"]}
}
"""

FREEZE = """package maestro.workspace.run

import rego.v1

deny contains {"rule": "ops.freeze", "msg": "tests/frozen is frozen"} if {
\tsome p in input.paths
\tstartswith(p, "tests/frozen")
}
"""

BROKEN = "package maestro.workspace.run\n\nimport rego.v1\n\ndeny contains x if {\n\tx := \n}\n"


def test_crashing_rule_is_an_error_naming_the_file(workspace: Callable[..., Path]) -> None:
    root = workspace(modules={"freeze.rego": FREEZE, "crash.rego": CRASH})
    with pytest.raises(PolicyError) as caught:
        ChildCompiler().check(load(root))
    assert caught.value.where == ".maestro/policy/crash.rego"
    assert "rego-cpp crashed" in caught.value.message
    # the engine of a long-lived process keeps the built-in policy and says why
    engine = PolicyEngine.open(root, isolate=True)
    assert engine.current is not None
    assert all(m.layer == "builtin" for m in engine.current.sources.modules)
    assert engine.last_error is not None and engine.last_error.where == ".maestro/policy/crash.rego"


def test_a_one_shot_check_forks_this_process_instead_of_a_new_interpreter(
    workspace: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's check after a policy edit: a fork with rego-cpp loaded, not a new
    interpreter's start-up; a good set passes, a syntax error and a crash are reported as
    before (the crash's module named), and this process lives on."""
    from maestro.policy import isolate

    assert isolate.FORK
    spawned: list[object] = []
    real_run = subprocess.run

    def no_interpreter(*args: object, **kwargs: object) -> object:
        if "maestro.policy.isolate" in str(args[:1]):
            spawned.append(args)
        return real_run(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(isolate.subprocess, "run", no_interpreter)
    root = workspace(modules={"freeze.rego": FREEZE})
    ChildCompiler().check(load(root))
    (root / ".maestro/policy/bad.rego").write_text(BROKEN)
    with pytest.raises(PolicySyntaxError) as syntax:
        ChildCompiler().check(load(root))
    assert (syntax.value.where or "").startswith(".maestro/policy/bad.rego:")
    (root / ".maestro/policy/bad.rego").unlink()
    (root / ".maestro/policy/crash.rego").write_text(CRASH)
    with pytest.raises(PolicyError) as crashed:
        ChildCompiler().check(load(root))
    assert crashed.value.where == ".maestro/policy/crash.rego"
    assert "rego-cpp crashed" in crashed.value.message and "signal 6" in crashed.value.message
    assert spawned == []
    # a fork that does not answer in time is killed (and reaped) ...
    (root / ".maestro/policy/crash.rego").unlink()
    real_check = isolate._check
    monkeypatch.setattr(isolate, "_check", lambda body: time.sleep(30) or real_check(body))
    forks: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    started = time.monotonic()
    assert isolate._forked(b"{}", 1.0) is None
    assert time.monotonic() - started < 10
    assert len(forks) == 1 and not Path(f"/proc/{forks[0]}").exists()  # killed and reaped
    # ... and the set is then checked in a new interpreter
    monkeypatch.setattr(isolate, "_forked", lambda body, timeout_s: None)
    (root / ".maestro/policy/freeze2.rego").write_text(FREEZE.replace("ops.freeze", "ops.f2"))
    ChildCompiler().check(load(root))
    assert len(spawned) == 1


def test_child_reports_syntax_errors_and_remembers_good_sets(
    workspace: Callable[..., Path],
) -> None:
    root = workspace(modules={"bad.rego": BROKEN})
    with pytest.raises(PolicySyntaxError) as caught:
        ChildCompiler().check(load(root))
    assert (caught.value.where or "").startswith(".maestro/policy/bad.rego:")
    (root / ".maestro/policy/bad.rego").unlink()
    (root / ".maestro/policy/freeze.rego").write_text(FREEZE)
    checker = ChildCompiler()
    checker.check(load(root))
    started = time.perf_counter()
    checker.check(load(root))  # remembered: no child
    assert time.perf_counter() - started < 0.2


def test_resident_child_checks_each_set_and_outlives_a_crash(
    workspace: Callable[..., Path],
) -> None:
    """The daemon's checker keeps one child for every check: the same answers as a child per
    check (a good set, a syntax error with its place, a crash naming the file), a crashed
    child replaced for the next check, and none left once the engine is closed."""
    root = workspace(modules={"freeze.rego": FREEZE})
    engine = PolicyEngine.open(root, isolate=True, resident=True)
    checker = engine.checker
    assert checker is not None and checker._child is not None
    first = checker._child.proc
    try:
        rules = root / ".maestro/policy"
        (rules / "bad.rego").write_text(BROKEN)
        with pytest.raises(PolicySyntaxError) as caught:
            engine.reload()
        assert (caught.value.where or "").startswith(".maestro/policy/bad.rego:")
        assert checker._child.proc is first and first.poll() is None  # answered, alive
        (rules / "bad.rego").unlink()
        (rules / "crash.rego").write_text(CRASH)
        with pytest.raises(PolicyError) as crashed:
            engine.reload()
        assert crashed.value.where == ".maestro/policy/crash.rego"
        assert "rego-cpp crashed" in crashed.value.message
        assert first.poll() is not None  # the crash took that child
        assert engine.current is not None and "ws.crash" not in str(engine.current.sources)
        (rules / "crash.rego").unlink()
        (rules / "later.rego").write_text(FREEZE.replace("tests/frozen", "tests/cold"))
        policy = engine.reload()  # a new child answered
        assert "tests/cold" in str(policy.sources.modules)
        second = checker._child.proc
        assert second is not first and second.poll() is None
    finally:
        engine.close()
    assert checker._child is None and second.poll() is not None


def test_policy_check_cli_reports_the_crash(workspace: Callable[..., Path]) -> None:
    root = workspace(modules={"crash.rego": CRASH})
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "maestro"), "policy", "check", "--root", str(root)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "300"},
    )  # fmt: skip
    assert proc.returncode not in (0, -signal.SIGABRT), proc.stdout + proc.stderr
    assert ".maestro/policy/crash.rego" in proc.stdout + proc.stderr
    assert "rego-cpp crashed" in proc.stdout + proc.stderr


@pytest.fixture
def ws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    files = {
        "pyproject.toml": "[project]\nname = 'ws'\nversion = '0'\n",
        "tests/frozen/test_f.py": "def test_f():\n    pass\n",
        ".maestro/policy/freeze.rego": FREEZE,
    }
    with daemon_workspace(monkeypatch, files, "miso") as root:
        yield root


@pytest.mark.slow
def test_daemon_survives_a_crashing_rule_and_keeps_the_last_good_policy(ws: Path) -> None:
    from maestro.policy.protocol import POLICY_DECISIONS, PolicyDecisionsParams

    async def main() -> None:
        client = await DaemonClient.connect(ws, start=True)
        try:
            frozen = wire.RunTestsParams(paths=["tests/frozen"])
            with pytest.raises(PolicyDeniedError):
                await client.call(wire.RUN_TESTS, frozen, timeout=60)
            pids = daemon_pids(ws)
            (ws / ".maestro/policy/crash.rego").write_text(CRASH)
            # the next decision reloads: the crash is in a child, the freeze still denies
            with pytest.raises(PolicyDeniedError) as denied:
                await client.call(wire.RUN_TESTS, frozen, timeout=60)
            assert "ops.freeze" in denied.value.message
            assert daemon_pids(ws) == pids
            status = await client.call(POLICY_DECISIONS, PolicyDecisionsParams(limit=1))
            assert status.error and ".maestro/policy/crash.rego" in status.error
            assert "rego-cpp crashed" in status.error
            # fixed: the next set loads
            (ws / ".maestro/policy/crash.rego").unlink()
            (ws / ".maestro/policy/freeze.rego").write_text(FREEZE.replace("frozen", "iced"))
            ok = await client.call(wire.RUN_TESTS, frozen, timeout=120)
            assert ok.exit_code == 0
        finally:
            await client.close()

    asyncio.run(main())


def test_no_resident_child_waits_for_a_workspace_without_policy(
    workspace: Callable[..., Path],
) -> None:
    """Built-in rules only: nothing to check until a policy appears (no idle child); the
    first check starts the child, kept for the next."""
    root = workspace()
    engine = PolicyEngine.open(root, isolate=True, resident=True)
    checker = engine.checker
    try:
        assert checker is not None and checker._child is None
        (root / ".maestro/policy/freeze.rego").write_text(FREEZE)
        engine.reload()
        assert checker._child is not None and checker._child.alive()
    finally:
        engine.close()
