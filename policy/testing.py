"""`maestro policy test`: the workspace's Rego unit tests, OPA's convention (``*_test.rego``
files, rules named ``test_*`` that must be true), run against the policy in force."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from maestro.errors import PolicyError
from maestro.policy.engine import PolicySet
from maestro.policy.rego import Compiled
from maestro.policy.sources import load, workspace_modules

_TEST_RULE = re.compile(r"^(test_[A-Za-z0-9_]*)\b", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class RegoTest:
    name: str  # data.<package>.<rule>
    file: str
    passed: bool
    error: str | None = None


def run_tests(root: Path) -> list[RegoTest]:
    sources = load(root)
    tests = workspace_modules(root, tests=True)
    if not tests:
        return []
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
    out: list[RegoTest] = []
    for ref in queries:
        try:
            value = compiled.query(ref, b"{}")
        except PolicyError as exc:
            out.append(RegoTest(ref, files[ref], False, exc.message))
            continue
        out.append(RegoTest(ref, files[ref], value is True))
    return out
