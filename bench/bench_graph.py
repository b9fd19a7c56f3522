"""Build-graph benchmark on the Django sdist: maestro vs `ruff analyze graph` vs grimp.

    python -m bench.bench_graph [--runs N] [--quick] [--write | --no-write] [--no-profile]

Measured in one run, tools alternating per round (the order rotates each round), after one
untimed warm-up round so that every tool sees a warm OS page cache:
- cold build: a fresh process without index (maestro builds every file's imports and prints its
  stats; ruff `analyze graph` on the whole tree; grimp `build_graph("django", cache_dir=None)`,
  which covers only the `django` package, not tests/) — target maestro <= 1.5x ruff;
- warm second process: a fresh process that reuses the persisted index and answers one `impacted`
  query — target <= 0.3 s to the first answer; interpreter startup and imports reported apart;
- in process: one-file `update` after appending a line (target <= 10 ms) and `impacted` for one
  changed file over a sample of files (target <= 5 ms), p50 and p95;
- peak RSS of a fresh process holding the Django graph (target <= 150 MB).
Results go to the `## Build graph (issue 2)` section of docs/BENCHMARKS.md (not with --quick,
unless --write).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH_DIR,
    LAST_CPU,
    PYTHON,
    fetch_sdist,
    fmt_ms,
    fmt_s,
    git_rev,
    machine,
    median,
    percentile,
    python_cmd,
    run_timed,
    table,
    today,
    write_section,
)

DJANGO = ("django", "==5.2.*")
SECTION = "Build graph (issue 2)"
CHANGED_FOR_WARM = "django/utils/html.py"
HUB = 500  # a "hub" file: changing it impacts at least this many test files

COLD_MAESTRO = """
import json, resource, time
t0 = time.perf_counter()
from pathlib import Path
from maestro.graph.build import BuildGraph
t1 = time.perf_counter()
base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
g = BuildGraph.build(Path({root!r}))
t2 = time.perf_counter()
s = g.compute_stats()
t3 = time.perf_counter()
print(json.dumps(dict(
    imports=t1 - t0, build=t2 - t1, stats=t3 - t2, files=s.python_files, tests=s.tests,
    edges=sum(s.edges.values()), scanned=s.scanned, unresolved=s.unresolved_imports,
    rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, base_rss_mb=base_rss / 1024,
)))
"""

COLD_GRIMP = """
import json, sys, time
sys.path.insert(0, {root!r})
t0 = time.perf_counter()
import grimp
t1 = time.perf_counter()
g = grimp.build_graph("django", cache_dir=None)
t2 = time.perf_counter()
print(json.dumps(dict(imports=t1 - t0, build=t2 - t1, modules=len(g.modules))))
"""

WARM_MAESTRO = """
import time
t0 = time.perf_counter()
import json, resource
from pathlib import Path
from maestro.graph.build import BuildGraph, Change
t1 = time.perf_counter()
g = BuildGraph.build(Path({root!r}), index_path=Path({index!r}))
t2 = time.perf_counter()
found = g.impacted([Change({changed!r})])
t3 = time.perf_counter()
print(json.dumps(dict(
    t0=t0, answer=t3, imports=t1 - t0, build=t2 - t1, query=t3 - t2, impacted=len(found),
    reused=g.stats.reused_from_index, scanned=g.stats.scanned,
    rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
)), flush=True)
"""

PROFILE = """
import cProfile, io, pstats, sys, tempfile
from pathlib import Path
from maestro.graph.build import BuildGraph, Change
root = Path({root!r})
index = Path(tempfile.mkdtemp()) / "graph.idx"


def show(title, prof):
    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).strip_dirs().sort_stats(key).print_stats(15)
        text = out.getvalue()
        print(f"== {{title}}: top 15 by {{key}} ==")
        print(text[text.index("   ncalls"):].rstrip())


prof = cProfile.Profile()
prof.enable()
BuildGraph.build(root, index_path=index)  # cold: no index yet (it is written at the end)
prof.disable()
show("cold build", prof)
BuildGraph.build(root, index_path=index).impacted([Change({changed!r})])  # caches dists
prof = cProfile.Profile()
prof.enable()
BuildGraph.build(root, index_path=index).impacted([Change({changed!r})])
prof.disable()
show("warm build from index + one impacted query", prof)
"""


@dataclass
class Samples:
    wall: dict[str, list[float]] = field(default_factory=dict)
    info: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    def add(self, tool: str, wall: float, info: dict[str, float] | None = None) -> None:
        self.wall.setdefault(tool, []).append(wall)
        if info is not None:
            self.info.setdefault(tool, []).append(info)

    def med(self, tool: str, key: str | None = None) -> float:
        if key is None:
            return median(self.wall[tool])
        return median([i[key] for i in self.info[tool]])


def ruff_exe() -> str:
    local = Path(PYTHON).parent / "ruff"
    found = str(local) if local.exists() else shutil.which("ruff")
    if not found:
        sys.exit("ruff not found: pip install ruff (the `bench` extra)")
    return found


def have_grimp() -> bool:
    return subprocess.run(python_cmd("import grimp"), capture_output=True).returncode == 0


# -- measurements ----------------------------------------------------------------------------------


def cold_builds(root: Path, runs: int, use_grimp: bool) -> Samples:
    ruff = ruff_exe()

    def maestro() -> tuple[float, dict[str, float]]:
        wall, out, _ = run_timed(python_cmd(COLD_MAESTRO.format(root=str(root))))
        return wall, {**json.loads(out), "cpu": LAST_CPU[0]}

    def ruff_graph() -> tuple[float, dict[str, float]]:
        wall, out, _ = run_timed([ruff, "analyze", "graph", "."], cwd=root)
        return wall, {"files": len(json.loads(out)), "cpu": LAST_CPU[0]}

    def grimp_graph() -> tuple[float, dict[str, float]]:
        wall, out, _ = run_timed(python_cmd(COLD_GRIMP.format(root=str(root))))
        return wall, {**json.loads(out), "cpu": LAST_CPU[0]}

    tools = {"maestro": maestro, "ruff": ruff_graph}
    if use_grimp:
        tools["grimp"] = grimp_graph
    names = list(tools)
    samples = Samples()
    for name in names:  # warm-up: page cache, .pyc files
        tools[name]()
    for r in range(runs):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            wall, info = tools[name]()
            samples.add(name, wall, info)
    return samples


def warm_process(root: Path, runs: int) -> Samples:
    samples = Samples()
    with tempfile.TemporaryDirectory(prefix="bench-graph-index-") as tmp:
        index = Path(tmp) / "graph.idx"
        code = WARM_MAESTRO.format(root=str(root), index=str(index), changed=CHANGED_FOR_WARM)
        for _ in range(2):  # prime: the first builds and saves the index, the second checks it
            _, out, _ = run_timed(python_cmd(code))
        if json.loads(out)["scanned"]:
            print(f"warning: warm process still re-scanned files: {out}", file=sys.stderr)
        bare = python_cmd("pass")
        imports = python_cmd("import maestro.graph.build")
        for r in range(runs):
            steps = [("warm", code), ("bare", None), ("imports", None)]
            steps = steps[r % 3 :] + steps[: r % 3]
            for name, _code in steps:
                if name == "warm":
                    wall, out, start = run_timed(python_cmd(code))
                    info = json.loads(out)
                    info["to_answer"] = info["answer"] - start
                    info["startup"] = info["t0"] - start
                    samples.add("warm", wall, info)
                else:
                    wall, _, _ = run_timed(bare if name == "bare" else imports)
                    samples.add(name, wall)
    return samples


def import_breakdown() -> list[tuple[str, float]]:
    """Self import time per top-level package for `import maestro.graph.build` (one run)."""
    proc = subprocess.run(
        [PYTHON, "-P", "-X", "importtime", "-c", "import maestro.graph.build"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    per: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            top = m.group(4).split(".")[0]
            per[top] = per.get(top, 0.0) + int(m.group(1)) / 1e6
    return sorted(per.items(), key=lambda kv: -kv[1])


def in_process(root: Path, runs: int, sample: int) -> dict[str, Any]:
    """One-file update and impacted, on a copy of the tree (update edits files)."""
    from maestro.graph.build import BuildGraph, Change

    with tempfile.TemporaryDirectory(prefix="bench-graph-tree-", dir=BENCH_DIR) as tmp:
        tree = Path(tmp) / "tree"
        shutil.copytree(root, tree, symlinks=True)
        g = BuildGraph.build(tree)
        files = sorted(g.py)
        rng = random.Random(2)
        upd_files = rng.sample(files, min(sample, len(files)))
        imp_files = rng.sample(files, min(sample, len(files)))

        update_comment: list[float] = []
        update_import: list[float] = []
        for r in range(runs):
            for rel in upd_files:
                for kind, line, out in (
                    ("comment", f"\n# maestro bench {r}\n", update_comment),
                    ("import", f"\nimport json as _bench_json_{r}\n", update_import),
                ):
                    path = tree / rel
                    with path.open("a", encoding="utf-8") as f:
                        f.write(line)
                    t = time.perf_counter()
                    touched = g.update([rel])
                    out.append(time.perf_counter() - t)
                    if kind == "import" and rel not in touched and "*" not in touched:
                        print(f"warning: update({rel}) after a {kind} touched {touched}")

        lib_files = [f for f in files if f.startswith("django/")]
        lib_sample = rng.sample(lib_files, min(sample, len(lib_files)))
        queries = {}
        for label, chosen in (("impacted_any", imp_files), ("impacted_lib", lib_sample)):
            per_file: list[float] = []
            counts: list[int] = []
            worst = ("", 0.0, 0)
            for rel in chosen:
                times = []
                for _ in range(runs):
                    t = time.perf_counter()
                    found = g.impacted([Change(rel)])
                    times.append(time.perf_counter() - t)
                m = median(times)
                per_file.append(m)
                counts.append(len(found))
                if m > worst[1]:
                    worst = (rel, m, len(found))
            queries[label] = {"times": per_file, "counts": counts, "worst": worst}
        return {
            "update_comment": update_comment,
            "update_import": update_import,
            "queries": queries,
            "tests": len(g.tests),
        }


def profile(root: Path) -> str:
    _, out, _ = run_timed(python_cmd(PROFILE.format(root=str(root), changed=CHANGED_FOR_WARM)))
    return out


# -- report ----------------------------------------------------------------------------------------


def verdict(value: float, target: float) -> str:
    return "yes" if value <= target else "**no**"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7, help="rounds per measurement (>= 5)")
    parser.add_argument("--quick", action="store_true", help="5 rounds, 20 sampled files")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=None,
                        help="write docs/BENCHMARKS.md (default: yes unless --quick)")  # fmt: skip
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile run")
    args = parser.parse_args(argv)
    runs = 5 if args.quick else max(5, args.runs)
    sample = 20 if args.quick else 50
    write = (not args.quick) if args.write is None else args.write

    root = fetch_sdist(*DJANGO)
    version = root.name.rpartition("-")[2]
    use_grimp = have_grimp()
    print(f"Django {version} at {root}; {runs} rounds; {machine()}", flush=True)
    if not use_grimp:
        print("grimp not installed (pip install grimp, or the `bench` extra): skipping it")

    cold = cold_builds(root, runs, use_grimp)
    print("cold builds done", flush=True)
    warm = warm_process(root, runs)
    print("warm processes done", flush=True)
    breakdown = import_breakdown()
    inproc = in_process(root, runs, sample)
    print("in-process measurements done", flush=True)
    prof = "" if args.no_profile else profile(root)

    m_wall, r_wall = cold.med("maestro"), cold.med("ruff")

    def paired(tool: str) -> str:
        ratios = [a / b for a, b in zip(cold.wall[tool], cold.wall["ruff"], strict=True)]
        return f"{median(ratios):.2f}x ({min(ratios):.2f} to {max(ratios):.2f})"

    m_build = cold.med("maestro", "build")
    info0 = cold.info["maestro"][0]
    rows = [
        [
            "maestro (fresh process, no index)",
            f"whole tree: {int(info0['files'])} .py files, {int(info0['tests'])} test files",
            fmt_s(m_wall),
            f"{fmt_s(m_build)} build + {fmt_s(cold.med('maestro', 'imports'))} imports + "
            f"{fmt_s(cold.med('maestro', 'stats'))} stats",
            fmt_s(cold.med("maestro", "cpu")),
            paired("maestro"),
        ],
        [
            "`ruff analyze graph` (Rust, parallel)",
            f"whole tree: {int(cold.info['ruff'][0]['files'])} .py files",
            fmt_s(r_wall),
            "—",
            fmt_s(cold.med("ruff", "cpu")),
            "1.00x",
        ],
    ]
    if use_grimp:
        g_wall = cold.med("grimp")
        rows.append(
            [
                '`grimp.build_graph("django", cache_dir=None)`',
                f"`django` package only: {int(cold.info['grimp'][0]['modules'])} modules",
                fmt_s(g_wall),
                f"{fmt_s(cold.med('grimp', 'build'))} build + "
                f"{fmt_s(cold.med('grimp', 'imports'))} imports",
                fmt_s(cold.med("grimp", "cpu")),
                paired("grimp"),
            ]
        )
    cold_table = table(
        ["cold build (median)", "scope", "process wall", "in process", "CPU (user+sys)",
         "vs ruff, paired per round"],
        rows, "llrrrr",
    )  # fmt: skip

    to_answer = warm.med("warm", "to_answer")
    upd_c, upd_i = inproc["update_comment"], inproc["update_import"]
    queries = inproc["queries"]
    ql = queries["impacted_lib"]
    hubs = {"times": [t for t, n in zip(ql["times"], ql["counts"], strict=True) if n >= HUB]}
    rss = cold.med("maestro", "rss_mb")
    base_rss = cold.med("maestro", "base_rss_mb")
    ratios = [a / b for a, b in zip(cold.wall["maestro"], cold.wall["ruff"], strict=True)]
    ratio = median(ratios)
    target_rows = [
        ["cold build, maestro / ruff (process wall, paired per round)", f"{ratio:.2f}x",
         f"{percentile(ratios, 95):.2f}x", "<= 1.5x",
         verdict(ratio, 1.5)],
        ["warm second process, to first `impacted` answer", fmt_s(to_answer), "", "<= 0.3 s",
         verdict(to_answer, 0.3)],
        ["· interpreter startup (`python -c pass`)", fmt_s(warm.med("bare")), "", "", ""],
        ["· `import maestro.graph.build` (process, incl. startup)", fmt_s(warm.med("imports")),
         "", "", ""],
        ["· in the warm process: imports", fmt_s(warm.med("warm", "imports")), "", "", ""],
        ["· in the warm process: build from index", fmt_s(warm.med("warm", "build")), "", "", ""],
        ["· in the warm process: `impacted` query", fmt_s(warm.med("warm", "query")), "", "", ""],
        ["one-file `update` (appended comment)", fmt_ms(percentile(upd_c, 50)),
         fmt_ms(percentile(upd_c, 95)), "<= 10 ms", verdict(percentile(upd_c, 50), 0.010)],
        ["one-file `update` (appended import)", fmt_ms(percentile(upd_i, 50)),
         fmt_ms(percentile(upd_i, 95)), "<= 10 ms", verdict(percentile(upd_i, 50), 0.010)],
        *[
            [f"`impacted` for one changed file ({what})", fmt_ms(percentile(q["times"], 50)),
             fmt_ms(percentile(q["times"], 95)), "<= 5 ms",
             verdict(percentile(q["times"], 50), 0.005)]
            for what, q in (("random tree file", queries["impacted_any"]),
                            ("random `django/` file", queries["impacted_lib"]),
                            (f"`django/` file impacting >= {HUB} tests", hubs))
            if q["times"]
        ],
        ["peak RSS, fresh process with the Django graph", f"{rss:.0f} MB",
         "", "<= 150 MB", verdict(rss, 150)],
        ["· of which interpreter + imports", f"{base_rss:.0f} MB", "", "", ""],
    ]  # fmt: skip
    targets_table = table(["measurement", "median / p50", "p95", "target", "met"], target_rows)
    qa = queries["impacted_any"]
    notes = [
        f"- `update`: {len(upd_c) // runs} random files x {runs} rounds per kind (the appended "
        "comment changes the digest only, the appended import relinks the file). `impacted`: "
        f"median of {runs} queries for each of {len(ql['times'])} random files, then p50/p95 "
        f"across files. Targets per query: random tree file median {median(qa['counts']):.0f}, "
        f"random `django/` file median {median(ql['counts']):.0f} ({len(hubs['times'])} of "
        f"{len(ql['counts'])} sampled impact >= {HUB}, "
        f"{sum(1 for n in ql['counts'] if n == 0)} impact none), max {max(ql['counts'])} of "
        f"{inproc['tests']} test files; slowest `{ql['worst'][0]}` {fmt_ms(ql['worst'][1])} "
        f"({ql['worst'][2]} targets).",
        f"- Warm process: index reused for {int(warm.info['warm'][0]['reused'])} files, "
        f"{int(warm.info['warm'][0]['scanned'])} re-scanned; query `impacted({CHANGED_FOR_WARM})` "
        f"-> {int(warm.info['warm'][0]['impacted'])} targets. Time to first answer is measured "
        f"from just before spawning to the child's answer (CLOCK_MONOTONIC), excluding teardown; "
        f"whole process wall: {fmt_s(warm.med('warm'))}.",
        "- Import self-time by top-level package (`python -X importtime -c "
        "'import maestro.graph.build'`, one run): "
        + ", ".join(f"{name} {s * 1000:.0f} ms" for name, s in breakdown[:8])
        + ".",
        "- Scope differs: ruff maps every file's imports to files; grimp builds only the `django` "
        "package's internal graph (no tests/); maestro also resolves third-party imports, "
        "`__init__` chains, conftest and pytest discovery and global inputs.",
    ]
    report = "\n\n".join([cold_table, targets_table, "\n".join(notes)])
    print()
    print(report)
    if prof:
        prof_path = BENCH_DIR / "profile_graph.txt"
        prof_path.write_text(prof, encoding="utf-8")
        print(f"\ncProfile of one cold and one warm build (also in {prof_path}):\n{prof}")
    if write:
        body = "\n\n".join(
            [
                f"Django {version} sdist, {today()}, {machine()}, maestro at "
                f"{git_rev('graph', 'maestro')}; medians of {runs} rounds, tools "
                'alternating per round after one untimed warm-up round (so "cold" means a fresh '
                "process without index or cache, with a warm OS page cache).",
                "Reproduce: `make relink && .venv/bin/pip install grimp && "
                f".venv/bin/python -m bench.bench_graph --runs {runs}`",
                report,
            ]
        )
        write_section(SECTION, body)
        print("\nwrote docs/BENCHMARKS.md")


if __name__ == "__main__":
    main()
