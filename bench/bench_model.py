"""Speculation model evaluation: fail-first ordering and predictive selection on mutants.

For more-itertools and requests (sdists from PyPI, the venvs that bench/bench_test_cache.py builds
under .bench/testcache/), this bench

1. runs the suite once with a small recording plugin (per-test outcome and duration) and
   deselects, for every later run alike, the tests that fail here (network, sandbox) or take
   longer than --slow seconds (bounded runtime on a 2-core shared machine);
2. generates mutants (one operator/constant/return swap in a function of a source file: each
   mutant is one change), asks `BuildGraph.impacted` which test files it impacts, runs those files
   (file granularity: one pytest process per mutant) and records each test's outcome. Results are
   cached in .bench/model/<project>/mutants.jsonl, so a rerun only runs new mutants;
3. replays the mutants in order through `maestro.model` (telemetry -> features -> history), trains
   on the first part and evaluates on the held-out rest: APFD of the model ordering vs random order
   vs ordering by decayed historical failure rate, and recall of failing tests when running only
   the top third of impacted tests.

    .venv/bin/python -m bench.bench_model [--mutants 150] [--only more-itertools] [--write]
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.bench_test_cache import PROJECTS as CACHE_PROJECTS
from bench.bench_test_cache import prepare
from bench.common import BENCH_DIR, REPO, fetch_sdist, git_rev, machine, table, today

WORK = BENCH_DIR / "model"
RUN_TIMEOUT_S = 120
TEST_TIMEOUT_S = 5

# A stdlib-only pytest plugin: one JSON line per test (outcome over all phases, duration), and a
# per-test alarm so that a mutant that loops forever fails that test instead of hanging the run.
PLUGIN = r"""
import json, os, signal, time
import pytest

_OUT = open(os.environ["MAESTRO_BENCH_OUT"], "a", buffering=1)
_LIMIT = float(os.environ.get("MAESTRO_BENCH_TEST_TIMEOUT", "5"))
_STATE = {}


class BenchTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise BenchTimeout("test exceeded %ss" % _LIMIT)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _STATE[item.nodeid] = ["passed", 0.0]
    try:
        yield
    finally:
        outcome, duration = _STATE.pop(item.nodeid)
        row = {"test": item.nodeid, "outcome": outcome, "duration": duration}
        _OUT.write(json.dumps(row) + "\n")


# The alarm covers the test's call only: raised inside pytest's own reporting hooks it aborted
# the whole session (INTERNALERROR), leaving every later test unreported.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, _LIMIT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def pytest_runtest_logreport(report):
    state = _STATE.get(report.nodeid)
    if state is None:
        return
    state[1] += report.duration
    if report.failed:
        state[0] = "failed"
    elif report.skipped and state[0] == "passed" and report.when != "teardown":
        state[0] = "skipped"
"""


@dataclass(frozen=True)
class Project:
    name: str
    sources: tuple[str, ...]  # files to mutate (workspace-relative)


PROJECTS = {
    "more-itertools": Project(
        "more-itertools", ("more_itertools/more.py", "more_itertools/recipes.py")
    ),
    "requests": Project(
        "requests",
        tuple(
            f"src/requests/{n}.py"
            for n in ("utils", "models", "sessions", "cookies", "structures", "auth", "adapters")
        ),
    ),
}


# -- running the suite -----------------------------------------------------------------------------


def own_tree(project: Project) -> tuple[Path, Path]:
    """(our copy of the sources, the venv tree whose interpreter runs them).

    Mutants edit library sources, which must never happen under another bench's feet: the
    sources are copied to .bench/model/<project>/tree (re-synced from the pristine sdist at each
    start), and run with bench_test_cache's venv (read only) with the copy first on PYTHONPATH,
    ahead of that venv's editable install of the original tree.
    """
    spec = next(p for p in CACHE_PROJECTS if p.name == project.name)
    venv_tree = prepare(spec)
    pristine = fetch_sdist(spec.name, spec.spec)
    tree = WORK / project.name / "tree"
    if not (tree / "PKG-INFO").exists():
        shutil.rmtree(tree, ignore_errors=True)
        shutil.copytree(pristine, tree)
    for rel in project.sources:  # undo any mutant an earlier, killed run left behind
        shutil.copyfile(pristine / rel, tree / rel)
    return tree, venv_tree


def run_tests(
    tree: Path,
    files: list[str],
    deselect: list[str],
    out: Path,
    timeout: float = RUN_TIMEOUT_S,
    venv_tree: Path | None = None,
) -> tuple[dict[str, tuple[str, float]], float, bool]:
    """Run `files` in one pytest process; return ({nodeid: (outcome, seconds)}, wall, timed_out)."""
    plugin_dir = WORK / "plugin"
    plugin_dir.mkdir(parents=True, exist_ok=True)
    (plugin_dir / "maestro_bench_plugin.py").write_text(PLUGIN)
    out.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(
        MAESTRO_BENCH_OUT=str(out),
        MAESTRO_BENCH_TEST_TIMEOUT=str(TEST_TIMEOUT_S),
        PYTHONPATH=os.pathsep.join([str(tree / "src"), str(tree), str(plugin_dir)]),
        PYTHONDONTWRITEBYTECODE="1",
    )
    python = (venv_tree or tree) / ".venv/bin/python"
    args = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    # pin rootdir and config to the project: more-itertools has no pytest table, and pytest
    # would otherwise climb to this repository's pyproject.toml
    args += ["-p", "maestro_bench_plugin", "--no-header", "--rootdir", str(tree)]
    args += ["-c", str(tree / "pyproject.toml")]
    args += [a for n in deselect for a in ("--deselect", n)]
    start = time.perf_counter()
    timed_out = False
    try:
        subprocess.run(
            [*args, *files], cwd=tree, env=env, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        timed_out = True
    wall = time.perf_counter() - start
    results: dict[str, tuple[str, float]] = {}
    if out.exists():
        for line in out.read_text().splitlines():
            row = json.loads(line)
            results[row["test"]] = (row["outcome"], row["duration"])
    return results, wall, timed_out


UNREPORTED = ("failed", 0.0)


def ground_truth(
    results: dict[str, tuple[str, float]], expected: set[str]
) -> dict[str, tuple[str, float]]:
    """The outcomes a mutant's run establishes. pytest collects every file before it runs any
    test, and stops on a collection error: a run that reported nothing broke an import, and every
    expected test fails (UNREPORTED). Once tests ran, one that never reported is unknown, not
    failed: the session died or timed out before it, or `--deselect` (a node id *prefix*) also
    removed it (`test_x` deselects `test_x_with_params`); counting those as failures put 1-2
    phantom failures, which no ordering can rank, in every run."""
    if not results:
        return dict.fromkeys(sorted(expected), UNREPORTED)
    return {t: r for t, r in results.items() if t in expected}


def baseline(project: Project, tree: Path, slow: float, venv_tree: Path) -> dict[str, Any]:
    """One clean run: which tests exist, and which to deselect (failing here, or slow)."""
    path = WORK / project.name / "baseline.json"
    if path.exists():
        data: dict[str, Any] = json.loads(path.read_text())
        if data.get("slow") == slow:
            return data
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"[{project.name}] baseline run (full suite)...", flush=True)
    out = path.with_suffix(".out")
    results, wall, _ = run_tests(tree, ["tests"], [], out, timeout=1800, venv_tree=venv_tree)
    deselect = sorted(t for t, (o, d) in results.items() if o == "failed" or d > slow)
    keep = {t: r for t, r in results.items() if t not in set(deselect)}
    data = {"slow": slow, "wall": wall, "tests": keep, "deselect": deselect}
    path.write_text(json.dumps(data))
    print(f"[{project.name}] {len(keep)} tests kept, {len(deselect)} deselected", flush=True)
    return data


# -- mutants ---------------------------------------------------------------------------------------

_SWAPS = {
    "==": "!=", "!=": "==", "<": "<=", "<=": "<", ">": ">=", ">=": ">",
    "+": "-", "-": "+", "*": "//", "//": "*", "%": "*", " is ": " is not ", " in ": " not in ",
    " and ": " or ", " or ": " and ",
}  # fmt: skip


@dataclass(frozen=True)
class Mutant:
    file: str
    symbol: str  # enclosing function (qualified with its class)
    line: int
    col: int
    end_col: int
    old: str
    new: str

    @property
    def key(self) -> str:
        return f"{self.file}:{self.line}:{self.col}:{self.old}->{self.new}"


def logged_mutants(project: str) -> list[tuple[Mutant, dict[str, Any]]]:
    """Every mutant `generate` logged for `project`, with its row (impacted files, results)."""
    log = WORK / project / "mutants.jsonl"
    if not log.exists():
        raise SystemExit(f"{log} is missing: run `python -m bench.bench_model --only {project}`")
    found: list[tuple[Mutant, dict[str, Any]]] = []
    for line in log.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        file, ln, col, change = row["key"].rsplit(":", 3)
        old, new = change.split("->", 1)
        m = Mutant(file, row["symbol"], int(ln), int(col), int(col) + len(old), old, new)
        found.append((m, row))
    return found


def _functions(tree: ast.AST) -> list[tuple[str, ast.AST]]:
    found: list[tuple[str, ast.AST]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                found.append((prefix + child.name, child))
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")

    visit(tree, "")
    return found


def candidate_mutants(root: Path, rel: str) -> list[Mutant]:
    """Every single-token mutation inside a function of `rel` that still parses."""
    source = (root / rel).read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    out: dict[str, Mutant] = {}
    for symbol, fn in _functions(tree):
        body = getattr(fn, "body", [])
        for stmt in body:
            for node in ast.walk(stmt):
                for m in _mutations_of(node, lines, rel, symbol):
                    out.setdefault(m.key, m)
    return list(out.values())


def _mutations_of(node: ast.AST, lines: list[str], rel: str, symbol: str) -> list[Mutant]:
    found: list[Mutant] = []
    if isinstance(node, ast.Constant) and node.lineno == node.end_lineno:
        text = lines[node.lineno - 1][node.col_offset : node.end_col_offset]
        new: str | None = None
        if node.value is True:
            new = "False"
        elif node.value is False:
            new = "True"
        elif type(node.value) is int and text.isdigit():
            new = str(node.value + 1)
        if new is not None:
            found.append(
                Mutant(rel, symbol, node.lineno, node.col_offset, node.end_col_offset, text, new)
            )
    pairs: list[tuple[ast.expr, ast.expr]] = []
    if isinstance(node, ast.BinOp):
        pairs.append((node.left, node.right))
    elif isinstance(node, ast.Compare):
        pairs.extend(zip([node.left, *node.comparators[:-1]], node.comparators, strict=True))
    elif isinstance(node, ast.BoolOp):
        pairs.extend(zip(node.values[:-1], node.values[1:], strict=True))
    for left, right in pairs:
        if left.end_lineno != right.lineno or left.end_col_offset is None:
            continue
        line = lines[right.lineno - 1]
        gap = line[left.end_col_offset : right.col_offset]
        for old, new_op in _SWAPS.items():
            probe = old if old.startswith(" ") else f" {old} "
            if gap.strip() == probe.strip() and probe in f" {gap} ":
                start = left.end_col_offset + gap.index(gap.strip())
                end = start + len(gap.strip())
                found.append(
                    Mutant(rel, symbol, right.lineno, start, end, gap.strip(), new_op.strip())
                )
                break
    return found


def apply(root: Path, m: Mutant) -> str:
    """Apply the mutant; return the original text to restore."""
    path = root / m.file
    original = path.read_text(encoding="utf-8")
    lines = original.splitlines(keepends=True)
    line = lines[m.line - 1]
    assert line[m.col : m.end_col] == m.old, (m, line)
    lines[m.line - 1] = line[: m.col] + m.new + line[m.end_col :]
    mutated = "".join(lines)
    ast.parse(mutated)
    path.write_text(mutated, encoding="utf-8")
    return original


# -- data generation -------------------------------------------------------------------------------


def load_model_package() -> None:
    """Make `maestro.model` importable from the bench's private link tree (which mounts only
    graph, cache and daemon): load it straight from model/."""
    if "maestro.model" in sys.modules:
        return
    import maestro

    try:
        import maestro.model

        return
    except ImportError:
        pass
    spec = importlib.util.spec_from_file_location(
        "maestro.model",
        REPO / "model" / "__init__.py",
        submodule_search_locations=[str(REPO / "model")],
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["maestro.model"] = module
    spec.loader.exec_module(module)
    maestro.model = module  # type: ignore[attr-defined]


def impacted_files(tree: Path, rel: str) -> dict[str, int]:
    """{test file: graph distance} for a change to `rel` (a fresh graph of the pristine tree)."""
    from maestro.graph.build import BuildGraph, Change

    graph = _GRAPHS.get(tree)
    if graph is None:
        WORK.mkdir(parents=True, exist_ok=True)
        index = WORK / f"{tree.name}-index.msgpack"
        graph = _GRAPHS[tree] = BuildGraph.build(tree, index_path=index)
    return {i.target: i.distance for i in graph.impacted([Change(rel)]) if i.kind == "test"}


_GRAPHS: dict[Path, Any] = {}


def generate(
    project: Project, count: int, seed: int, slow: float, *, run: bool = True
) -> list[dict[str, Any]]:
    """Outcomes of the first `count` mutants (in their fixed random order), running the ones not
    cached yet (unless `run` is false)."""
    tree, venv_tree = own_tree(project)
    base = baseline(project, tree, slow, venv_tree)
    deselect = base["deselect"]
    known = set(base["tests"])
    store = WORK / project.name / "mutants.jsonl"
    done: list[dict[str, Any]] = []
    if store.exists():
        done = [json.loads(x) for x in store.read_text().splitlines() if x.strip()]
        for row in done:  # rows stored before ground_truth filled in unreported tests as failed
            reported = {t: tuple(r) for t, r in row["results"].items() if tuple(r) != UNREPORTED}
            row["results"] = ground_truth(reported, set(row["results"]))
    rng = random.Random(seed)
    candidates = [m for rel in project.sources for m in candidate_mutants(tree, rel)]
    rng.shuffle(candidates)
    # spread over symbols: at most 2 mutants per function, so one big function cannot dominate
    per_symbol: dict[tuple[str, str], int] = {}
    chosen: list[Mutant] = []
    for m in candidates:
        k = (m.file, m.symbol)
        if per_symbol.get(k, 0) >= 2:
            continue
        per_symbol[k] = per_symbol.get(k, 0) + 1
        chosen.append(m)
        if len(chosen) >= count:
            break
    have = {d["key"] for d in done}
    out = WORK / project.name / "run.out"
    with store.open("a") as sink:
        for i, m in enumerate(chosen):
            if m.key in have or not run:
                continue
            files = impacted_files(tree, m.file)
            original = apply(tree, m)
            try:
                results, wall, timed_out = run_tests(
                    tree, sorted(files), deselect, out, venv_tree=venv_tree
                )
            finally:
                (tree / m.file).write_text(original, encoding="utf-8")
            expected = {t for t in known if t.split("::")[0] in files}
            results = ground_truth(results, expected)
            failed = sum(1 for o, _ in results.values() if o == "failed")
            row = {
                "key": m.key, "file": m.file, "symbol": m.symbol, "line": m.line,
                "old": m.old, "new": m.new, "impacted": files, "wall": wall,
                "timed_out": timed_out, "results": results,
            }  # fmt: skip
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            done.append(row)
            print(
                f"[{project.name}] mutant {i + 1}/{len(chosen)} {m.file}:{m.line} {m.symbol} "
                f"{m.old!r}->{m.new!r}: {failed}/{len(results)} failed, {wall:.1f}s",
                flush=True,
            )
    by_key = {d["key"]: d for d in done}
    return [by_key[m.key] for m in chosen if m.key in by_key]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=int, default=150, help="mutants per project (cap)")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--slow", type=float, default=0.25, help="deselect tests slower than this")
    parser.add_argument("--only", choices=sorted(PROJECTS))
    parser.add_argument("--collect-only", action="store_true", help="only generate mutant data")
    parser.add_argument("--eval-only", action="store_true", help="only use cached mutant data")
    parser.add_argument("--train-share", type=float, default=0.6)
    parser.add_argument("--write", action="store_true", help="append to docs/BENCHMARKS.md")
    ns = parser.parse_args(argv)
    # a kill (TERM) unwinds like Ctrl-C, so the mutated file is restored by `generate`'s finally
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    data: dict[str, list[dict[str, Any]]] = {}
    for name, project in PROJECTS.items():
        if ns.only and name != ns.only:
            continue
        data[name] = generate(project, ns.mutants, ns.seed, ns.slow, run=not ns.eval_only)
    if ns.collect_only:
        return
    evaluate_all(data, ns)


# -- evaluation ------------------------------------------------------------------------------------

T0 = 1_700_000_000.0
STEP_S = 3600.0  # one mutant per hour: 14-day window, 7-day half-life of the failure rate


def to_telemetry(
    project: Project,
    rows: list[dict[str, Any]],
    db: Path,
    records: tuple[dict[str, set[str]], dict[str, set[str]]] | None = None,
) -> Any:
    """Record each mutant as a run in a fresh telemetry store, the way the daemon would: the
    changed symbols come from diffing the file before and after, not from the mutant's record."""
    load_model_package()
    from maestro.model.features import changed_symbols
    from maestro.model.telemetry import ChangeSet, Telemetry, TestResult

    spec = next(p for p in CACHE_PROJECTS if p.name == project.name)
    pristine = fetch_sdist(spec.name, spec.spec)
    db.unlink(missing_ok=True)
    for extra in ("-wal", "-shm"):
        Path(str(db) + extra).unlink(missing_ok=True)
    tel = Telemetry(db)
    sources: dict[str, str] = {}
    for i, row in enumerate(rows):
        rel = row["file"]
        old = sources.setdefault(rel, (pristine / rel).read_text(encoding="utf-8"))
        lines = old.splitlines(keepends=True)
        line = lines[row["line"] - 1]
        col = int(row["key"].split(":")[2])
        lines[row["line"] - 1] = line[:col] + row["new"] + line[col + len(row["old"]) :]
        symbols = changed_symbols(old, "".join(lines))
        impacted = {k: int(v) for k, v in row["impacted"].items()}
        executed: dict[str, int] = {}
        if records is not None:  # what the daemon's node-level plan knows from the last run
            nodes, imports = records
            changed = {f"{rel}::{sym}" for sym in symbols}
            for test in row["results"]:
                if test in nodes:
                    ran = nodes[test] | imports.get(test.split("::", 1)[0], set())
                    executed[test] = int(bool(changed & ran))
        change = ChangeSet(
            (rel,), tuple(sorted(symbols)), impacted, dict.fromkeys(impacted, 1), executed
        )
        results = [TestResult(t, o, d) for t, (o, d) in sorted(row["results"].items())]
        tel.record_run(change, results, ts=T0 + i * STEP_S)
    return tel


def evaluate_project(
    project: Project, rows: list[dict[str, Any]], train_share: float
) -> dict[str, Any]:
    load_model_package()
    from maestro.model.dataset import evaluate, replay
    from maestro.model.train import train

    records = executed_records(project.name)
    tel = to_telemetry(project, rows, WORK / project.name / "telemetry.sqlite3", records)
    runs = list(tel.runs(days=None))
    tel.close()
    cut = int(len(runs) * train_share)
    start = time.perf_counter()
    train_set, hist = replay(runs[:cut])
    test_set, _ = replay(runs[cut:], hist)  # history keeps learning online; the model does not
    replay_s = time.perf_counter() - start
    start = time.perf_counter()
    model = train(train_set.X, train_set.y)
    train_s = time.perf_counter() - start
    ev = evaluate(model, test_set, seed=1)
    heuristic = evaluate(train(train_set.X, train_set.y, kind="heuristic"), test_set, seed=1)
    without: dict[str, Any] | None = None
    if records is not None:  # side by side: the same rows with no execution records
        from maestro.model.features import FEATURES

        cols = [FEATURES.index("executed_change"), FEATURES.index("has_record")]
        failing = test_set.y == 1
        ex = test_set.X[:, cols[0]]
        blank_train, blank_test = without_records(train_set, cols), without_records(test_set, cols)
        plain = train(blank_train.X, blank_train.y)
        without = {
            "kind": plain.info.kind,
            "eval": evaluate(plain, blank_test, seed=1).as_dict(),
            "failing_executed": float(ex[failing].mean()) if failing.any() else None,
            "passing_executed": float(ex[~failing].mean()),
            "failing_known": float(test_set.X[failing, cols[1]].mean()) if failing.any() else None,
        }
    return {
        "executed_order_apfd": executed_order_apfd(model, test_set, rows[cut:]),
        "project": project.name,
        "mutants": len(runs),
        "train_runs": cut,
        "eval_runs": len(runs) - cut,
        "train_rows": len(train_set.y),
        "train_failures": int(train_set.y.sum()),
        "kind": model.info.kind,
        "replay_s": replay_s,
        "train_s": train_s,
        "eval": ev.as_dict(),
        "heuristic": heuristic.as_dict(),
        "best_possible_recall": best_possible_recall(test_set),
        "without_records": without,
    }


def executed_order_apfd(model: Any, data: Any, rows: list[dict[str, Any]]) -> dict[str, float]:
    """APFD of the order pytest actually runs under each `ml.fail-first` mode, on the held-out
    runs: "off" = the run's own order (files as on the command line, tests as collected), "files"
    = files by their most likely node, tests as collected, "tests" = the plugin's `fail_first`
    (classes and modules kept together) inside those files."""
    import statistics
    from types import SimpleNamespace

    import numpy as np

    from maestro.model.metrics import apfd

    spec = importlib.util.spec_from_file_location(
        "maestro_pytest_plugin", REPO / "engine" / "plugin" / "maestro_pytest_plugin.py"
    )
    assert spec is not None and spec.loader is not None
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    p_all = model.predict(data.X)
    scores: dict[str, list[float]] = {"off": [], "files": [], "tests": []}
    for r in sorted(set(int(i) for i in data.run_index)):
        idx = np.nonzero(data.run_index == r)[0]
        p = {data.tests[i]: float(p_all[i]) for i in idx}
        failing = {data.tests[i] for i in idx if data.y[i]}
        if not failing:
            continue
        collected = [t for t in rows[r]["results"] if t in p]
        pos = {t: i for i, t in enumerate(collected)}
        best: dict[str, tuple[float, int]] = {}
        for t in collected:
            f = t.split("::", 1)[0]
            best[f] = min(best.get(f, (1.0, pos[t])), (-p[t], pos[t]))
        files = sorted(best, key=lambda f: best[f])
        by_file = sorted(collected, key=lambda t: (files.index(t.split("::", 1)[0]), pos[t]))
        items = [SimpleNamespace(nodeid=t) for t in by_file]
        tests = [it.nodeid for it in plugin.fail_first(items, p)]
        for name, order in (("off", collected), ("files", by_file), ("tests", tests)):
            scores[name].append(apfd(order, failing) or 0.0)
    return {k: statistics.fmean(v) for k, v in scores.items() if v}


# -- experiment: "the test executed the changed function" ------------

PRECISION_DIR = BENCH_DIR / "precision"


def executed_records(name: str) -> tuple[dict[str, set[str]], dict[str, set[str]]] | None:
    """Per test node, the functions it executed ("<path>::<qualname>"), and per test file the
    ones that ran at import/collection time, from bench_precision's baseline `maestro test` run
    (its cache and last keys under .bench/precision/state-precision-<name>), read from a copy."""
    import tempfile

    import msgpack

    load_model_package()
    from maestro.cache import Cache

    state = PRECISION_DIR / f"state-precision-{name}"
    workspaces = sorted((state / "state" / "workspaces").glob("*"))
    if not workspaces or not (state / "cache" / "lmdb").is_dir():
        return None
    last = msgpack.unpackb((workspaces[0] / "test-last-keys.msgpack").read_bytes(), raw=False)
    nodes: dict[str, set[str]] = {}
    imports: dict[str, set[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(state / "cache" / "lmdb", Path(tmp) / "lmdb")
        with Cache.open(Path(tmp) / "lmdb") as cache:
            for target, entry in last.items():
                result = cache.get_action(str(entry[0]), count=False)
                if result is None or result.trace is None:
                    continue
                imports[target] = set(result.trace.names(result.trace.import_time))
                for t in result.tests:
                    nodes[t.node_id] = set(result.trace.names(t.executed))
    return nodes, imports


def without_records(data: Any, cols: list[int]) -> Any:
    """`data` as if no test had an execution record (the feature columns zeroed)."""
    X = data.X.copy()
    X[:, cols] = 0.0
    return type(data)(X, data.y, data.run_index, data.tests)


def best_possible_recall(data: Any, fraction: float = 1 / 3) -> float:
    """Pooled top-`fraction` recall of a perfect ordering: a run that fails more than its top
    third cannot be fully caught by any ordering."""
    import math

    import numpy as np

    caught = total = 0
    for r in sorted(set(int(i) for i in data.run_index)):
        rows = np.nonzero(data.run_index == r)[0]
        failing = int(data.y[rows].sum())
        k = math.ceil(fraction * len(rows) - 1e-9)
        caught += min(failing, k)
        total += failing
    return caught / total if total else float("nan")


def evaluate_all(data: dict[str, list[dict[str, Any]]], ns: argparse.Namespace) -> None:
    results = []
    for name, rows in data.items():
        if len(rows) < 10:
            print(f"[{name}] only {len(rows)} mutants: skipped")
            continue
        results.append(evaluate_project(PROJECTS[name], rows, ns.train_share))
    header = ["project", "mutants (train/eval)", "samples", "failing (eval)", "model",
              "APFD model", "APFD history", "APFD random", "recall top 1/3 model",
              "history", "random", "runs all caught (model)"]  # fmt: skip
    table_rows = []
    for r in results:
        ev = r["eval"]
        table_rows.append(
            [
                r["project"],
                f"{r['mutants']} ({r['train_runs']}/{r['eval_runs']})",
                f"{r['train_rows'] + ev['rows']:,}",
                f"{ev['failures']} in {ev['runs_with_failures']} runs",
                r["kind"],
                f"{ev['apfd']['model']:.3f}",
                f"{ev['apfd']['history']:.3f}",
                f"{ev['apfd']['random']:.3f}",
                f"{ev['recall_top_fraction']['model']:.1%}",
                f"{ev['recall_top_fraction']['history']:.1%}",
                f"{ev['recall_top_fraction']['random']:.1%}",
                f"{ev['runs_all_failures_caught']['model']:.0%}",
            ]
        )
    body = table(header, table_rows)
    print(body)
    exp_header = ["project", "model", "APFD without / with", "recall top 1/3 without / with",
                  "per run without / with", "runs all caught without / with",
                  "best possible recall", "failing tests that executed it"]  # fmt: skip
    exp_rows = []
    for r in results:
        x = r.get("without_records")
        if x is None:
            continue
        ev, xe = x["eval"], r["eval"]
        exp_rows.append(
            [
                r["project"],
                f"{x['kind']} / {r['kind']}",
                f"{ev['apfd']['model']:.3f} / {xe['apfd']['model']:.3f}",
                f"{ev['recall_top_fraction']['model']:.1%} / "
                f"{xe['recall_top_fraction']['model']:.1%}",
                f"{ev['recall_top_fraction_mean_per_run']['model']:.1%} / "
                f"{xe['recall_top_fraction_mean_per_run']['model']:.1%}",
                f"{ev['runs_all_failures_caught']['model']:.0%} / "
                f"{xe['runs_all_failures_caught']['model']:.0%}",
                f"{r['best_possible_recall']:.1%}",
                f"{x['failing_executed']:.1%} (passing: {x['passing_executed']:.1%})",
            ]
        )
    file_header = ["project", "failing files (eval)", "files recall top 1/3 model", "history",
                   "random", "failing tests caught", "impacted tests run (model)"]  # fmt: skip
    file_rows = [
        [r["project"], str(r["eval"]["failing_files"])]
        + [f"{r['eval']['files_recall_top_fraction'][k]:.1%}"
           for k in ("model", "history", "random")]
        + [f"{r['eval'][k]['model']:.1%}"
           for k in ("files_node_recall_top_fraction", "files_cost_top_fraction")]
        for r in results
    ]  # fmt: skip
    print("the same budget over test files (the daemon's unit of execution):")
    print(table(file_header, file_rows))
    order_rows = [
        [r["project"], *(f"{r['executed_order_apfd'][k]:.3f}" for k in ("off", "files", "tests"))]
        for r in results
    ]
    print("APFD of the order pytest runs (model ranking; `ml.fail-first`):")
    print(table(["project", "off (collected)", "files", "tests"], order_rows))
    if exp_rows:
        print("without / with execution records (bench_precision's baseline `maestro test`):")
        print(table(exp_header, exp_rows))
    print(json.dumps(results, indent=1))
    (WORK / "results.json").write_text(json.dumps(results, indent=1))
    if ns.write:
        append_docs(body, results, ns)


def append_docs(body: str, results: list[dict[str, Any]], ns: argparse.Namespace) -> None:
    """Append (never rewrite) the section to docs/BENCHMARKS.md."""
    heur = "; ".join(
        f"{r['project']}: APFD {r['heuristic']['apfd']['model']:.3f}, "
        f"recall {r['heuristic']['recall_top_fraction']['model']:.1%}"
        for r in results
    )
    per_run = "; ".join(
        f"{r['project']}: {r['eval']['recall_top_fraction_mean_per_run']['model']:.1%}"
        for r in results
    )
    text = f"""
## Speculation model (issue 6)

{today()}, {machine()}, maestro at {git_rev("model", "bench/bench_model.py")}.
Mutants of more-itertools 11.2.1 and requests 2.34.2 (one operator, constant or boolean swapped
inside a function; at most 2 per function); each mutant is one change, its impacted test files
(from `BuildGraph.impacted`) run in one pytest process, per-test outcomes recorded (tests failing
without any mutant, and tests slower than {ns.slow:g} s, deselected for all runs alike; a run that
reports no test at all broke an import, and all its tests count as failed; in a run that did report,
a test that never reported is unknown and left out: the session died or timed out before it, or
pytest's prefix-matching `--deselect` removed it). Mutants are replayed in order through
telemetry -> features -> history; the model trains on the first {ns.train_share:.0%} and is
scored on the rest (the history keeps updating online, the model does not). "samples" counts
(change, test) rows.

{body}

- APFD: mean over held-out runs with at least one failure; random = mean of 5 shuffles per run;
  history = decayed historical failure rate (ties to the faster test). Recall = failing tests
  caught when running only the top third of the impacted tests, pooled over runs (mean per run:
  {per_run}); "runs all caught" = share of failing runs with every failure in the top third.
- The untrained heuristic (no model file) on the same split: {heur}.
- What makes it work on mutants: `name_match` and `cofail_symbol` (the changed function's name
  in the test id, and past co-failures with that function). Real edits touch several functions
  and tests are not always named after what they test: expect lower numbers on real history.

Reproduce: `.venv/bin/python -m bench.bench_model --mutants {ns.mutants} --write` (runs the
mutants not cached yet in .bench/model/<project>/mutants.jsonl, up to {ns.mutants} per project,
then evaluates; `--eval-only` scores the cached ones, as this run did: collection was stopped
at the mutant counts in the table to fit the session's time budget).
"""
    docs = REPO / "docs" / "BENCHMARKS.md"
    with docs.open("a", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
