"""A policy edit that cannot change a ``serve`` decision (a run rule, another point's
annotation-free module) keeps the previous set's serve decisions, stamped with the new set's
digest: the first plan after it evaluates nothing. Anything a serve decision may depend on
(cache rules, data, an annotation's remediation, a run package a cache rule reads) decides
again. Every answer is the one a fresh engine gives each input alone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from test_decision_cost import counting
from test_warm_serves import BASE, LIVE, one_by_one, serves

from maestro.policy import PolicyEngine
from maestro.policy.model import Decision

FREEZE = """package maestro.workspace.run

import rego.v1

deny contains {{"rule": "ops.freeze", "msg": "frozen"}} if {{
\tsome p in input.paths
\tstartswith(p, "tests/{frozen}")
}}
"""

# a cache rule that reads a helper of the run package: an edit of that module changes serving
READS_RUN = """package maestro.workspace.cache

import rego.v1

deny contains {"rule": "cache.frozen", "target": input.target, "msg": "frozen"} if {
\tinput.action == "serve"
\tstartswith(input.target, data.maestro.workspace.run.frozen_prefix)
}
"""

RUN_HELPER = """package maestro.workspace.run

import rego.v1

frozen_prefix := "tests/{prefix}_"
"""

# a run module whose METADATA names the cache rule's id: its remediation is the serve's
NOTE = """package maestro.workspace.run

import rego.v1

# METADATA
# custom:
#   id: cache.live
#   remediation: {remediation}
deny contains {{"rule": "ops.none", "msg": "never"}} if {{
\tinput.kind == "never"
}}
"""


def _stamped(decisions: list[Decision], digest: str) -> None:
    assert all(d.policy == digest for d in decisions)


def _live_only() -> str:
    # LIVE with its own METADATA removed: the annotation comes from the run module
    lines = LIVE.format(prefix="live").splitlines()
    return "\n".join(line for line in lines if not line.startswith("#")) + "\n"


def test_an_edit_of_run_rules_keeps_the_serve_decisions(
    workspace: Callable[..., Path], tmp_path: Path
) -> None:
    rules = {"live.rego": LIVE.format(prefix="live"), "freeze.rego": FREEZE.format(frozen="a")}
    root = workspace("", rules)
    engine = PolicyEngine.open(root, memo_dir=tmp_path / "memo")
    updates: list[dict[str, Any]] = serves(40)
    before = engine.decide_many(BASE, updates)
    old = engine.current
    (root / ".maestro/policy/freeze.rego").write_text(FREEZE.format(frozen="b"))
    policy = engine.reload()
    assert old is not None and policy.digest != old.digest and policy.serves == old.serves
    calls = counting(policy)
    after = engine.decide_many(BASE, updates)
    assert calls[0] == 0  # kept: nothing evaluated
    assert after == one_by_one(root, updates)  # the new set's answers, its digest on each
    _stamped(after, policy.digest)
    assert [d.model_copy(update={"policy": ""}) for d in after] == [
        d.model_copy(update={"policy": ""}) for d in before
    ]
    assert {d.result for d in after} == {"allow", "deny"}
    # kept on disk under the new set's digest: the next process reads them back
    engine.save_memo()
    reopened = PolicyEngine.open(root, memo_dir=tmp_path / "memo")
    assert reopened.current is not None
    calls = counting(reopened.current)
    assert reopened.decide_many(BASE, updates) == after
    assert calls[0] == 0


def test_an_edit_of_cache_rules_decides_again(workspace: Callable[..., Path]) -> None:
    root = workspace("", {"live.rego": LIVE.format(prefix="live")})
    engine = PolicyEngine.open(root)
    updates = serves(30)
    engine.decide_many(BASE, updates)
    old = engine.current
    (root / ".maestro/policy/live.rego").write_text(LIVE.format(prefix="slow"))
    policy = engine.reload()
    assert old is not None and policy.serves != old.serves
    calls = counting(policy)
    after = engine.decide_many(BASE, updates)
    assert calls[0] == len(updates)
    assert after == one_by_one(root, updates)
    assert "cache.slow" in {r.rule for d in after for r in d.rules}


def test_a_run_module_a_cache_rule_reads_is_part_of_serving(
    workspace: Callable[..., Path],
) -> None:
    root = workspace("", {"cache.rego": READS_RUN, "helper.rego": RUN_HELPER.format(prefix="live")})
    engine = PolicyEngine.open(root)
    assert engine.last_error is None
    updates = serves(30)
    before = engine.decide_many(BASE, updates)
    assert any(d.result == "deny" for d in before)
    (root / ".maestro/policy/helper.rego").write_text(RUN_HELPER.format(prefix="unit"))
    policy = engine.reload()
    after = engine.decide_many(BASE, updates)
    assert after == one_by_one(root, updates)
    frozen = {r.target for d in after for r in d.rules if r.rule == "cache.frozen"}
    assert frozen and all(str(t).startswith("tests/unit_") for t in frozen)
    _stamped(after, policy.digest)


def test_a_remediation_written_in_another_module_is_part_of_serving(
    workspace: Callable[..., Path],
) -> None:
    root = workspace(
        "", {"live.rego": _live_only(), "note.rego": NOTE.format(remediation="ask ops")}
    )
    engine = PolicyEngine.open(root)
    updates = serves(12)
    first = engine.decide_many(BASE, updates)
    assert {r.remediation for d in first for r in d.rules if r.rule == "cache.live"} == {"ask ops"}
    (root / ".maestro/policy/note.rego").write_text(NOTE.format(remediation="ask the team"))
    engine.reload()
    after = engine.decide_many(BASE, updates)
    assert {r.remediation for d in after for r in d.rules if r.rule == "cache.live"} == {
        "ask the team"
    }
    assert after == one_by_one(root, updates)


def test_settings_are_part_of_serving(workspace: Callable[..., Path]) -> None:
    root = workspace("", {"live.rego": LIVE.format(prefix="live")})
    engine = PolicyEngine.open(root)
    old = engine.current
    (root / "pyproject.toml").write_text(
        '[project]\nname = "ws"\nversion = "0"\n\n[tool.maestro.policy]\n'
        'no_cache_markers = ["flaky", "slow"]\n'
    )
    policy = engine.reload()
    assert old is not None and policy.serves != old.serves


def test_a_new_process_after_an_edit_of_run_rules_reads_the_kept_serve_decisions(
    workspace: Callable[..., Path], tmp_path: Path
) -> None:
    """A CLI run after a run rule was edited: the last set's kept file (same serve digest)
    answers; after an edit of the cache rule, none does."""
    rules = {"live.rego": LIVE.format(prefix="live"), "freeze.rego": FREEZE.format(frozen="a")}
    root = workspace("", rules)
    memo = tmp_path / "memo"
    first = PolicyEngine.open(root, memo_dir=memo)
    updates = serves(40)
    first.decide_many(BASE, updates)
    first.save_memo()
    (root / ".maestro/policy/freeze.rego").write_text(FREEZE.format(frozen="b"))
    second = PolicyEngine.open(root, memo_dir=memo)
    assert second.current is not None and first.current is not None
    assert second.current.digest != first.current.digest
    calls = counting(second.current)
    answers = second.decide_many(BASE, updates)
    assert calls[0] == 0
    assert answers == one_by_one(root, updates)
    _stamped(answers, second.current.digest)
    (root / ".maestro/policy/live.rego").write_text(LIVE.format(prefix="slow"))
    third = PolicyEngine.open(root, memo_dir=memo)
    assert third.current is not None
    calls = counting(third.current)
    assert third.decide_many(BASE, updates) == one_by_one(root, updates)
    assert calls[0] == len(updates)
