"""Features per (change, test): what the model sees. Documented in docs/model.md.

The unit of prediction is one test (a pytest node id); graph features come from its test file
(the build graph's target). `History` is the running state built from past runs (oldest first):
`features()` reads it *before* a run, `observe()` folds the run's outcomes in afterwards, so a
feature never sees the outcome it predicts.
"""

from __future__ import annotations

import ast
import difflib
import math
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from maestro.model.telemetry import ChangeSet, TestResult
from maestro.nodeids import file_of

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

FEATURES: tuple[str, ...] = (
    "distance",  # graph hops from the test file to the nearest changed file (FAR if not impacted)
    "changed_in_closure",  # changed files in the test file's closure
    "test_file_changed",  # 1 if the test file itself is in the change set
    "fail_rate",  # time-decayed failure rate of the test
    "recent_failures",  # failures among the test's last RECENT runs
    "last_failed",  # 1 if the test's previous outcome was a failure
    "cofail_file",  # max over changed files f: P(test failed | f changed), smoothed
    "cofail_symbol",  # same for changed functions/classes
    "name_match",  # 1 if a changed function/class name appears in the test's node id
    "log_duration",  # log1p(mean duration in ms)
    "hours_since_failure",  # hours since the test last failed (capped; never = the cap)
    "log_runs",  # log1p(number of runs of the test seen)
    "executed_change",  # 1 if the test's last execution record holds a changed function
    "has_record",  # 1 if the test has an execution record at all (else executed_change is 0)
)

FAR = 10  # distance of a test file the change does not reach
RECENT = 5
HOURS_CAP = 24.0 * 30
HALF_LIFE_DAYS = 7.0
MIN_NAME = 4  # shorter changed names ("get", "at") match too many tests by accident


@dataclass(slots=True)
class _TestState:
    fail_w: float = 0.0
    total_w: float = 0.0
    t_last: float = 0.0
    runs: int = 0
    mean_ms: float = 0.0
    last_fail: float | None = None
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=RECENT))


@dataclass(slots=True)
class History:
    """Running per-test and per-(changed item, test) statistics."""

    half_life_days: float = HALF_LIFE_DAYS
    tests: dict[str, _TestState] = field(default_factory=dict)
    # (changed file or symbol, test) -> [failures, runs]
    cofail: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def _decayed(self, s: _TestState, now: float) -> tuple[float, float]:
        if s.total_w == 0.0:
            return 0.0, 0.0
        k = 0.5 ** (max(0.0, now - s.t_last) / (self.half_life_days * 86400.0))
        return s.fail_w * k, s.total_w * k

    def fail_rate(self, test: str, now: float) -> float:
        s = self.tests.get(test)
        if s is None:
            return 0.0
        f, t = self._decayed(s, now)
        return f / (t + 1.0)  # +1: one pseudo-pass, so one failure out of one run is not 1.0

    def observe(self, change: ChangeSet, results: Iterable[TestResult], now: float) -> None:
        keys = [*(("f", f) for f in change.files), *(("s", s) for s in change.symbols)]
        for r in results:
            if r.outcome == "skipped":
                continue
            failed = r.outcome == "failed"
            s = self.tests.get(r.test)
            if s is None:
                s = self.tests[r.test] = _TestState(t_last=now)
            f, t = self._decayed(s, now)
            s.fail_w, s.total_w, s.t_last = f + failed, t + 1.0, now
            s.mean_ms += (r.duration * 1000.0 - s.mean_ms) / (s.runs + 1)
            s.runs += 1
            s.recent.append(failed)
            if failed:
                s.last_fail = now
            for kind, item in keys:
                cell = self.cofail.setdefault((f"{kind}:{item}", r.test), [0, 0])
                cell[0] += failed
                cell[1] += 1

    def features(
        self, change: ChangeSet, tests: Sequence[str], now: float
    ) -> npt.NDArray[np.float64]:
        """One row per test, columns in FEATURES order."""
        import numpy as np  # only ranking needs it: a daemon that never ranks never loads it

        changed = set(change.files)
        names = _name_keys(change.symbols)
        rows = np.zeros((len(tests), len(FEATURES)), dtype=np.float64)
        for i, test in enumerate(tests):
            target = file_of(test)
            s = self.tests.get(test)
            rows[i, 0] = change.distances.get(target, FAR)
            rows[i, 1] = change.closure_hits.get(target, 0)
            rows[i, 2] = float(target in changed)
            rows[i, 3] = self.fail_rate(test, now)
            if s is not None:
                rows[i, 4] = sum(s.recent)
                rows[i, 5] = float(bool(s.recent) and s.recent[-1])
                rows[i, 9] = math.log1p(s.mean_ms)
                rows[i, 10] = (
                    HOURS_CAP
                    if s.last_fail is None
                    else min(HOURS_CAP, (now - s.last_fail) / 3600.0)
                )
                rows[i, 11] = math.log1p(s.runs)
            else:
                rows[i, 10] = HOURS_CAP
            rows[i, 6] = max((self._cofail("f:" + f, test) for f in change.files), default=0.0)
            rows[i, 7] = max((self._cofail("s:" + x, test) for x in change.symbols), default=0.0)
            rows[i, 8] = float(_name_match(names, test))
            ran = change.executed.get(test)
            rows[i, 12] = float(ran or 0)
            rows[i, 13] = float(ran is not None)
        return rows

    def _cofail(self, key: str, test: str) -> float:
        cell = self.cofail.get((key, test))
        if cell is None:
            return 0.0
        return cell[0] / (cell[1] + 1.0)


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _name_keys(symbols: Iterable[str]) -> set[str]:
    keys = set()
    for sym in symbols:
        for part in sym.split("."):
            n = _norm(part)
            if len(n) >= MIN_NAME and not part.startswith("__"):
                keys.add(n)
    return keys


def _name_match(keys: set[str], test: str) -> bool:
    if not keys:
        return False
    _, _, name = test.partition("::")
    flat = _norm(name)
    return any(k in flat for k in keys)


# -- change sets -----------------------------------------------------------------------------------


def changed_symbols(old: str, new: str) -> set[str]:
    """Qualified names of the functions/classes whose lines differ between `old` and `new`.

    Lines are located in the *new* text (and, for deletions, in the old one); a change outside
    any function or class counts as the module (no symbol). Text that does not parse yields none.
    """
    out: set[str] = set()
    old_lines, new_lines = old.splitlines(), new.splitlines()
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    touched_new: set[int] = set()
    touched_old: set[int] = set()
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        touched_old.update(range(i1 + 1, max(i2, i1 + 1) + 1))
        touched_new.update(range(j1 + 1, max(j2, j1 + 1) + 1))
    for text, lines in ((new, touched_new), (old, touched_old)):
        spans = _symbol_spans(text)
        for line in lines:
            best: tuple[int, str] | None = None
            for start, end, name in spans:
                if start <= line <= end and (best is None or start >= best[0]):
                    best = (start, name)
            if best is not None:
                out.add(best[1])
    return out


def _symbol_spans(text: str) -> list[tuple[int, int, str]]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    spans: list[tuple[int, int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = prefix + child.name
                start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                spans.append((start, child.end_lineno or child.lineno, name))
                visit(child, name + ".")

    visit(tree, "")
    return spans


def change_from_graph(
    graph: object,
    paths: Sequence[str],
    symbols: Iterable[str] = (),
    executed: Mapping[str, int] | None = None,
) -> ChangeSet:
    """A ChangeSet for `paths` with distances and closure counts from a `BuildGraph`."""
    from maestro.graph.build import BuildGraph, Change

    assert isinstance(graph, BuildGraph)
    distances: dict[str, int] = {}
    for impact in graph.impacted([Change(p) for p in paths]):
        if impact.kind == "test":
            distances[impact.target] = impact.distance
    changed = set(paths)
    hits = {t: len(changed & graph.closure(t)) or 1 for t in distances}
    return ChangeSet(tuple(paths), tuple(sorted(symbols)), distances, hits, dict(executed or {}))
