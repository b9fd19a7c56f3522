"""`maestro policy test`: the workspace's policy tests.

Two kinds, both in ``.maestro/policy/``:

- ``*_test.yaml``: decision cases, a list of ``{name, point, input, expect: {result, rules}}``
  evaluated by the real engine (composition, annotations and fail modes included).
- ``*_test.rego``: OPA's convention (rules named ``test_*`` that must be true, usually with
  ``with input as``). They run in a child process: rego-cpp aborts the process on some
  ``with`` forms it does not support, and an abort must not take the CLI (or a daemon) down.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from maestro.errors import PolicyError
from maestro.policy.engine import PolicyEngine, PolicySet
from maestro.policy.model import INPUTS
from maestro.policy.rego import Compiled
from maestro.policy.sources import WORKSPACE_DIR, load, workspace_modules

_TEST_RULE = re.compile(r"^(test_[A-Za-z0-9_]*)\b", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class PolicyTest:
    name: str
    file: str
    passed: bool
    error: str | None = None


def run_tests(root: Path) -> list[PolicyTest]:
    return run_cases(root) + run_rego_tests(root)


def run_cases(root: Path) -> list[PolicyTest]:
    folder = root / WORKSPACE_DIR
    files = sorted(folder.glob("*_test.yaml")) if folder.is_dir() else []
    if not files:
        return []
    engine = PolicyEngine.open(root)
    if engine.last_error is not None:
        raise engine.last_error
    out: list[PolicyTest] = []
    for path in files:
        rel = f"{WORKSPACE_DIR}/{path.name}"
        try:
            cases = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        except (OSError, yaml.YAMLError) as exc:
            raise PolicyError(f"cannot read policy tests: {exc}", where=rel) from None
        for i, case in enumerate(cases if isinstance(cases, list) else []):
            out.append(_case(engine, rel, i, case))
    return out


def _case(engine: PolicyEngine, file: str, index: int, case: Any) -> PolicyTest:
    name = str(case.get("name") or f"case {index + 1}") if isinstance(case, dict) else str(index)
    if not isinstance(case, dict) or case.get("point") not in INPUTS:
        return PolicyTest(name, file, False, "a case needs point: run|select|cache|...")
    model = INPUTS[case["point"]]
    raw = dict(case.get("input") or {})
    if case["point"] == "run":
        raw.setdefault("now_ms", 0)
    try:
        decision = engine.decide(model.model_validate(raw))
    except ValidationError as exc:
        return PolicyTest(name, file, False, f"input: {exc.errors()[0]['msg']}")
    expect = case.get("expect") or {}
    problems: list[str] = []
    if "result" in expect and decision.result != expect["result"]:
        problems.append(f"result {decision.result}, expected {expect['result']}")
    fired = {r.rule for r in decision.rules}
    for rule in expect.get("rules", []):
        if rule not in fired:
            problems.append(f"rule {rule} did not fire (fired: {sorted(fired) or 'none'})")
    if "retry_after_ms" in expect and decision.retry_after_ms != expect["retry_after_ms"]:
        problems.append(f"retry_after_ms {decision.retry_after_ms}")
    return PolicyTest(name, file, not problems, "; ".join(problems) or None)


def run_rego_tests(root: Path) -> list[PolicyTest]:
    if not workspace_modules(root, tests=True):
        return []
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "maestro.policy.testing", str(root)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    try:
        rows = json.loads(proc.stdout.strip().splitlines()[-1])
        return [PolicyTest(**row) for row in rows]
    except (ValueError, IndexError, TypeError):
        why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return [
            PolicyTest(
                "*_test.rego", WORKSPACE_DIR, False,
                f"the Rego test run aborted (exit {proc.returncode}): {why}",
            )
        ]  # fmt: skip


def _rego_tests_here(root: Path) -> list[PolicyTest]:
    sources = load(root)
    tests = workspace_modules(root, tests=True)
    policy = PolicySet.compile(sources)  # the policy under test must compile on its own
    modules = {m.name: m.text for m in sources.modules}
    modules.update({m.name: m.text for m in tests})
    queries: dict[str, str] = {}
    files: dict[str, str] = {}
    for m in tests:
        for name in dict.fromkeys(_TEST_RULE.findall(m.text)):
            ref = f"data.{m.package}.{name}"
            queries[ref] = ref
            files[ref] = m.name
    compiled = Compiled(modules, policy.data, queries)
    out: list[PolicyTest] = []
    for ref in queries:
        try:
            value = compiled.query(ref, {})
        except PolicyError as exc:
            out.append(PolicyTest(ref, files[ref], False, exc.message))
            continue
        out.append(PolicyTest(ref, files[ref], value is True))
    return out


if __name__ == "__main__":
    try:
        found = _rego_tests_here(Path(sys.argv[1]))
    except PolicyError as exc:
        found = [PolicyTest("compile", "policy", False, str(exc))]
    sys.stdout.write(json.dumps([asdict(t) for t in found]) + "\n")
