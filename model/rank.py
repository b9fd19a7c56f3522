"""Uses of the model: fail-first ordering and predictive selection (with reasons for skips).

Both are pure functions of (tests, change, history, predictor); the daemon owns the history (built
from telemetry) and the predictor (loaded from the model store) and calls these per run.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from maestro.model.features import FAR, FEATURES, History
from maestro.model.telemetry import ChangeSet
from maestro.model.train import Predictor, heuristic_scores
from maestro.nodeids import file_of

_COL = {name: i for i, name in enumerate(FEATURES)}


@dataclass(frozen=True, slots=True)
class Ranked:
    test: str
    probability: float
    reasons: tuple[str, ...] = field(default=())


def rank(
    tests: Sequence[str],
    change: ChangeSet,
    history: History,
    predictor: Predictor | None = None,
    *,
    now: float | None = None,
) -> list[Ranked]:
    """Tests ordered most-likely-to-fail first, with P(fail) and the features that drove it.

    Without a predictor the heuristic scores are used. Ties (equal probability) go to the faster
    test first, then node id, so the order is deterministic.
    """
    if not tests:
        return []
    t = time.time() if now is None else now
    X = history.features(change, list(tests), t)
    p = predictor.predict(X) if predictor is not None else heuristic_scores(X)
    dur = X[:, _COL["log_duration"]]
    order = sorted(range(len(tests)), key=lambda i: (-p[i], dur[i], tests[i]))
    return [Ranked(tests[i], float(p[i]), _reasons(X[i])) for i in order]


def _reasons(row: Sequence[float]) -> tuple[str, ...]:
    out: list[str] = []
    if row[_COL["test_file_changed"]]:
        out.append("test file changed")
    d = int(row[_COL["distance"]])
    out.append("not reached by the change" if d >= FAR else f"{d} hop(s) from the change")
    if row[_COL["executed_change"]]:
        out.append("executed a changed function")
    if row[_COL["name_match"]]:
        out.append("names a changed function")
    if row[_COL["cofail_symbol"]] > 0:
        out.append(f"failed with this function changed ({row[_COL['cofail_symbol']]:.0%})")
    elif row[_COL["cofail_file"]] > 0:
        out.append(f"failed with this file changed ({row[_COL['cofail_file']]:.0%})")
    rate = row[_COL["fail_rate"]]
    if rate > 0:
        out.append(f"recent failure rate {rate:.0%}")
    elif row[_COL["log_runs"]] > 0:
        out.append("no recent failure")
    else:
        out.append("no history")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Skipped:
    test: str
    probability: float
    reason: str


@dataclass(frozen=True, slots=True)
class Selection:
    run: list[Ranked]
    skipped: list[Skipped]
    threshold: float

    def summary(self) -> str:
        return (
            f"predictive mode: running {len(self.run)} test(s), skipping {len(self.skipped)} "
            f"with P(fail) < {self.threshold:g}"
        )


def select(
    ranked: Sequence[Ranked],
    threshold: float,
    *,
    always_run: Sequence[str] = (),
    changed_files: Sequence[str] = (),
) -> Selection:
    """Predictive mode: keep tests at or above `threshold`; say why each other one is skipped.

    Tests in `always_run`, and tests whose own file changed, are never skipped.
    """
    keep = set(always_run)
    changed = set(changed_files)
    run: list[Ranked] = []
    skipped: list[Skipped] = []
    for r in ranked:
        if r.probability >= threshold or r.test in keep or file_of(r.test) in changed:
            run.append(r)
        else:
            why = f"P(fail) {r.probability:.3f} < {threshold:g}: " + "; ".join(r.reasons)
            skipped.append(Skipped(r.test, r.probability, why))
    return Selection(run, skipped, threshold)


def threshold_for_recall(
    probabilities: Sequence[Sequence[float]],
    failing_masks: Sequence[Sequence[bool]],
    target_recall: float = 0.95,
) -> float:
    """The largest threshold whose recall over held-out runs is >= target (for tuning `select`)."""
    pairs = sorted(
        ((p, f) for ps, fs in zip(probabilities, failing_masks, strict=True)
         for p, f in zip(ps, fs, strict=True)),
        key=lambda x: -x[0],
    )  # fmt: skip
    total = sum(f for _, f in pairs)
    if total == 0:
        return 1.0
    caught = 0
    for p, f in pairs:
        caught += f
        if caught / total >= target_recall:
            return p
    return 0.0


@dataclass(frozen=True, slots=True)
class FileDecision:
    """Predictive mode for one test file: whether it runs, its P(fail), and why."""

    target: str
    probability: float
    runs: bool
    reason: str


def known_nodes(history: History, targets: Iterable[str]) -> dict[str, list[str]]:
    """The node ids the history knows in each of `targets` (files it knows nothing of are
    absent), in the history's order."""
    wanted = set(targets)
    nodes: dict[str, list[str]] = {}
    for node in history.tests:
        t = file_of(node)
        if t in wanted:
            nodes.setdefault(t, []).append(node)
    return nodes


def select_files(
    targets: Sequence[str],
    change: ChangeSet,
    history: History,
    threshold: float,
    predictor: Predictor | None = None,
    *,
    failed_last: Sequence[str] = (),
    now: float | None = None,
) -> list[FileDecision]:
    """Predictive mode over test files (the daemon's unit of execution), conservatively.

    A file scores the highest P(fail) of the nodes the history knows in it. It is never skipped
    when it failed last time (per `failed_last` or any node's previous outcome), when it has no
    history (nothing to predict from), or when the file itself changed; otherwise it runs only
    at or above `threshold`, and a skip says the probability and the top features behind it.
    """
    nodes = known_nodes(history, targets)
    best: dict[str, Ranked] = {}
    for r in rank([n for ns in nodes.values() for n in ns], change, history, predictor, now=now):
        best.setdefault(file_of(r.test), r)  # most likely first: the first one is the max
    failed = set(failed_last)
    changed = set(change.files)
    out: list[FileDecision] = []
    for t in targets:
        top = best.get(t)
        p = top.probability if top is not None else 1.0
        if t in failed or any(_failed_last(history, n) for n in nodes.get(t, ())):
            out.append(FileDecision(t, p, True, "failed last time: never skipped"))
        elif top is None:
            out.append(FileDecision(t, p, True, "no history: never skipped"))
        elif t in changed:
            out.append(FileDecision(t, p, True, "test file changed: never skipped"))
        elif p >= threshold:
            why = f"P(fail) {p:.3f} >= {threshold:g}: " + "; ".join(top.reasons)
            out.append(FileDecision(t, p, True, why))
        else:
            why = f"P(fail) {p:.3f} < {threshold:g}: " + "; ".join(top.reasons)
            out.append(FileDecision(t, p, False, why))
    return out


def _failed_last(history: History, node: str) -> bool:
    recent = history.tests[node].recent
    return bool(recent) and recent[-1]


def select_tests(
    files: Mapping[str, Sequence[str]],
    change: ChangeSet,
    history: History,
    threshold: float,
    predictor: Predictor | None = None,
    *,
    changed_files: Sequence[str] = (),
    now: float | None = None,
) -> dict[str, list[Skipped]]:
    """Predictive mode inside the files that run: per file, the tests of `files[file]` it skips.

    A test is skipped only below `threshold`, never when it failed last time, has no history or
    its file changed; and a file keeps all its tests rather than none (it was chosen to run).
    """
    ranked = rank([n for ns in files.values() for n in ns], change, history, predictor, now=now)
    keep = [r.test for r in ranked if r.test not in history.tests or _failed_last(history, r.test)]
    chosen = select(ranked, threshold, always_run=keep, changed_files=changed_files)
    by_file: dict[str, list[Skipped]] = {}
    for skipped in chosen.skipped:
        by_file.setdefault(file_of(skipped.test), []).append(skipped)
    return {f: s for f, s in by_file.items() if len(s) < len(set(files[f]))}
