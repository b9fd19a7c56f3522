"""Function-level precision: the mutation bench, node-level Maestro vs pytest-testmon.

For requests and more-itertools (the trees and venvs of bench_test_cache under .bench/testcache):

1. Deselected for every tool alike: tests failing in this sandbox and tests slower than
   --slow-s seconds (sleeps and CPU-heavy cases), so that one full run per mutant stays bounded.
2. Timed, same tree, same run: plain pytest; `pytest --testmon` first and no-change runs;
   `maestro test` first run (recording per-node execution) and no-change run.
3. The same single-point mutants (operator and constant flips in library code, seeded) for every
   selector: per mutant, the ground truth is a full pytest run (its failing tests); Maestro's
   node-level selection is `plan()` on the baseline records; the static-graph-only selection is
   every node of every test file `impacted()` by the mutated file; testmon's is
   `pytest --testmon --collect-only` from a copy of its baseline database. A miss is a failing
   test that a selector does not select.
4. `maestro test` itself (the CLI, in process, on a throw-away copy of the baseline cache and
   state) on the first --verify-cli killed mutants: it must report every test the full run
   failed as failed (a test served from the cache would show its baseline pass), only nodes
   that `plan()` selected can fail, and it must run the files `plan()` said it would.

    .venv/bin/python -m bench.bench_precision [--mutants 30] [--only requests] [--parallel]
        [--verify-cli 3] [--write]

--parallel runs each project in its own process at the same time (selection counts and misses
are exact; the timing columns then share the CPU between the two projects).

bench_test_cache has no mutation logic to import (as of this commit), so the mutants are made
here: `mutants()` is importable by other benches.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench import bench_test_cache
from bench.bench_test_cache import MAESTRO_CODE, PROJECTS, Project, sh
from bench.common import (
    BENCH_DIR,
    fetch_sdist,
    fmt_s,
    git_rev,
    machine,
    table,
    today,
    write_section,
)

# Own trees and venvs (made once, reused): the mutants edit library sources, which must never
# happen under another bench's feet (bench_test_cache and others use .bench/testcache).
WORK = BENCH_DIR / "precision"

SECTION = "Function-level precision (issue 8)"
LIBRARY = {"requests": "src/requests", "more-itertools": "more_itertools"}

_CMP = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE,
    ast.LtE: ast.Gt, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In,
}  # fmt: skip
_BIN = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult, ast.Mod: ast.FloorDiv, ast.BitOr: ast.BitAnd, ast.BitAnd: ast.BitOr,
    ast.LShift: ast.RShift, ast.RShift: ast.LShift,
}  # fmt: skip


@dataclass(frozen=True)
class Mutant:
    path: str  # workspace-relative
    line: int
    col: int
    end_line: int
    end_col: int
    replacement: str
    label: str

    def apply(self, text: str) -> str:
        lines = text.splitlines(keepends=True)
        start = sum(len(x) for x in lines[: self.line - 1]) + _byte_to_char(
            lines[self.line - 1], self.col
        )
        end = sum(len(x) for x in lines[: self.end_line - 1]) + _byte_to_char(
            lines[self.end_line - 1], self.end_col
        )
        return text[:start] + self.replacement + text[end:]


def _byte_to_char(line: str, offset: int) -> int:
    return len(line.encode()[:offset].decode(errors="ignore"))


def _flip(node: ast.AST) -> tuple[ast.expr, str] | None:
    new: ast.expr
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMP:
        op = node.ops[0]
        new = ast.Compare(node.left, [_CMP[type(op)]()], node.comparators)
        return new, f"{type(op).__name__}->{_CMP[type(op)].__name__}"
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
        new = ast.BinOp(node.left, _BIN[type(node.op)](), node.right)
        return new, f"{type(node.op).__name__}->{_BIN[type(node.op)].__name__}"
    if isinstance(node, ast.BoolOp):
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        return ast.BoolOp(other, node.values), f"{type(node.op).__name__}->{type(other).__name__}"
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return ast.Constant(not node.value), f"{node.value}->{not node.value}"
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return ast.Constant(node.value + 1), f"{node.value}->{node.value + 1}"
    return None


def mutants(tree: Path, library: str) -> Iterator[Mutant]:
    """Every single-point operator/constant flip in the library's .py files (not docstrings,
    not inside f-strings), in a stable order."""
    for path in sorted((tree / library).rglob("*.py")):
        rel = path.relative_to(tree).as_posix()
        module = ast.parse(path.read_bytes())
        skip: set[int] = set()
        for node in ast.walk(module):
            if isinstance(node, ast.JoinedStr):
                skip.update(id(n) for n in ast.walk(node))
        for node in ast.walk(module):
            if id(node) in skip or not hasattr(node, "end_col_offset"):
                continue
            flipped = _flip(node)
            if flipped is None or node.end_lineno is None or node.end_col_offset is None:
                continue
            new, label = flipped
            yield Mutant(
                rel, node.lineno, node.col_offset, node.end_lineno, node.end_col_offset,
                f"({ast.unparse(new)})", f"{rel}:{node.lineno} {label}",
            )  # fmt: skip


def pick(tree: Path, library: str, count: int, seed: int) -> list[Mutant]:
    found = list(mutants(tree, library))
    rng = random.Random(seed)
    chosen = rng.sample(found, min(count, len(found)))
    return sorted(chosen, key=lambda m: (m.path, m.line, m.col))


# ------------------------------------------------------------------------------ runs

# A mutant can make a test loop or allocate without bound (more-itertools' `_full` grew to 15 GB):
# the ground-truth run is stopped after 5 minutes or 6 GB, and the mutant reported as incomplete.
_GUARD = (
    ["timeout", "-s", "KILL", "300", "prlimit", "--as=6000000000", "--"]
    if shutil.which("timeout") and shutil.which("prlimit")
    else []
)

_NODE = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.M)


def failing(out: str) -> set[str]:
    return {m.split(" - ")[0] for m in _NODE.findall(out)}


def _expand(failed: str, nodes_of: dict[str, list[str]], all_nodes: set[str]) -> set[str]:
    """A failing id from pytest's short summary as node ids: a file stands for its nodes; an id
    cut at a space (``test_x[foo-must be int]`` prints as ``test_x[foo-must``) for the ids it
    starts."""
    if "::" not in failed:
        return set(nodes_of.get(failed, []))
    if failed in all_nodes:
        return {failed}
    return {n for n in all_nodes if n.startswith(failed + " ")} or {failed}


def collected_nodes(out: str) -> set[str]:
    # (ids may hold spaces: `test_x[foo-must be int]`; callers intersect with the known ids)
    return {line.strip() for line in out.splitlines() if "::" in line and not line[:1].isspace()}


@dataclass
class Tally:
    selected_nodes: list[int] = field(default_factory=list)
    selected_files: list[int] = field(default_factory=list)
    misses: int = 0
    missed_mutants: list[str] = field(default_factory=list)

    def add(self, nodes: set[str], must: set[str], label: str) -> None:
        self.selected_nodes.append(len(nodes))
        self.selected_files.append(len({n.split("::")[0] for n in nodes}))
        missed = must - nodes
        if missed:
            self.misses += len(missed)
            self.missed_mutants.append(f"{label}: {sorted(missed)[:3]}")

    def row(self, name: str, total: int) -> list[str]:
        mean = statistics.fmean(self.selected_nodes) if self.selected_nodes else 0.0
        files = statistics.fmean(self.selected_files) if self.selected_files else 0.0
        return [
            name,
            f"{mean:.1f}",
            f"{mean / total:.1%}" if total else "-",
            f"{files:.2f}",
            str(self.misses),
        ]


@dataclass
class ProjectResult:
    name: str
    total_nodes: int
    total_files: int
    deselected: int
    mutants: int
    killed: int
    times: dict[str, float]
    tallies: dict[str, Tally]
    mode: str
    failing: int = 0  # failing tests summed over the mutants (what a selector must include)
    cli_checks: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # full runs stopped by the guard

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ProjectResult:
        raw = json.loads(text)
        raw["tallies"] = {k: Tally(**v) for k, v in raw["tallies"].items()}
        return cls(**raw)


def _slow_and_failing(tree: Path, slow_s: float) -> tuple[list[str], list[str]]:
    py = str(tree / ".venv/bin/python")
    cmd = [py, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", "--durations=0"]
    cmd.append(f"--rootdir={tree}")
    _, _, out = sh([*cmd, "--durations-min", str(slow_s)], tree)
    bad = sorted(failing(out))
    slow = sorted(
        set(re.findall(r"^\s*[\d.]+s (?:call|setup|teardown)\s+(\S+::\S+)", out, flags=re.M))
    )
    return bad, [s for s in slow if s not in bad]


def prepare(project: Project) -> Path:
    return bench_test_cache.prepare(project, work=WORK)


def _pristine(project: Project, tree: Path) -> None:
    """Undo mutants a killed run may have left: library files back from the sdist."""
    src = fetch_sdist(project.name, project.spec) / LIBRARY[project.name]
    for path in src.rglob("*.py"):
        target = tree / LIBRARY[project.name] / path.relative_to(src)
        if target.read_bytes() != path.read_bytes():
            print(f"restoring {target} from the sdist")
            target.write_bytes(path.read_bytes())


def bench_project(
    project: Project, count: int, seed: int, slow_s: float, verify_cli: int = 0
) -> ProjectResult:
    tree = prepare(project)
    _pristine(project, tree)
    py = str(tree / ".venv/bin/python")
    state = WORK / f"state-precision-{project.name}"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    env = {**os.environ, "MAESTRO_CACHE_DIR": str(state / "cache")}
    env["MAESTRO_STATE_DIR"] = str(state / "state")
    env.pop("VIRTUAL_ENV", None)
    tm_data = state / "testmondata"
    tm_env = {**env, "TESTMON_DATAFILE": str(tm_data)}
    bad, slow = _slow_and_failing(tree, slow_s)
    args = [a for n in [*bad, *slow] for a in ("--deselect", n)]
    print(f"{project.name}: deselecting {len(bad)} failing and {len(slow)} slow tests", flush=True)
    # Node ids relative to the project: without an ini file of its own, pytest would pick this
    # repository's pyproject.toml as rootdir (the trees live under .bench/).
    pytest = [py, "-m", "pytest", "-q", "-p", "no:randomly", f"--rootdir={tree}"]
    times: dict[str, float] = {}

    shutil.rmtree(tree / ".pytest_cache", ignore_errors=True)
    times["pytest"], _, _ = sh([*pytest, "-p", "no:cacheprovider", *args], tree)
    times["testmon first"], _, _ = sh([*pytest, "--testmon", *args], tree, tm_env)
    times["testmon no-change"], _, _ = sh([*pytest, "--testmon", *args], tree, tm_env)
    shutil.copy(tm_data, state / "testmondata.base")
    maestro = [sys.executable, "-c", MAESTRO_CODE, "test"]
    times["maestro first"], code, out = sh([*maestro, "--", *args], tree, env)
    if code not in (0, 1) or " files, " not in out:  # exit 1 is also an import error
        raise SystemExit(f"maestro first run failed ({code}):\n{out[-2000:]}")
    times["maestro no-change"], _, _ = sh([*maestro, "--", *args], tree, env)
    print(f"{project.name}: times {times}", flush=True)

    # Maestro in-process on the baseline records (plan only: nothing is written but fingerprints).
    os.environ.update({k: env[k] for k in ("MAESTRO_CACHE_DIR", "MAESTRO_STATE_DIR")})
    from maestro.cache import Cache
    from maestro.cli.test_cmd import _open
    from maestro.engine import testing
    from maestro.graph.build import Change
    from maestro.paths import graph_index_path

    graph, cache, interpreter = _open(tree)
    selection = testing.Selection(pytest_args=tuple(args))
    with cache:
        base = testing.plan(graph, cache, interpreter, selection, environ=env)
    nodes_of = {f.target: [t.node_id for t in f.cached.tests] for f in base.files if f.cached}
    mode = next((f.cached.trace.mode for f in base.files if f.cached and f.cached.trace), "?")
    all_nodes = {n for ns in nodes_of.values() for n in ns}
    tallies = {k: Tally() for k in ("maestro node-level", "testmon", "static graph only")}
    chosen = pick(tree, LIBRARY[project.name], count, seed)
    killed = failing_total = 0
    checks: list[str] = []
    incomplete: list[str] = []
    for i, mutant in enumerate(chosen):
        source = tree / mutant.path
        original = source.read_text()
        mutated = mutant.apply(original)
        try:
            ast.parse(mutated)
        except SyntaxError:
            print(f"  skip unparsable {mutant.label}")
            continue
        source.write_text(mutated)
        try:
            full = [*_GUARD, *pytest, "-p", "no:cacheprovider", "-rfE", *args]
            _, code, out = sh(full, tree)
            if code in (-9, 137, 124):  # (a MemoryError under the cap is a failing test)
                incomplete.append(mutant.label)
                print(f"  full run of {mutant.label} killed (time/memory guard)", flush=True)
            must: set[str] = set()
            for f in failing(out):
                must |= _expand(f, nodes_of, all_nodes)
            killed += bool(must)
            failing_total += len(must)
            shutil.copy(state / "testmondata.base", tm_data)
            # (`pytest` has -q already: -qq would list files, not node ids)
            _, _, tm_out = sh([*pytest, "--testmon", "--collect-only", *args], tree, tm_env)
            tallies["testmon"].add(collected_nodes(tm_out) & all_nodes, must, mutant.label)
            graph = testing.BuildGraph.build(tree, index_path=graph_index_path(tree))
            with Cache.open() as cache:
                planned = testing.plan(graph, cache, interpreter, selection, environ=env)
            chosen_nodes: set[str] = set()
            for f in planned.to_run:
                chosen_nodes |= set(f.run_nodes or nodes_of.get(f.target, []))
            tallies["maestro node-level"].add(chosen_nodes, must, mutant.label)
            static = {i.target for i in graph.impacted([Change(mutant.path)]) if i.kind == "test"}
            tallies["static graph only"].add(
                {n for t in static for n in nodes_of.get(t, [])}, must, mutant.label
            )
            if must and len(checks) < verify_cli:
                files = {f.target for f in planned.to_run}
                checks.append(
                    _verify_cli(
                        tree, state, args, env, mutant, must, chosen_nodes, files, all_nodes
                    )
                )
                print(f"  {checks[-1]}", flush=True)
        finally:
            source.write_text(original)
        unknown = {f for f in failing(out) if f.split("::")[0] not in nodes_of}
        if unknown:
            print(f"  warning: failing ids not in maestro's records: {sorted(unknown)[:3]}")
        sizes = {k: t.selected_nodes[-1] for k, t in tallies.items()}
        print(f"  [{i + 1}/{len(chosen)}] {mutant.label}: {len(must)} failing; {sizes}", flush=True)
    shutil.copy(state / "testmondata.base", tm_data)
    return ProjectResult(
        f"{project.name} {project.spec.removeprefix('==')}",
        len(all_nodes),
        len(nodes_of),
        len(bad) + len(slow),
        len(chosen),
        killed,
        times,
        tallies,
        mode,
        failing_total,
        checks,
        incomplete,
    )


_CLI_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)\s*$", re.M)


def _verify_cli(
    tree: Path,
    state: Path,
    args: list[str],
    env: dict[str, str],
    mutant: Mutant,
    must: set[str],
    selected: set[str],
    files: set[str],
    nodes: set[str],
) -> str:
    """`maestro test` on a copy of the baseline cache and state: does the real CLI re-run what
    `plan()` selected? (A copy, so the baseline stays the same for the next mutants.)"""
    scratch = state / "cli-check"
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(state / "cache", scratch / "cache")
    shutil.copytree(state / "state", scratch / "state")
    cli_env = {**env, "MAESTRO_CACHE_DIR": str(scratch / "cache"), "COLUMNS": "500"}
    cli_env.update(MAESTRO_STATE_DIR=str(scratch / "state"), MAESTRO_DAEMON="off")
    junit = scratch / "junit.xml"
    maestro = [sys.executable, "-c", MAESTRO_CODE, "test", "--no-daemon", "--junit-xml", str(junit)]
    _, code, out = sh([*maestro, "--", *args], tree, cli_env)
    failed = _junit_failures(junit, nodes)
    shown = set(_CLI_FAILED.findall(out))
    shutil.rmtree(scratch, ignore_errors=True)
    ran = re.search(r"ran (\d+) files?\b", out)
    ran_files = int(ran.group(1)) if ran else -1
    ok = must <= failed and failed <= selected and ran_files == len(files)
    return (
        f"{'same' if ok else 'DIFFERENT'}: {mutant.label}: `maestro test` exit {code}, "
        f"reported {len(failed)} failed of {len(must)} failing under a full run "
        f"({len(must - failed)} not reported, {len(failed - selected)} outside plan()'s "
        f"{len(selected)} nodes), ran {ran_files} files (plan: {len(files)})"
        + (
            f"; its failure list shows {len(shown ^ failed)} ids differently"
            if shown ^ failed
            else ""
        )
    )


def _junit_failures(path: Path, nodes: set[str]) -> set[str]:
    """Node ids failed or errored in the CLI's JUnit file (cached results passed at baseline, so
    these ran in this run); JUnit (classname, name) mapped back to node ids."""
    from xml.etree import ElementTree

    from maestro.engine.junit import _names

    by_name = {_names(n): n for n in nodes}
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return set()
    found = set()
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            key = (case.get("classname", ""), case.get("name", ""))
            found.add(by_name.get(key, f"{key[0]}::{key[1]}"))
    return found


def report(results: list[ProjectResult]) -> str:
    sel_rows = []
    time_rows = []
    for r in results:
        for name, tally in r.tallies.items():
            sel_rows.append([r.name, *tally.row(name, r.total_nodes)])
        t = r.times
        time_rows.append(
            [
                r.name,
                fmt_s(t["pytest"]),
                f"{fmt_s(t['testmon first'])} ({t['testmon first'] / t['pytest']:.2f}x)",
                f"{fmt_s(t['maestro first'])} ({t['maestro first'] / t['pytest']:.2f}x)",
                fmt_s(t["testmon no-change"]),
                f"{fmt_s(t['maestro no-change'])} "
                f"({t['maestro no-change'] / t['testmon no-change']:.2f} of testmon)",
            ]
        )
    heads = [
        f"- {r.name}: {r.total_nodes} test nodes in {r.total_files} files after deselecting "
        f"{r.deselected}; {r.mutants} mutants, {r.killed} killed by the full run "
        f"({r.failing} failing tests in all); tracing: {r.mode}"
        + (
            f"; full run stopped by the time/memory guard (failing set unknown): "
            f"{', '.join(r.incomplete)}"
            if r.incomplete
            else ""
        )
        for r in results
    ]
    sel = table(["project", "selector", "mean nodes re-run", "re-run vs total", "mean files",
                 "missed failing tests"], sel_rows)  # fmt: skip
    tim = table(["project", "pytest", "testmon first", "maestro first", "testmon no-change",
                 "maestro no-change"], time_rows)  # fmt: skip
    misses = [
        f"- {r.name} {name} misses: {'; '.join(t.missed_mutants[:5])}"
        for r in results
        for name, t in r.tallies.items()
        if t.missed_mutants
    ]
    checks = [f"- {r.name}: {c}" for r in results for c in r.cli_checks]
    if checks:
        checks.insert(0, "`maestro test` (the CLI) on the first killed mutants, vs `plan()`:")
    return "\n".join(
        [
            *heads,
            "",
            sel,
            "",
            tim,
            *(["", *misses] if misses else []),
            *(["", *checks] if checks else []),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=int, default=30, help="mutants per project")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--slow-s", type=float, default=0.5, help="deselect tests slower than this")
    parser.add_argument("--only", choices=[p.name for p in PROJECTS])
    parser.add_argument(
        "--verify-cli",
        type=int,
        default=3,
        metavar="N",
        help="check `maestro test` against plan() on the first N killed mutants",
    )
    parser.add_argument("--parallel", action="store_true", help="one process per project")
    parser.add_argument("--json", type=Path, help="write the project results here (internal)")
    parser.add_argument("--write", action="store_true", help="append to docs/BENCHMARKS.md")
    ns = parser.parse_args(argv)
    # SIGTERM runs the `finally` that puts a mutated file back.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    projects = [p for p in PROJECTS if not ns.only or p.name == ns.only]
    if ns.parallel:
        results = _in_parallel(projects, ns)
    else:
        results = [
            bench_project(p, ns.mutants, ns.seed, ns.slow_s, ns.verify_cli) for p in projects
        ]
    if ns.json is not None:
        ns.json.write_text("\n".join(r.to_json() for r in results))
    body = report(results)
    print(body)
    print(f"bench took {time.monotonic() - started:.0f}s")
    if ns.write:
        write_section(
            SECTION,
            f"{today()}, {machine()}, maestro at {git_rev('cache', 'daemon', 'graph', 'maestro')}."
            f" Reproduce: `make relink && .venv/bin/python -m bench.bench_precision --mutants "
            f"{ns.mutants} --write`\n\n" + body,
        )


def _in_parallel(projects: list[Project], ns: argparse.Namespace) -> list[ProjectResult]:
    """Each project in a child process (own environment variables, own cache), all at once."""
    WORK.mkdir(parents=True, exist_ok=True)
    children = []
    for p in projects:
        out = WORK / f"result-{p.name}.json"
        out.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "bench.bench_precision", "--only", p.name, "--json", str(out)]
        cmd += ["--mutants", str(ns.mutants), "--seed", str(ns.seed), "--slow-s", str(ns.slow_s)]
        cmd += ["--verify-cli", str(ns.verify_cli)]
        children.append((out, subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[1])))
    try:
        codes = [child.wait() for _, child in children]
    finally:
        for _, child in children:
            if child.poll() is None:
                child.terminate()  # SIGTERM: the child puts its mutated file back
                child.wait()
    if any(codes):
        raise SystemExit(f"a project failed: exit codes {codes}")
    return [ProjectResult.from_json(out.read_text()) for out, _ in children]


if __name__ == "__main__":
    main()
