"""`maestro policy ...` and `maestro explain` with policy decisions, through the real CLI app."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
from test_rules import CAP_MODULE
from typer.testing import CliRunner

from maestro.cli.app import app
from maestro.policy import RunInput
from maestro.policy.gate import PolicyGate
from maestro.policy.model import RunningRun

runner = CliRunner()

CASES = """
- name: a second run under tests/db queues
  point: run
  input:
    paths: [tests/db/t.py]
    running: [{execution_id: a, kind: ci, paths: [tests/db/u.py], started_ms: 0}]
  expect: {result: queue, rules: [caps.db_serial]}
- name: other paths run at once
  point: run
  input: {paths: [tests/api/t.py]}
  expect: {result: allow}
"""

REGO_TEST = """package maestro.workspace.caps_test

import rego.v1

test_builtin_defaults_keep_critical_tests if "critical" in data.config.builtin.never_skip_markers
"""

# rego-cpp aborts the process on this `with` form: the run must report it, not crash
ABORTING_TEST = """package maestro.workspace.abort_test

import rego.v1

test_with if {
\tcount(data.maestro.workspace.run.queue) == 1 with input as {"paths": ["tests/db/a.py"]}
}
"""


def _queued_run(root: Path) -> str:
    gate = PolicyGate.for_workspace(root)
    running = [
        RunningRun(execution_id="a", kind="interactive", paths=["tests/db/x.py"], started_ms=0)
    ]
    inp = RunInput(execution_id="exec-42", paths=["tests/db/test_db.py"], running=running, now_ms=1)
    _, record = gate.decide(inp, targets=["tests/db/test_db.py"])
    assert gate.log is not None
    record.waited_ms = 42_000
    gate.log.update(record)
    gate.close()
    return record.execution_id


def test_check_eval_test_status(workspace: Callable[..., Path]) -> None:
    root = workspace(
        "", {"caps.rego": CAP_MODULE, "caps_test.yaml": CASES, "caps_test.rego": REGO_TEST}
    )
    out = runner.invoke(app, ["policy", "check", "--root", str(root), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["ok"] is True

    out = runner.invoke(
        app,
        ["policy", "eval", "run", "--root", str(root), "-i",
         '{"paths": ["tests/db/a.py"], "running": [{"execution_id": "x", "kind": "ci",'
         ' "paths": ["tests/db/b.py"], "started_ms": 0}]}'],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "run queued: at most 1 concurrent run under tests/db (rule caps.db_serial)" in out.stdout
    out = runner.invoke(app, ["policy", "eval", "run", "--root", str(root), "-i", '{"pathz": 1}'])
    assert out.exit_code != 0 and "maestro.policy.run/1" in out.output

    out = runner.invoke(app, ["policy", "test", "--root", str(root)])
    assert out.exit_code == 0, out.output
    assert "3 passed, 0 failed" in out.stdout
    (root / ".maestro/policy/abort_test.rego").write_text(ABORTING_TEST)
    out = runner.invoke(app, ["policy", "test", "--root", str(root), "--json"])
    assert out.exit_code == 1
    [aborted] = [t for t in json.loads(out.stdout)["tests"] if not t["passed"]]
    assert "aborted" in aborted["error"]

    out = runner.invoke(app, ["policy", "status", "--root", str(root), "--json"])
    status = json.loads(out.stdout)
    assert status["layers"]["workspace"] == [".maestro/policy/caps.rego"]
    assert status["bundle"]["state"].startswith("none")


def test_check_names_file_line_column(workspace: Callable[..., Path]) -> None:
    bad = "package maestro.workspace.run\n\nimport rego.v1\n\nqueue contains x if {\n  x == \n}\n"
    root = workspace("", {"bad.rego": bad})
    out = runner.invoke(app, ["policy", "check", "--root", str(root)])
    assert out.exit_code == 1
    assert ".maestro/policy/bad.rego:6:" in out.output
    assert "the last good policy stays in force" in out.output


def test_explain_shows_decisions_by_execution_and_by_test(
    workspace: Callable[..., Path], tmp_path: Path
) -> None:
    root = workspace("", {"caps.rego": CAP_MODULE})
    (root / "tests/db").mkdir(parents=True)
    (root / "tests/db/test_db.py").write_text("def test_q():\n    assert True\n")
    execution = _queued_run(root)

    out = runner.invoke(app, ["explain", "--execution", execution, "--root", str(root)])
    assert out.exit_code == 0, out.output
    line = " ".join(out.stdout.split())
    assert "queued 42 s: at most 1 concurrent run under tests/db (rule caps.db_serial);" in line
    assert "remediation: tests/db share one database" in line

    out = runner.invoke(app, ["explain", "--execution", execution, "--json", "--root", str(root)])
    [decision] = json.loads(out.stdout)["decisions"]
    assert (decision["result"], decision["waitedMs"]) == ("queue", 42_000)
    assert decision["rules"][0]["rule"] == "caps.db_serial"

    out = runner.invoke(app, ["explain", "tests/db/test_db.py", "--json", "--root", str(root)])
    assert out.exit_code == 0, out.output
    [policy] = json.loads(out.stdout)["policy"]
    assert policy["summary"].startswith("run queued 42 s")

    out = runner.invoke(app, ["explain", "tests/db/test_db.py", "--root", str(root)])
    assert "policy run queued 42 s" in " ".join(out.stdout.split())

    parquet = tmp_path / "d.parquet"
    out = runner.invoke(
        app, ["policy", "export", "--format", "parquet", "-o", str(parquet), "--root", str(root)]
    )
    assert out.exit_code == 0, out.output
    table = pq.read_table(parquet)
    assert table.column("execution_id").to_pylist() == [execution]
    assert table.column("rule_ids").to_pylist() == [["caps.db_serial"]]
    out = runner.invoke(app, ["policy", "export", "--format", "csv", "-o", str(parquet),
                              "--root", str(root)])  # fmt: skip
    assert out.exit_code != 0 and "expected parquet or json" in out.output
    out = runner.invoke(app, ["policy", "decisions", "--root", str(root), "--json"])
    assert json.loads(out.stdout)["decisions"][0]["retryAfterMs"] is None
