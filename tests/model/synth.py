"""A synthetic project: tests that fail when the function they are named after changes."""

from __future__ import annotations

import random

from maestro.model.telemetry import ChangeSet, TestResult

FUNCS = [f"func{c}" for c in "abcdefghijklmnop"]
TESTS = [
    f"tests/test_{i % 2}.py::Test{f.title()}::test_{k}"
    for i, f in enumerate(FUNCS)
    for k in range(4)
]


def synthetic_runs(n: int, seed: int = 0) -> list[tuple[float, ChangeSet, list[TestResult]]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        func = rng.choice(FUNCS)
        change = ChangeSet(
            ("pkg/mod.py",),
            (func,),
            {"tests/test_0.py": 1, "tests/test_1.py": 2},
            {"tests/test_0.py": 1, "tests/test_1.py": 1},
        )
        results = []
        for t in TESTS:
            hit = f"Test{func.title()}" in t
            failed = (hit and rng.random() < 0.8) or rng.random() < 0.01
            results.append(
                TestResult(t, "failed" if failed else "passed", rng.uniform(0.001, 0.05))
            )
        out.append((1_000_000.0 + 3600.0 * i, change, results))
    return out
