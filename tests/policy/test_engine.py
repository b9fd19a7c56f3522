"""Composition of layers, bad policy, fail modes, shadow mode, and the decision log."""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from maestro.errors import ConfigError, PolicyError, PolicySyntaxError
from maestro.policy import (
    CacheInput,
    CoordinatorInput,
    PluginInput,
    PolicyEngine,
    PolicyInput,
    RunInput,
    SelectInput,
)
from maestro.policy.gate import PolicyGate
from maestro.policy.records import DecisionLog
from maestro.policy.sources import Module
from maestro.redaction import Redactor

TEAM_DENY = """package maestro.team.run

import rego.v1

# METADATA
# custom:
#   id: team.freeze
#   remediation: the release freeze ends Monday; ask #release for an exception
deny contains {"rule": "team.freeze", "msg": "release freeze"} if input.kind == "background"
"""

WORKSPACE_ALLOW = """package maestro.workspace.run

import rego.v1

allow := true

deny := set()
"""

# two values for one complete rule: an evaluation error at decision time, not at compile time
CONFLICT = """package maestro.workspace.{point}

import rego.v1

pick := "a" if input.execution_id != ""

pick := "b" if input.execution_id != ""

deny contains {{"rule": "conflict", "msg": pick}} if pick
"""


def team(text: str = TEAM_DENY) -> tuple[list[Module], dict[str, object], str]:
    return [Module("team:freeze.rego", text, "team")], {}, "rev-1"


def test_a_team_deny_stands_whatever_the_workspace_allows(workspace: Callable[..., Path]) -> None:
    root = workspace("", {"allow.rego": WORKSPACE_ALLOW})
    engine = PolicyEngine.open(root)
    engine.reload(team=team())
    decision = engine.decide(RunInput(kind="background", now_ms=1))
    assert decision.result == "deny"
    [rule] = decision.fired("deny")
    assert (rule.rule, rule.layer) == ("team.freeze", "team")
    assert rule.remediation.startswith("the release freeze ends Monday")


def test_a_workspace_module_cannot_claim_the_team_package(workspace: Callable[..., Path]) -> None:
    sneaky = TEAM_DENY.replace("deny contains", "allow_all contains")
    root = workspace("", {"team.rego": sneaky})
    engine = PolicyEngine.open(root)
    assert isinstance(engine.last_error, PolicyError)
    assert "outside the workspace layer" in engine.last_error.message
    assert engine.last_error.where == ".maestro/policy/team.rego:1:1"
    assert engine.current is not None  # the built-in policy is in force


def test_syntax_error_names_file_line_column_and_keeps_the_last_good(
    workspace: Callable[..., Path],
) -> None:
    root = workspace("", {"ok.rego": WORKSPACE_ALLOW})
    engine = PolicyEngine.open(root)
    good = engine.current
    assert good is not None and engine.last_error is None
    (root / ".maestro/policy/bad.rego").write_text(
        "package maestro.workspace.run\n\nimport rego.v1\n\nqueue contains x if {\n  x == \n}\n"
    )
    with pytest.raises(PolicySyntaxError) as caught:
        engine.reload()
    assert caught.value.where is not None
    # file:line:column, the column a number
    assert re.fullmatch(r"\.maestro/policy/bad\.rego:6:\d+", caught.value.where)
    assert engine.current is good
    assert engine.decide(RunInput(now_ms=1)).result == "allow"


@pytest.mark.parametrize(
    ("inp", "result"),
    [
        (RunInput(execution_id="x", now_ms=1), "allow"),
        (SelectInput(execution_id="x", changed=["src/a.py"]), "allow"),
        (CacheInput(execution_id="x", action="store", target="t.py"), "allow"),
        (CacheInput(execution_id="x", action="serve", target="t.py"), "allow"),
        (CacheInput(execution_id="x", action="upload", target="t.py"), "deny"),
        (
            CoordinatorInput(execution_id="x", tenant="t", role="rw", method="GET", path="/"),
            "allow",
        ),
        (PluginInput(execution_id="x", name="p", version="1", sha256="0", signed=True), "deny"),
    ],
)
def test_fail_mode_on_evaluation_error(
    workspace: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
    inp: PolicyInput,
    result: str,
) -> None:
    """docs/policy.md's table: upload and plugin fail closed, every other point fails open with a
    warning (in the decision and in the log)."""
    root = workspace("", {"conflict.rego": CONFLICT.format(point=inp.point)})
    engine = PolicyEngine.open(root)
    assert engine.last_error is None
    with caplog.at_level(logging.WARNING, logger="maestro.policy.engine"):
        decision = engine.decide(inp)
    assert decision.error
    assert decision.result == result
    [rule] = decision.rules
    assert rule.rule == "policy.error"
    assert rule.kind == ("deny" if result == "deny" else "warn")
    assert rule.remediation.startswith("fix the policy")
    [logged] = [r for r in caplog.records if "policy evaluation failed" in r.getMessage()]
    if result == "deny":
        assert logged.levelno == logging.ERROR and "fail closed" in logged.getMessage()
    else:
        assert logged.levelno == logging.WARNING and "fail open" in logged.getMessage()


def test_a_team_puts_its_own_rules_in_shadow_mode(workspace: Callable[..., Path]) -> None:
    engine = PolicyEngine.open(workspace())
    modules, _, revision = team()
    engine.reload(team=(modules, {"shadow": ["team"]}, revision))
    decision = engine.decide(RunInput(kind="background", now_ms=1))
    assert decision.result == "allow"
    assert [(r.rule, r.shadow) for r in decision.rules] == [("team.freeze", True)]
    engine.reload()  # the held bundle's shadow survives a workspace reload
    assert engine.decide(RunInput(kind="background", now_ms=2)).result == "allow"
    engine.reload(team=team())  # the team's next bundle enforces
    assert engine.decide(RunInput(kind="background", now_ms=3)).result == "deny"


def test_a_workspace_shadows_its_own_rules_but_not_the_teams(
    workspace: Callable[..., Path],
) -> None:
    mine = TEAM_DENY.replace("maestro.team.run", "maestro.workspace.run").replace(
        "team.freeze", "ws.freeze"
    )
    root = workspace('[tool.maestro.policy]\nshadow = ["workspace"]\n', {"mine.rego": mine})
    engine = PolicyEngine.open(root)
    decision = engine.decide(RunInput(kind="background", now_ms=1))
    assert decision.result == "allow"
    assert [(r.rule, r.shadow) for r in decision.rules] == [("ws.freeze", True)]

    # a workspace naming the team's layer is refused, saying who may
    with pytest.raises(ConfigError) as caught:
        PolicyEngine.open(workspace('[tool.maestro.policy]\nshadow = ["team"]\n'))
    assert "cannot put the team's rules in shadow mode" in caught.value.message
    assert caught.value.hint is not None and '"shadow": ["team"]' in caught.value.hint


def test_with_a_team_bundle_a_workspace_cannot_shadow_the_built_in_rules(
    workspace: Callable[..., Path],
) -> None:
    """The team's settings drive built-in rules (here: only CI uploads); a workspace shadowing
    the built-in layer would override the team's deny."""
    root = workspace('[tool.maestro.policy]\nshadow = ["builtin"]\n')
    engine = PolicyEngine.open(root)
    laptop = CacheInput(action="upload", target="tests/t.py", ci=False)
    assert engine.decide(laptop).result == "allow"  # no team: the workspace's choice
    modules, _, revision = team()
    engine.reload(team=(modules, {"upload_ci_only": True}, revision))
    decision = engine.decide(laptop)
    assert decision.result == "deny"
    assert decision.fired("deny")[0].rule == "cache.ci_only_upload"


def test_decision_log_is_private_bounded_redacted_queryable_and_exported(
    workspace: Callable[..., Path], tmp_path: Path
) -> None:
    root = workspace("[tool.maestro.policy]\nupload_ci_only = true\n")
    log = DecisionLog(tmp_path / "log" / "d.sqlite", max_records=5)
    redactor = Redactor(detectors=True)
    secret = "hunter2-very-secret-value"
    redactor.add_known(secret, kind="test")
    gate = PolicyGate(PolicyEngine.open(root), log, redactor)
    for i in range(7):
        gate.decide(
            CacheInput(execution_id=f"e{i}", action="upload", target=f"tests/t{i}.py?{secret}"),
            targets=[f"tests/t{i}.py"],
        )
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600
    assert log.count() == 5
    [rec] = gate.decisions(execution_id="e6")
    assert rec.result == "deny" and rec.rules[0].rule == "cache.ci_only_upload"
    # a record: its id, time (RFC 3339, UTC), point, and the rule's remediation from METADATA
    assert rec.id and rec.id != gate.decisions(execution_id="e5")[0].id
    assert datetime.fromisoformat(rec.time).utcoffset() == timedelta(0)
    assert rec.point == "cache" and rec.rules[0].title == "Only CI writes the team cache"
    assert rec.rules[0].remediation.startswith("results from CI warm the team cache")
    assert rec.schema_ == "maestro.policy.cache/1"
    assert secret not in rec.model_dump_json() and "[REDACTED:test:" in rec.input["target"]
    assert [r.execution_id for r in gate.decisions(test="tests/t5.py::test_a")] == ["e5"]
    assert gate.decisions(execution_id="e0") == []  # pruned
    assert "denied" in rec.summary and "remediation:" in rec.summary
    out = tmp_path / "d.parquet"
    assert log.export(out, "parquet") == 5
    table = pq.read_table(out)
    assert table.column("rule_ids").to_pylist()[0] == ["cache.ci_only_upload"]
    assert secret.encode() not in out.read_bytes()
    assert log.export(tmp_path / "d.json", "json") == 5
