"""A plan's serve decisions when the workspace or team rules read a file's target only through
string tests with literals (``startswith(input.target, "tests/live_")``, ``input.target ==
"tests/x.py"``): unmarked files with the same answers to those tests (and the same outcome)
share one Rego evaluation, and every decision is the one the set gives that file alone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_decision_cost import counting
from test_warm_serves import BASE, LIVE, one_by_one

from maestro.policy import PolicyEngine
from maestro.policy.targets import answers, target_tests

SINGLE = """package maestro.workspace.cache

import rego.v1

# METADATA
# custom:
#   id: cache.one_file
#   remediation: tests/unit_5.py always runs (its target is named in this rule)
deny contains {"rule": "cache.one_file", "msg": "this one file"} if {
\tinput.action == "serve"
\tinput.target == "tests/unit_5.py"
}

deny contains {"rule": "cache.not_slow_failed", "msg": "failed outside slow"} if {
\tinput.outcome == "failed"
\tnot startswith(input.target, "tests/slow_")
}

queue contains {"rule": "cache.py_live", "msg": "live"} if {
\tendswith(input.target, "0.py")
\tcontains(input.target, "live")
}

deny contains {"rule": "cache.listed", "msg": "listed"} if {
	input.target in {"tests/live_9.py", "tests/slow_10.py"}
}
"""


def plan(n: int) -> list[dict[str, Any]]:
    return [
        {"target": f"tests/{('live', 'slow', 'unit')[i % 3]}_{i}.py",
         "markers": ["flaky"] if i % 11 == 0 else [],
         "outcome": "failed" if i % 4 == 0 else "passed", "ci": False}
        for i in range(n)
    ]  # fmt: skip


def classes(tests: Any, updates: list[dict[str, Any]]) -> int:
    """Distinct evaluations grouping asks: one per (outcome, answers) of the unmarked files,
    one per marked file."""
    unmarked = {
        (u["outcome"], tuple(answers(tests, u["target"]))) for u in updates if not u["markers"]
    }
    return len(unmarked) + sum(1 for u in updates if u["markers"])


def test_a_rule_singling_out_one_file_decides_it_alone_and_the_rest_share_evaluations(
    workspace: Callable[..., Path],
) -> None:
    root = workspace("", {"single.rego": SINGLE})
    engine = PolicyEngine.open(root)
    policy = engine.current
    assert engine.last_error is None and policy is not None
    assert not policy.target_blind and policy.target_tests is not None
    assert ("eq", ("tests/unit_5.py",)) in policy.target_tests
    updates = plan(60)
    calls = counting(policy)
    many = engine.decide_many(BASE, updates)
    assert calls[0] == classes(policy.target_tests, updates) < len(updates) // 2
    # exactly what each file is given alone, by a fresh engine (no memo, no grouping)
    assert many == one_by_one(root, updates)
    by_target = {u["target"]: d for u, d in zip(updates, many, strict=True)}
    assert [r.rule for r in by_target["tests/unit_5.py"].rules] == ["cache.one_file"]
    assert by_target["tests/unit_5.py"].result == "deny"
    assert by_target["tests/live_3.py"].result == "allow" and not by_target["tests/live_3.py"].rules
    assert [r.rule for r in by_target["tests/live_9.py"].rules] == ["cache.listed"]
    assert by_target["tests/live_30.py"].result == "queue"
    others = [d for t, d in by_target.items() if t != "tests/unit_5.py"]
    assert not any(r.rule == "cache.one_file" for d in others for r in d.rules)
    # a target that is not plain ASCII (a quote, a backslash, a non-ASCII letter) is
    # decided on its own, as rego-cpp reads it
    names = ('tests/unit_5.py"', "tests/unit_5.py\\", "tests/ünit_5.py", "tests/unit_5.py")
    odd = [{**updates[1], "target": t} for t in names]
    calls[0] = 0
    assert engine.decide_many(BASE, odd) == one_by_one(root, odd)
    assert calls[0] == 3


def test_a_cache_rule_edit_decides_the_next_plan_by_answers_in_the_daemon_and_from_disk(
    workspace: Callable[..., Path], tmp_path: Path
) -> None:
    """The daemon's case: the rule is edited to name another prefix; the new set's warm-up and
    the plan evaluate one input per answers, the answers are the new rule's, and a new process
    (the next CLI run) reads them back from the kept decisions without evaluating."""
    root = workspace("", {"serve.rego": LIVE.format(prefix="live").replace(
        '"target": input.target, ', "")})  # fmt: skip
    memo = tmp_path / "memo"
    engine = PolicyEngine.open(root, memo_dir=memo)
    engine.warm_on_install = True
    updates = plan(90)
    engine.decide_many(BASE, updates)
    engine.remember_serves(updates)
    (root / ".maestro/policy/serve.rego").write_text(
        LIVE.format(prefix="slow").replace('"target": input.target, ', "")
    )
    policy = engine.reload()
    assert engine.wait_warm(60)
    assert policy.target_tests == (("startswith", ("tests/slow_",)),)
    # the warm-up evaluated one input per answers (each evaluation is kept once)
    assert engine.warmed is not None and engine.warmed.decided == len(updates)
    assert policy.added == classes(policy.target_tests, updates) < len(updates) // 4
    calls = counting(policy)
    after = engine.decide_many(BASE, updates)
    assert calls[0] == 0
    assert after == one_by_one(root, updates)
    denied = {u["target"] for u, d in zip(updates, after, strict=True) if d.result == "deny"}
    assert {u["target"] for u in updates if u["target"].startswith("tests/slow_")} <= denied
    engine.save_memo()
    engine.close()
    again = PolicyEngine.open(root, memo_dir=memo)
    assert again.current is not None and again.current.digest == policy.digest
    fresh_calls = counting(again.current)
    assert again.decide_many(BASE, updates) == after
    assert fresh_calls[0] == 0


@pytest.mark.parametrize(
    ("text", "tests"),
    [
        ('x if startswith(input.target, "a/")', (("startswith", ("a/",)),)),
        ('x if { "b" != input.target }', (("eq", ("b",)),)),
        (
            'x if input.target == "b"\ny if input.target in ["c", "d",]',
            (("eq", ("b",)), ("in", ("c", "d"))),
        ),
        # a comment or a string naming target or input is no use of them
        (
            '# input.target whole: input\nx if { "input target"; endswith(input.target, "z") }',
            (("endswith", ("z",)),),
        ),
        ('x if input.outcome == "failed"', ()),
        ('x if { y := {"k": "target"}; y.k == "target" }', ()),
        # the input whole, the target otherwise, a name of those builtins defined or imported
        ('x if { y := input; startswith(y.target, "a") }', None),
        ('x contains {"target": input.target} if startswith(input.target, "a")', None),
        ('x if startswith(input.target, concat("", ["a"]))', None),
        ('x if { data.y with input.target as "a" }', None),
        ('x if input.target == "a" + "b"', None),
        ('x if "a" == input.target + "b"', None),
        ('x if { y := input.target; y == "a" }', None),
        ('x if { some c in input.target; c == "a" }', None),
        ('x if { {input.target: 1}[k]; k == "a" }', None),
        ('x if regex.match("^a", input.target)', None),
        ('startswith(a, b) := true\nx if startswith(input.target, "a")', None),
        ('import data.lib.contains\nx if contains(input.target, "a")', None),
        ('import input.target\nx if startswith(target, "a")', None),
        ('x if startswith(input.target.more, "a")', None),
        ("x if data.target == 1", None),
        # a literal with an escape (rego-cpp compares it as written) or not ASCII
        ('x if "a \\"b" == input.target', None),
        ('x if endswith(input.target, "\\u00fc.py")', None),
        ('x if endswith(input.target, "ü.py")', None),
    ],
)
def test_what_is_read_as_a_string_test(text: str, tests: Any) -> None:
    assert target_tests([f"package maestro.workspace.cache\n\nimport rego.v1\n\n{text}\n"]) == tests
