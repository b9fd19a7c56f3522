"""Training sets from telemetry: replay runs oldest first through a `History`, so each row's
features are computed from strictly earlier runs; and the held-out evaluation used by
`maestro model eval` and bench/bench_model.py."""

from __future__ import annotations

import csv
import random
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import TextIO

import numpy as np
import numpy.typing as npt

from maestro.model.features import FEATURES, History
from maestro.model.metrics import apfd, selection_score, top_fraction
from maestro.model.telemetry import Run
from maestro.model.train import Predictor, log_loss
from maestro.nodeids import file_of


@dataclass
class Dataset:
    X: npt.NDArray[np.float64]
    y: npt.NDArray[np.int_]
    run_index: npt.NDArray[np.int_]  # which run (position in the replayed list) each row is from
    tests: list[str]


def replay(runs: Iterable[Run], history: History | None = None) -> tuple[Dataset, History]:
    """Features + labels for every (run, test) that passed or failed (skips carry no label)."""
    hist = history or History()
    blocks: list[npt.NDArray[np.float64]] = []
    labels: list[int] = []
    index: list[int] = []
    names: list[str] = []
    for i, run in enumerate(runs):
        results = [r for r in run.results if r.outcome != "skipped"]
        tests = [r.test for r in results]
        if tests:
            blocks.append(hist.features(run.change, tests, run.ts))
            labels += [int(r.outcome == "failed") for r in results]
            index += [i] * len(tests)
            names += tests
        hist.observe(run.change, run.results, run.ts)
    X = np.vstack(blocks) if blocks else np.zeros((0, len(FEATURES)))
    return Dataset(
        X, np.asarray(labels, dtype=np.int_), np.asarray(index, dtype=np.int_), names
    ), hist


def write_csv(out: TextIO, data: Dataset, runs: Sequence[Run]) -> int:
    writer = csv.writer(out)
    writer.writerow(["run_id", "ts", "test", *FEATURES, "failed"])
    for row, label, ri, test in zip(data.X, data.y, data.run_index, data.tests, strict=True):
        run = runs[int(ri)]
        writer.writerow([run.id, f"{run.ts:.3f}", test, *(f"{v:.6g}" for v in row), int(label)])
    return len(data.y)


def write_parquet(path: str, data: Dataset, runs: Sequence[Run]) -> int:
    """Only when pyarrow is importable (it is not a dependency)."""
    import pyarrow as pa  # type: ignore[import-not-found, unused-ignore]
    import pyarrow.parquet as pq  # type: ignore[import-not-found, unused-ignore]

    cols: dict[str, object] = {
        "run_id": [runs[int(i)].id for i in data.run_index],
        "ts": [runs[int(i)].ts for i in data.run_index],
        "test": data.tests,
    }
    for j, name in enumerate(FEATURES):
        cols[name] = data.X[:, j].tolist()
    cols["failed"] = data.y.tolist()
    pq.write_table(pa.table(cols), path)
    return len(data.y)


# -- held-out evaluation ---------------------------------------------------------------------------


# Evaluation fields whose name in `maestro model eval --json` and the bench reports differs.
_JSON_NAMES = {
    "recall_top": "recall_top_fraction",
    "recall_top_mean": "recall_top_fraction_mean_per_run",
    "runs_all_caught": "runs_all_failures_caught",
    "files_recall_top": "files_recall_top_fraction",
    "files_node_recall_top": "files_node_recall_top_fraction",
    "files_cost_top": "files_cost_top_fraction",
}


@dataclass
class Evaluation:
    runs: int = 0  # held-out runs
    runs_with_failures: int = 0
    rows: int = 0
    failures: int = 0
    apfd: dict[str, float] = field(default_factory=dict)  # strategy -> mean APFD
    recall_top: dict[str, float] = field(default_factory=dict)  # strategy -> pooled recall
    recall_top_mean: dict[str, float] = field(default_factory=dict)  # mean per-run recall
    runs_all_caught: dict[str, float] = field(default_factory=dict)  # share of runs, all caught
    # The daemon runs, ranks and skips whole test files: the same budget over files (each scored
    # by its most likely node), as the share of failing files and of failing nodes it catches,
    # and the share of the impacted nodes it runs.
    files_recall_top: dict[str, float] = field(default_factory=dict)  # failing files caught
    files_node_recall_top: dict[str, float] = field(default_factory=dict)  # failing nodes caught
    files_cost_top: dict[str, float] = field(default_factory=dict)  # mean share of nodes run
    failing_files: int = 0
    fraction: float = 1 / 3
    log_loss: float = float("nan")
    brier: float = float("nan")

    def as_dict(self) -> dict[str, object]:
        """Every field, in declaration order, under its JSON name."""
        return {_JSON_NAMES.get(f.name, f.name): getattr(self, f.name) for f in fields(self)}


def evaluate(
    predictor: Predictor,
    data: Dataset,
    *,
    fraction: float = 1 / 3,
    seed: int = 0,
    random_orders: int = 5,
) -> Evaluation:
    """APFD and top-`fraction` recall of three orderings on each run of `data`:
    the model, a random order (mean of `random_orders` shuffles), and the decayed historical
    failure rate (ties broken by duration, like the model)."""
    rng = random.Random(seed)
    p_all = predictor.predict(data.X)
    rate_col = FEATURES.index("fail_rate")
    dur_col = FEATURES.index("log_duration")
    ev = Evaluation(fraction=fraction, rows=len(data.y), failures=int(data.y.sum()))
    ev.log_loss = log_loss(p_all, data.y)
    ev.brier = float(np.mean((p_all - data.y) ** 2)) if len(data.y) else float("nan")
    apfds: dict[str, list[float]] = {"model": [], "history": [], "random": []}
    caught: dict[str, float] = dict.fromkeys(apfds, 0.0)
    per_run: dict[str, list[float]] = {k: [] for k in apfds}
    all_caught: dict[str, list[float]] = {k: [] for k in apfds}
    total_fail = 0
    f_caught: dict[str, float] = dict.fromkeys(apfds, 0.0)
    f_nodes: dict[str, float] = dict.fromkeys(apfds, 0.0)
    f_cost: dict[str, list[float]] = {k: [] for k in apfds}
    runs = sorted(set(int(i) for i in data.run_index))
    ev.runs = len(runs)
    for r in runs:
        rows = np.nonzero(data.run_index == r)[0]
        tests = [data.tests[i] for i in rows]
        failing = {data.tests[i] for i in rows if data.y[i]}
        if not failing:
            continue
        ev.runs_with_failures += 1
        total_fail += len(failing)
        dur = data.X[rows, dur_col]
        orders: dict[str, list[list[str]]] = {}
        p = p_all[rows]
        h = data.X[rows, rate_col]
        orders["model"] = [_order(tests, p, dur)]
        orders["history"] = [_order(tests, h, dur)]
        shuffles = []
        for _ in range(random_orders):
            o = list(tests)
            rng.shuffle(o)
            shuffles.append(o)
        orders["random"] = shuffles
        for name, os_ in orders.items():
            a = [apfd(o, failing) for o in os_]
            apfds[name].append(statistics.fmean(x for x in a if x is not None))
            recs = []
            for o in os_:
                score = selection_score(top_fraction(o, fraction), failing)
                recs.append(score.caught)
            mean_caught = statistics.fmean(recs)
            caught[name] += mean_caught
            per_run[name].append(mean_caught / len(failing))
            all_caught[name].append(float(mean_caught >= len(failing)))
        by_file = _files(tests, {"model": p, "history": h}, dur)
        failing_files = {file_of(t) for t in failing}
        ev.failing_files += len(failing_files)
        file_orders = {k: [order] for k, order in by_file.items()}
        file_orders["random"] = []
        for _ in range(random_orders):
            o = sorted(by_file["model"])
            rng.shuffle(o)
            file_orders["random"].append(o)
        size = Counter(file_of(t) for t in tests)
        fail_in = Counter(file_of(t) for t in failing)
        for name, os_ in file_orders.items():
            tops = [top_fraction(o, fraction) for o in os_]
            f_caught[name] += statistics.fmean(len(failing_files.intersection(t)) for t in tops)
            f_nodes[name] += statistics.fmean(sum(fail_in[f] for f in t) for t in tops)
            run_share = statistics.fmean(sum(size[f] for f in t) for t in tops) / len(tests)
            f_cost[name].append(run_share)
    for name in apfds:
        if apfds[name]:
            ev.apfd[name] = statistics.fmean(apfds[name])
            ev.recall_top[name] = caught[name] / total_fail if total_fail else float("nan")
            ev.recall_top_mean[name] = statistics.fmean(per_run[name])
            ev.runs_all_caught[name] = statistics.fmean(all_caught[name])
            ev.files_recall_top[name] = f_caught[name] / ev.failing_files
            ev.files_node_recall_top[name] = f_nodes[name] / total_fail
            ev.files_cost_top[name] = statistics.fmean(f_cost[name])
    return ev


def _files(
    tests: Sequence[str],
    scores: dict[str, npt.NDArray[np.float64]],
    dur: npt.NDArray[np.float64],
) -> dict[str, list[str]]:
    """Per strategy, the run's test files, most likely first: a file scores its highest node
    (as `select_files` does), ties to the faster file, then the path."""
    files = sorted({file_of(t) for t in tests})
    out: dict[str, list[str]] = {}
    for name, score in scores.items():
        best: dict[str, float] = {}
        cost: dict[str, float] = dict.fromkeys(files, 0.0)
        for i, t in enumerate(tests):
            f = file_of(t)
            best[f] = max(best.get(f, -1.0), float(score[i]))
            cost[f] += float(np.expm1(dur[i])) if dur[i] > 0 else 0.0
        out[name] = sorted(files, key=lambda f: (-best[f], cost[f], f))
    return out


def _order(
    tests: Sequence[str], score: npt.NDArray[np.float64], dur: npt.NDArray[np.float64]
) -> list[str]:
    """Highest score first; ties to the faster test, then the node id (as `rank` does)."""
    return [
        tests[i] for i in sorted(range(len(tests)), key=lambda i: (-score[i], dur[i], tests[i]))
    ]
