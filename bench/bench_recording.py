"""Recording overhead of a first run: Maestro vs plain pytest vs pytest-testmon.

For requests and more-itertools (sdists from PyPI, one venv per project and interpreter under
.bench/recording/), each round runs, in a shuffled order, on the same tree and the same tests:

- `pytest`: plain pytest (no cache provider);
- `pytest --testmon`: a fresh testmon database (its first, recording run);
- `maestro test`: a first run from an empty cache and state, without a daemon (graph build,
  runner, recorder plugin with function tracing, storing every node's result and record);
- `maestro test, MAESTRO_TRACE=off`: the same without function tracing (what tracing adds);
- `pytest + recorder`: plain pytest with Maestro's plugin loaded and its events written to
  /dev/null (the plugin's own cost, no graph or cache).

Tests failing in this sandbox and tests slower than --slow-s are deselected for every variant
alike (bench_precision's rule). The machine is small and noisy: medians over rounds, and ratios
to plain pytest's median from the same rounds.

    .venv/bin/python -m bench.bench_recording [--rounds 5] [--only more-itertools]
        [--python ~/.pyenv/versions/3.12.1/bin/python3.12] [--write]

`--python` picks the interpreter of the project venvs (the workspace interpreter Maestro traces
in): 3.11 uses the cProfile hook, 3.12+ `sys.monitoring`. Repeat `--python` for several.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.bench_precision import _slow_and_failing
from bench.bench_test_cache import MAESTRO_CODE, PROJECTS, Project, prepare
from bench.common import BENCH_DIR, REPO, git_rev, machine, table, today, write_section

WORK = BENCH_DIR / "recording"
SECTION = "Recording overhead of a first run (issue 8)"
PLUGIN_DIR = REPO / "engine" / "plugin"
TIMEOUT_S = 1800
VARIANTS = (
    "pytest",
    "pytest --testmon",
    "maestro test",
    "maestro test, MAESTRO_TRACE=off",
    "pytest + recorder",
)


@dataclass
class Result:
    project: str
    python: str
    nodes: int
    times: dict[str, list[float]] = field(default_factory=dict)

    def median(self, variant: str) -> float:
        return statistics.median(self.times[variant])

    def ratio(self, variant: str) -> float:
        return self.median(variant) / self.median("pytest")


def _version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def _run(cmd: list[str], cwd: Path, env: dict[str, str], **kw: object) -> tuple[float, int, str]:
    started = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
        **kw,  # type: ignore[call-overload]
    )  # fmt: skip
    return time.perf_counter() - started, proc.returncode, proc.stdout + proc.stderr


def _count(out: str) -> int:
    """Tests run, from pytest's summary line (`N passed, M deselected in ...`)."""
    last = [line for line in out.splitlines() if " in " in line and "passed" in line]
    if not last:
        return 0
    return sum(
        int(n) for n, what in re.findall(r"(\d+) (\w+)", last[-1]) if what in ("passed", "failed")
    )


def bench_project(project: Project, python: str, rounds: int, slow_s: float, seed: int) -> Result:
    version = _version(python)
    tree = prepare(project, work=WORK, python=python, suffix=f"-py{version}")
    py = str(tree / ".venv/bin/python")
    bad, slow = _slow_and_failing(tree, slow_s)
    args = [a for n in [*bad, *slow] for a in ("--deselect", n)]
    state = WORK / f"state-{project.name}-py{version}"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    base_env.pop("VIRTUAL_ENV", None)
    base_env["MAESTRO_DAEMON"] = "off"
    pytest = [py, "-m", "pytest", "-q", "-p", "no:randomly", f"--rootdir={tree}"]
    result = Result(project.name, version, 0, {v: [] for v in VARIANTS})
    rng = random.Random(seed)
    print(
        f"{project.name} on Python {version}: deselecting {len(bad)} failing and "
        f"{len(slow)} slow tests; {rounds} rounds",
        flush=True,
    )

    def run(variant: str) -> float:
        shutil.rmtree(state, ignore_errors=True)
        state.mkdir(parents=True)
        shutil.rmtree(tree / ".pytest_cache", ignore_errors=True)
        env = dict(base_env)
        env["MAESTRO_CACHE_DIR"] = str(state / "cache")
        env["MAESTRO_STATE_DIR"] = str(state / "state")
        kw: dict[str, object] = {}
        if variant == "pytest":
            cmd = [*pytest, "-p", "no:cacheprovider", *args]
        elif variant == "pytest --testmon":
            env["TESTMON_DATAFILE"] = str(state / "testmondata")
            cmd = [*pytest, "--testmon", *args]
        elif variant.startswith("maestro test"):
            if variant.endswith("=off"):
                env["MAESTRO_TRACE"] = "off"
            cmd = [sys.executable, "-c", MAESTRO_CODE, "test", "--", *args]
        else:  # pytest + recorder
            sink = os.open(os.devnull, os.O_WRONLY)
            env["MAESTRO_EVENTS_FD"] = str(sink)
            env["PYTHONPATH"] = str(PLUGIN_DIR)
            kw["pass_fds"] = (sink,)
            cmd = [*pytest, "-p", "no:cacheprovider", "-p", "maestro_pytest_plugin", *args]
        try:
            elapsed, code, out = _run(cmd, tree, env, **kw)
        finally:
            if "pass_fds" in kw:
                os.close(int(env["MAESTRO_EVENTS_FD"]))
        if code not in (0, 1) or (variant.startswith("maestro") and " files, " not in out):
            raise SystemExit(f"{variant} failed ({code}) on {project.name}:\n{out[-3000:]}")
        if variant == "pytest":
            result.nodes = _count(out)
        return elapsed

    for n in range(rounds):
        order = list(VARIANTS)
        rng.shuffle(order)
        for variant in order:
            result.times[variant].append(run(variant))
        line = ", ".join(f"{v} {result.times[v][-1]:.2f}s" for v in VARIANTS)
        print(f"  round {n + 1}: {line}", flush=True)
    return result


def render(results: list[Result], rounds: int) -> str:
    rows = []
    for r in results:
        row: list[object] = [f"{r.project} (Python {r.python}, {r.nodes} tests)"]
        row.append(f"{r.median('pytest'):.2f} s")
        for variant in VARIANTS[1:]:
            row.append(f"{r.median(variant):.2f} s ({r.ratio(variant):.2f}x)")
        rows.append(row)
    head = ["project", *VARIANTS]
    return (
        f"{today()}, {machine()} (the bench process; the projects run on the Python named in "
        f"each row), maestro at {git_rev('daemon', 'cache', 'graph', 'maestro')}. Medians of "
        f"{rounds} rounds; each round runs every variant once, in a shuffled order; the ratio is "
        "to plain pytest's median.\n\n"
        "Reproduce: `.venv/bin/python -m bench.bench_recording --rounds "
        f"{rounds} --python .venv/bin/python --python ~/.pyenv/versions/3.12.1/bin/python3.12 "
        "--write` (own trees and venvs under `.bench/recording/`).\n\n" + table(head, rows)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=[p.name for p in PROJECTS])
    parser.add_argument("--python", action="append", help="project interpreter (repeatable)")
    parser.add_argument("--slow-s", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    pythons = [os.path.expanduser(p) for p in args.python or [sys.executable]]
    results = []
    for python in pythons:
        for project in PROJECTS:
            if args.only and project.name != args.only:
                continue
            r = bench_project(project, python, args.rounds, args.slow_s, args.seed)
            results.append(r)
            print(render([r], args.rounds).rsplit("\n\n", 1)[-1], flush=True)
    text = render(results, args.rounds)
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
