"""Speculation model evaluation (issue 6): fail-first ordering and predictive selection on mutants.

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
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.bench_test_cache import PROJECTS as CACHE_PROJECTS
from bench.bench_test_cache import prepare
from bench.common import BENCH_DIR, REPO

WORK = BENCH_DIR / "model"
RUN_TIMEOUT_S = 240
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
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, _LIMIT)
    _STATE[item.nodeid] = ["passed", 0.0]
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        outcome, duration = _STATE.pop(item.nodeid)
        row = {"test": item.nodeid, "outcome": outcome, "duration": duration}
        _OUT.write(json.dumps(row) + "\n")


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


def run_tests(
    tree: Path, files: list[str], deselect: list[str], out: Path, timeout: float = RUN_TIMEOUT_S
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
        PYTHONPATH=str(plugin_dir),
        PYTHONDONTWRITEBYTECODE="1",
    )
    args = [str(tree / ".venv/bin/python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
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


def baseline(project: Project, tree: Path, slow: float) -> dict[str, Any]:
    """One clean run: which tests exist, and which to deselect (failing here, or slow)."""
    path = WORK / project.name / "baseline.json"
    if path.exists():
        data: dict[str, Any] = json.loads(path.read_text())
        if data.get("slow") == slow:
            return data
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"[{project.name}] baseline run (full suite)...", flush=True)
    results, wall, _ = run_tests(tree, ["tests"], [], path.with_suffix(".out"), timeout=1800)
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


def generate(project: Project, count: int, seed: int, slow: float) -> list[dict[str, Any]]:
    spec = next(p for p in CACHE_PROJECTS if p.name == project.name)
    tree = prepare(spec)
    base = baseline(project, tree, slow)
    deselect = base["deselect"]
    known = set(base["tests"])
    store = WORK / project.name / "mutants.jsonl"
    done: list[dict[str, Any]] = []
    if store.exists():
        done = [json.loads(x) for x in store.read_text().splitlines() if x.strip()]
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
            if m.key in have:
                continue
            files = impacted_files(tree, m.file)
            original = apply(tree, m)
            try:
                results, wall, timed_out = run_tests(tree, sorted(files), deselect, out)
            finally:
                (tree / m.file).write_text(original, encoding="utf-8")
            expected = {t for t in known if t.split("::")[0] in files}
            # a test that never reported (collection error, or the run timed out) did not pass
            for t in expected - set(results):
                results[t] = ("failed", 0.0)
            results = {t: r for t, r in results.items() if t in expected}
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
    keys = {m.key for m in chosen}
    return [d for d in done if d["key"] in keys]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=int, default=150, help="mutants per project (cap)")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--slow", type=float, default=0.25, help="deselect tests slower than this")
    parser.add_argument("--only", choices=sorted(PROJECTS))
    parser.add_argument("--collect-only", action="store_true", help="only generate mutant data")
    parser.add_argument("--write", action="store_true", help="append to docs/BENCHMARKS.md")
    ns = parser.parse_args(argv)
    data: dict[str, list[dict[str, Any]]] = {}
    for name, project in PROJECTS.items():
        if ns.only and name != ns.only:
            continue
        data[name] = generate(project, ns.mutants, ns.seed, ns.slow)
    if ns.collect_only:
        return
    evaluate_all(data, ns)


def evaluate_all(data: dict[str, list[dict[str, Any]]], ns: argparse.Namespace) -> None:
    raise NotImplementedError


if __name__ == "__main__":
    main()
