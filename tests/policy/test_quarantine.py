"""Quarantine of known-flaky tests at the select point (they run, are reported, do not fail the
run), the run's execution id and policy line in its result and the CLI, and a denied run's wire
error carrying retryAfterMs, against a real daemon running real pytest."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from workspace_procs import daemon_workspace

from maestro import wire
from maestro.daemon.transport.client import DaemonClient
from maestro.errors import PolicyDeniedError
from maestro.policy import quarantine
from maestro.policy.model import Decision, FiredRule
from maestro.policy.protocol import POLICY_DECISIONS, PolicyDecisionsParams

FREEZE = """package maestro.workspace.run

import rego.v1

# METADATA
# custom:
#   id: ops.freeze
#   remediation: tests/frozen is frozen during the migration; retry later
deny contains {"rule": "ops.freeze", "msg": "tests/frozen is frozen", "retry_after_ms": 5000} if {
\tsome p in input.paths
\tstartswith(p, "tests/frozen")
}
"""

FILES = {
    "pyproject.toml": (
        "[project]\nname = 'ws'\nversion = '0'\n\n"
        "[tool.maestro.policy]\n"
        'quarantine = ["tests/test_listed.py::test_bad"]\n'
        'quarantine_markers = ["wobbly"]\n'
        "\n[tool.pytest.ini_options]\nmarkers = ['wobbly: known flaky']\n"
    ),
    "tests/test_listed.py": "def test_bad():\n    assert 1 == 2\n\ndef test_ok():\n    pass\n",
    "tests/test_marked.py": (
        "import pytest\n\n@pytest.mark.wobbly\ndef test_wobbly():\n    assert False\n\n"
        "def test_plain():\n    pass\n"
    ),
    "tests/frozen/test_f.py": "def test_f():\n    pass\n",
    ".maestro/policy/freeze.rego": FREEZE,
}

REAL_FAILURE = "def test_real():\n    assert 0\n"


@pytest.fixture
def ws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with daemon_workspace(monkeypatch, FILES, "mqua") as root:
        yield root


def test_marked_tests_per_function_class_and_module(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text(
        "import pytest\n\n@pytest.mark.flaky(reruns=2)\ndef test_a():\n    pass\n\n"
        "class TestK:\n    @pytest.mark.flaky\n    def test_b(self):\n        pass\n\n"
        "@pytest.mark.slow\ndef test_c():\n    pass\n"
    )
    (tmp_path / "m.py").write_text("import pytest\npytestmark = [pytest.mark.flaky]\n")
    (tmp_path / "bad.py").write_text("def (:\n")
    assert quarantine.marked_tests(tmp_path, "t.py", ["flaky"]) == {
        "t.py::test_a": ["flaky"],
        "t.py::TestK::test_b": ["flaky"],
    }
    assert quarantine.marked_tests(tmp_path, "m.py", ["flaky"]) == {"m.py": ["flaky"]}
    assert quarantine.marked_tests(tmp_path, "bad.py", ["flaky"]) == {}


def test_covers() -> None:
    assert quarantine.covers("tests/a.py::test_x", "tests/a.py::test_x[1]")
    assert not quarantine.covers("tests/a.py::test_x", "tests/a.py::test_xy")
    assert quarantine.covers("tests/a.py", "tests/a.py::K::test_y")
    assert quarantine.covers("tests/flaky/", "tests/flaky/test_a.py::t")
    assert quarantine.covers("tests/flaky", "tests/flaky/test_a.py::t")
    assert not quarantine.covers("tests/flaky", "tests/flakyness/test_a.py::t")


def _result(outcomes: dict[str, str]) -> wire.RunTestsResult:
    tests = [{"node_id": n, "outcome": o} for n, o in outcomes.items()]
    failed = sum(o == "failed" for o in outcomes.values())
    return wire.RunTestsResult(
        exit_code=1 if failed else 0, failed=failed, pytest_exit_code=1 if failed else 0,
        files=[wire.RunFileResult(target="t.py", cached=False, result={"tests": tests})],
    )  # fmt: skip


def test_apply_exit_code_only_when_every_failure_is_quarantined() -> None:
    rule = FiredRule(rule="quarantine.listed", kind="quarantine", layer="builtin", target="t.py::a")
    decision = Decision(point="select", result="allow", rules=[rule])
    only = quarantine.apply(_result({"t.py::a": "failed", "t.py::b": "passed"}), decision)
    assert only.exit_code == 0 and [q.node_id for q in only.quarantined] == ["t.py::a"]
    assert only.quarantined[0].rule == "quarantine.listed" and only.failed == 1
    both = quarantine.apply(_result({"t.py::a": "failed", "t.py::b": "failed"}), decision)
    assert both.exit_code == 1 and [q.node_id for q in both.quarantined] == ["t.py::a"]
    shadow = Decision(
        point="select", result="allow", rules=[rule.model_copy(update={"shadow": True})]
    )
    assert quarantine.apply(_result({"t.py::a": "failed"}), shadow).exit_code == 1


@pytest.mark.slow
def test_daemon_quarantines_runs_and_reports_and_denies_with_retry(ws: Path) -> None:
    async def main() -> str:
        client = await DaemonClient.connect(ws, start=True)
        try:
            everything = ["tests/test_listed.py", "tests/test_marked.py"]
            run = await client.call(
                wire.RUN_TESTS, wire.RunTestsParams(paths=everything), timeout=120
            )
            # both failures ran and are reported, both are quarantined: the run passes
            assert (run.failed, run.passed, run.exit_code) == (2, 2, 0)
            assert {(q.node_id, q.outcome, q.rule) for q in run.quarantined} == {
                ("tests/test_listed.py::test_bad", "failed", "quarantine.listed"),
                ("tests/test_marked.py::test_wobbly", "failed", "quarantine.marker"),
            }
            assert run.execution_id and any("quarantined" in n for n in run.policy)
            found = await client.call(
                POLICY_DECISIONS, PolicyDecisionsParams(execution_id=run.execution_id)
            )
            select = [d for d in found.decisions if d.point == "select"]
            assert select and {r.rule for r in select[0].rules} == {
                "quarantine.listed", "quarantine.marker",
            }  # fmt: skip

            # a failure no rule quarantines still fails the run
            (ws / "tests/test_real.py").write_text(REAL_FAILURE)
            await asyncio.sleep(0.5)
            mixed = await client.call(
                wire.RUN_TESTS,
                wire.RunTestsParams(paths=[*everything, "tests/test_real.py"]),
                timeout=120,
            )
            assert (mixed.failed, mixed.exit_code) == (3, 1)
            assert len(mixed.quarantined) == 2

            # a denied run: the wire error carries retryAfterMs and the execution id
            with pytest.raises(PolicyDeniedError) as denied:
                await client.call(
                    wire.RUN_TESTS, wire.RunTestsParams(paths=["tests/frozen"]), timeout=60
                )
            assert denied.value.retry_after_ms == 5000
            assert denied.value.execution_id
            assert "ops.freeze" in denied.value.message
            assert f"maestro explain --execution {denied.value.execution_id}" in (
                denied.value.hint or ""
            )
            return run.execution_id
        finally:
            await client.close()

    asyncio.run(main())

    # the CLI (through the daemon): quarantined failures shown, exit 0, the policy line
    (ws / "tests/test_real.py").unlink()
    maestro = str(Path(sys.executable).parent / "maestro")
    cli = subprocess.run(
        [maestro, "test", "tests/test_listed.py", "tests/test_marked.py"],
        cwd=ws, capture_output=True, text=True, timeout=180, env={**os.environ, "COLUMNS": "400"},
    )  # fmt: skip
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "QUARANTINED FAILED tests/test_listed.py::test_bad" in cli.stdout
    assert "quarantined 2 tests (2 failed, not failing the run" in cli.stdout
    line = next(x for x in cli.stdout.splitlines() if x.startswith("policy: "))
    assert "(maestro explain --execution " in line

    frozen = subprocess.run(
        [maestro, "test", "tests/frozen"],
        cwd=ws, capture_output=True, text=True, timeout=180, env={**os.environ, "COLUMNS": "400"},
    )  # fmt: skip
    assert frozen.returncode != 0
    assert "ops.freeze" in frozen.stderr + frozen.stdout
    assert "retry in 5 s" in frozen.stderr + frozen.stdout


def test_cli_without_daemon_quarantines_too(ws: Path) -> None:
    """`maestro test --no-daemon` (a CI job): the same select decision, made in process."""
    (ws / ".maestro/policy/freeze.rego").unlink()
    maestro = str(Path(sys.executable).parent / "maestro")
    cli = subprocess.run(
        [maestro, "test", "--no-daemon", "tests/test_listed.py", "tests/test_marked.py"],
        cwd=ws, capture_output=True, text=True, timeout=180, env={**os.environ, "COLUMNS": "400"},
    )  # fmt: skip
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "QUARANTINED FAILED tests/test_marked.py::test_wobbly" in cli.stdout
    line = next(x for x in cli.stdout.splitlines() if x.startswith("policy: "))
    execution = line.rsplit("--execution ", 1)[1].rstrip(")")
    explained = subprocess.run(
        [maestro, "explain", "--execution", execution, "--json"],
        cwd=ws, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "quarantine.listed" in explained.stdout and "quarantine.marker" in explained.stdout
    (ws / "tests/test_real.py").write_text(REAL_FAILURE)
    failing = subprocess.run(
        [maestro, "test", "--no-daemon", "tests/test_listed.py", "tests/test_real.py"],
        cwd=ws, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert failing.returncode == 1, failing.stdout + failing.stderr


def test_cli_without_daemon_refuses_a_denied_run_too(ws: Path) -> None:
    """A run the workspace's rules deny is refused without the daemon too (`--no-daemon`, or a
    terminal's first run, which does not wait for a daemon): before, only the daemon asked the
    run point, so the same command ran the frozen tests or not by whether a daemon was up."""
    maestro = str(Path(sys.executable).parent / "maestro")
    frozen = subprocess.run(
        [maestro, "test", "--no-daemon", "tests/frozen"],
        cwd=ws, capture_output=True, text=True, timeout=180, env={**os.environ, "COLUMNS": "400"},
    )  # fmt: skip
    said = frozen.stdout + frozen.stderr
    assert frozen.returncode != 0 and "ops.freeze" in said, said
    assert "frozen during the migration" in said and "passed" not in said, said
    execution = said.split("maestro explain --execution ", 1)[1].split()[0].rstrip(").;")
    explained = subprocess.run(
        [maestro, "explain", "--execution", execution, "--json"],
        cwd=ws, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "ops.freeze" in explained.stdout, explained.stdout + explained.stderr
    # the rest of the workspace still runs without the daemon
    allowed = subprocess.run(
        [maestro, "test", "--no-daemon", "tests/test_listed.py"],
        cwd=ws, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


def test_a_workspace_that_quarantines_nothing_loads_no_policy_model() -> None:
    """A run outside the daemon asks the quarantine after its tests: without a quarantine it
    must not pay for the policy's models between pytest's exit and the summary."""
    probe = (
        "import sys; import maestro.policy.quarantine; print('maestro.policy.model' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd="/")
    assert out.stdout.strip() == "False", out.stderr
