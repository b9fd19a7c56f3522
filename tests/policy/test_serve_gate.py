"""The cache decision ``serve`` at a real daemon: a workspace rule that denies serving a test's
cached result makes it run for real (the others still come from the cache), and `maestro
explain --execution ID` shows the decision with its rule and remediation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner
from workspace_procs import daemon_workspace

from maestro import wire
from maestro.cli.app import app
from maestro.daemon.transport.client import DaemonClient

NO_SERVE = """package maestro.workspace.cache

import rego.v1

# METADATA
# custom:
#   id: cache.live_always_runs
#   remediation: tests/test_live.py talks to the staging API; its results are never reused
deny contains fired if {
\tinput.action == "serve"
\tstartswith(input.target, "tests/test_live")
\tfired := {"rule": "cache.live_always_runs", "target": input.target,
\t\t"msg": sprintf("%s is not served from the cache", [input.target])}
}
"""

COUNTING = """from pathlib import Path

def test_live():
    runs = Path(__file__).parents[2] / "runs.txt"  # outside the workspace: not an input
    runs.write_text(runs.read_text() + "x" if runs.exists() else "x")
"""

FILES = {
    "pyproject.toml": "[project]\nname = 'ws'\nversion = '0'\n",
    "tests/test_live.py": COUNTING,
    "tests/test_plain.py": "def test_plain():\n    assert True\n",
    ".maestro/policy/serve.rego": NO_SERVE,
}


@pytest.fixture
def ws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with daemon_workspace(monkeypatch, FILES, "mpsv") as root:
        yield root


def test_a_denied_serve_runs_the_test_for_real_and_explain_says_why(ws: Path) -> None:
    async def main() -> tuple[wire.RunTestsResult, wire.RunTestsResult]:
        client = await DaemonClient.connect(ws, start=True)
        try:
            first = await client.call(wire.RUN_TESTS, wire.RunTestsParams(), timeout=120)
            second = await client.call(wire.RUN_TESTS, wire.RunTestsParams(), timeout=120)
            return first, second
        finally:
            await client.close()

    first, second = asyncio.run(main())
    assert first.exit_code == second.exit_code == 0
    cached = {f.target: f.cached for f in second.files}
    assert cached == {"tests/test_live.py": False, "tests/test_plain.py": True}
    assert (ws.parent / "runs.txt").read_text() == "xx"  # it ran again, not replayed
    assert any("cache.live_always_runs" in note for note in second.policy)

    runner = CliRunner()
    out = runner.invoke(app, ["explain", "--execution", second.execution_id, "--root", str(ws)])
    assert out.exit_code == 0, out.output
    line = " ".join(out.stdout.split())
    assert "cache denied: tests/test_live.py is not served from the cache" in line
    assert "(rule cache.live_always_runs)" in line
    assert "remediation: tests/test_live.py talks to the staging API" in line

    out = runner.invoke(
        app, ["explain", "--execution", second.execution_id, "--json", "--root", str(ws)]
    )
    decisions = json.loads(out.stdout)["decisions"]
    serve = [d for d in decisions if d["point"] == "cache" and d["input"]["action"] == "serve"]
    assert [(d["result"], d["targets"]) for d in serve] == [("deny", ["tests/test_live.py"])]
    # a plain allow to serve is not recorded (hundreds a run)
    assert not any(d["input"].get("target") == "tests/test_plain.py" for d in serve)


def test_only_files_with_markers_are_asked_while_only_built_in_rules_judge_serving(
    tmp_path: Path,
) -> None:
    from maestro.policy import PolicyEngine
    from maestro.policy.gate import MarkerScanner, serve_asks

    root = tmp_path / "ws"
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[tool.maestro.policy]\nupload_ci_only = true\n")
    (root / "tests/test_a.py").write_text("def test_a():\n    pass\n")
    (root / "tests/test_f.py").write_text(
        "import pytest\n\n@pytest.mark.flaky\ndef test_f():\n    pass\n"
    )
    targets = ["tests/test_a.py", "tests/test_f.py"]
    engine = PolicyEngine.open(root)
    scanner = MarkerScanner(root)
    assert serve_asks(engine.current, targets, scanner) == [("tests/test_f.py", ["flaky"])]

    (root / ".maestro/policy").mkdir(parents=True)
    (root / ".maestro/policy/serve.rego").write_text(NO_SERVE)
    engine.reload()
    assert [t for t, _ in serve_asks(engine.current, targets, scanner)] == targets


@pytest.mark.parametrize("ci", [False, True])
@pytest.mark.parametrize("outcome", [None, "passed", "failed"])
def test_the_built_in_cache_rules_never_deny_serving_an_unmarked_file(
    tmp_path: Path, ci: bool, outcome: str | None
) -> None:
    """What :func:`serve_asks` relies on to leave unmarked files out."""
    from maestro.policy import CacheInput, PolicyEngine

    root = tmp_path / "ws"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        "[tool.maestro.policy]\nupload_ci_only = true\nno_cache_markers = ['slow', 'net']\n"
        "never_skip_markers = ['critical']\nquarantine = ['tests/']\n"
    )
    engine = PolicyEngine.open(root)
    assert engine.last_error is None and engine.current is not None
    assert engine.current.only_builtin("cache")
    for target in ("tests/test_a.py", "tests/", "x.py::t", ""):
        inp = CacheInput(action="serve", target=target, ci=ci, outcome=outcome)
        assert engine.decide(inp).result == "allow"
    marked = CacheInput(action="serve", target="t.py", markers=["net"], ci=ci, outcome=outcome)
    assert engine.decide(marked).result == "deny"


def test_a_run_without_the_daemon_asks_the_same_serve_decision(ws: Path) -> None:
    runner = CliRunner()
    args = ["test", "--no-daemon", "--root", str(ws)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert (ws.parent / "runs.txt").read_text() == "xx"  # denied serving: it ran for real
    out = " ".join(second.stdout.split())
    assert "ran 1 file, 1 cached" in out


def test_a_flaky_marked_file_is_neither_stored_nor_served_without_the_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ws"
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        "[project]\nname = 'ws'\nversion = '0'\n\n"
        "[tool.pytest.ini_options]\nmarkers = ['flaky: sometimes fails']\n"
    )
    (root / "tests/test_plain.py").write_text("def test_plain():\n    assert True\n")
    counting = COUNTING.replace("def test_live", "def test_f")
    (root / "tests/test_f.py").write_text(
        "import pytest\n\npytestmark = pytest.mark.flaky\n\n" + counting
    )
    monkeypatch.setenv("MAESTRO_STATE_DIR", str(tmp_path / "st"))
    runner = CliRunner()
    args = ["test", "--no-daemon", "--root", str(root)]
    for _ in range(2):
        done = runner.invoke(app, args)
        assert done.exit_code == 0, done.output
    assert (tmp_path / "runs.txt").read_text() == "xx"
    assert "ran 1 file, 1 cached" in " ".join(done.stdout.split())


def test_a_run_without_the_daemon_opens_no_policy_for_markers_no_rule_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening the policy costs a second or more: a plain run with common markers (skipif,
    slow) must not pay it."""
    from maestro.policy import local
    from maestro.policy.gate import PolicyGate

    root = tmp_path / "ws"
    (root / "tests").mkdir(parents=True)
    (root / "tests/test_s.py").write_text(
        "import pytest\n\n@pytest.mark.skipif(False, reason='no')\n@pytest.mark.slow\n"
        "def test_s():\n    pass\n"
    )

    def refuse(*args: object, **kwargs: object) -> PolicyGate:
        raise AssertionError("the policy was opened")

    monkeypatch.setattr(PolicyGate, "for_workspace", refuse)
    gates = local.LocalGates(root)
    planned = type("P", (), {"target": "tests/test_s.py"})()
    assert gates.store(planned) is True  # type: ignore[arg-type]


def test_a_run_without_the_daemon_opens_a_workspace_policy_while_it_plans(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With rules of its own every run asks (serve and store): the policy (its child check and
    compile, most of a second) is opened in the background as the run starts, so the plan does
    not wait for it after planning; the decisions are the same."""
    import threading

    from maestro.policy import local
    from maestro.policy.gate import PolicyGate

    opened_in: list[str] = []
    real = PolicyGate.for_workspace

    def spy(*args: object, **kwargs: object) -> PolicyGate:
        opened_in.append(threading.current_thread().name)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(PolicyGate, "for_workspace", spy)
    gates = local.LocalGates(ws)
    try:
        assert gates._opening is not None
        gates._opening.join(120)
        assert opened_in == ["policy-open"]  # before any decision was asked
        live = type("P", (), {"target": "tests/test_live.py"})()
        assert gates.store(live) is True  # type: ignore[arg-type]
        assert opened_in == ["policy-open"]  # opened once
    finally:
        gates.close()
    assert gates._gate is None
