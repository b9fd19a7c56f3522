"""First run, repeated: `maestro test` on an empty cache vs plain pytest vs pytest-testmon's first
run, on the fidelity bench's projects, trees and venvs (bench/bench_fidelity.py prepares them).

Each round runs the three commands back to back in a rotating order, each from scratch: plain
pytest with `-p no:cacheprovider`, `pytest --testmon` with its data file removed, and the
`maestro` console script's entry point (`test --no-daemon`, Maestro's cache and state emptied
but for the secret detectors' table, which Maestro writes once per machine).
With `--daemon`, a fourth command: `maestro test` through a workspace daemon started (and left
to settle, as an editor's would have) before the timing, on an emptied cache: the first run of a
person whose editor or earlier command started the daemon. The table gives medians and the
median of the per-round ratios, so that a load spike hits the commands of one round alike;
the CPU seconds of each command (and of the processes it waited for) go beside the wall times,
the steadier measure on a loaded host.
Outcomes are not compared here (the fidelity bench does it); a round where Maestro's exit code
differs from pytest's is counted.

    .venv/bin/python -m bench.bench_first_run --rounds 5
    .venv/bin/python -m bench.bench_first_run --rounds 5 --python /path/to/python3.12
    .venv/bin/python -m bench.bench_first_run --rounds 3 --daemon --projects pluggy,click
    .venv/bin/python -m bench.bench_first_run --work-dir .bench/first_run  # beside bench_fidelity

With `--baseline DIR`, one more command in each round: the same in-process `maestro test` with
DIR first on PYTHONPATH, where DIR holds another build of the `maestro` package (an earlier
commit's tree laid out as the package, see `baseline_tree`): a change's before and after, side by
side in the same rounds.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import bench_fidelity as fidelity
from bench.bench_fidelity import (
    DEFAULT_PYTHON,
    PROJECTS,
    Bench,
    Ran,
    Skip,
    _venv_python,
    prepare,
    run,
)
from bench.bench_test_cache import MAESTRO_CODE
from bench.common import git_rev, machine, median, table, write_section


@dataclass
class Timings:
    name: str
    pytest: list[float] = field(default_factory=list)
    testmon: list[float] = field(default_factory=list)
    maestro: list[float] = field(default_factory=list)
    daemon: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    # CPU seconds (user + system) of each command and the processes it waited for; none for the
    # daemon's side, whose work is done in a process this one does not wait for
    cpu: dict[str, list[float]] = field(default_factory=dict)
    disagreements: int = 0

    def ratio(self, of: list[float], to: list[float]) -> float:
        return median([a / b for a, b in zip(of, to, strict=True)])


def children_cpu() -> float:
    """CPU seconds of this process's waited-for descendants so far."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


SETTLE_S = 3.0  # a started daemon builds its graph and starts the next run's pytest process


def through_daemon(bench: Bench, what: str, timeout: float) -> Ran:
    """Start the workspace daemon on an empty cache, let it settle, time `maestro test` through
    it, stop it."""
    env = {k: v for k, v in bench.maestro_env.items() if k != "MAESTRO_DAEMON"}
    root = ["--root", str(bench.tree)]
    daemon = [sys.executable, "-c", MAESTRO_CODE, "daemon"]
    started = run([*daemon, "start", *root], bench.tree, env, timeout)
    if started.code != 0:
        raise RuntimeError(f"maestro daemon start failed: {started.out}")
    try:
        time.sleep(SETTLE_S)
        _, log = bench._start(what)
        return run(
            [sys.executable, "-c", MAESTRO_CODE, "test", *root], bench.tree, env, timeout, log
        )
    finally:
        run([*daemon, "stop", *root], bench.tree, env, timeout)


def baseline_tree(
    rev: str, into: Path, *, revert: Sequence[str] = (), repo: Path | None = None
) -> Path:
    """The `maestro` package of commit ``rev`` laid out as installed, under ``into`` (for
    ``--baseline``): the source tree from ``git archive``, less the changes of the ``revert``
    commits, the top-level folders moved into the package as pyproject's package-dir maps
    them."""
    repo = repo or Path(__file__).resolve().parent.parent
    src = into / "src"
    src.mkdir(parents=True)
    got = subprocess.run(["git", "archive", "--format=tar", rev], cwd=repo, capture_output=True)
    if got.returncode != 0:
        raise SystemExit(
            f"--baseline {rev}: `git archive` failed in {repo}: "
            f"{got.stderr.decode(errors='replace').strip()}; run the bench from a git checkout "
            "of maestro or name one with --repo"
        )
    archive = got.stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    for commit in revert:
        diff = subprocess.run(
            ["git", "diff", "--binary", f"{commit}^", commit],
            cwd=repo, check=True, capture_output=True,
        ).stdout  # fmt: skip
        subprocess.run(["git", "apply", "-R"], cwd=src, input=diff, check=True)
    # the commit's own package-dir: an older commit may map other folders
    dirs = tomllib.loads((src / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(dirs.items(), key=lambda kv: kv[0].count(".")):
        target = into / package.replace(".", "/")
        if target.exists() and package != "maestro":
            shutil.rmtree(target)
        shutil.copytree(src / folder, target, dirs_exist_ok=True)
    return into


def with_baseline(bench: Bench, baseline: Path, what: str) -> Ran:
    """`maestro test --no-daemon` as ``Bench.maestro`` runs it, with ``baseline`` first on
    PYTHONPATH."""
    env = dict(bench.maestro_env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(baseline), env.get("PYTHONPATH")) if p)
    _, log = bench._start(what)
    cmd = [sys.executable, "-c", MAESTRO_CODE, "test", "--no-daemon", "--root", str(bench.tree)]
    # as `Bench.maestro` does: the run's JUnit file is written on both sides
    cmd += ["--junit-xml", str(bench.out / "baseline.xml")]
    cmd += ["--", *bench.spec.pytest_args] if bench.spec.pytest_args else []
    saved = bench.maestro_env
    bench.maestro_env = env
    try:
        return run(cmd, bench.tree, env, bench.timeout, log)
    finally:
        bench.maestro_env = saved


def as_installed(*trees: Path) -> None:
    """Byte-compile Maestro's package as an installer does (pip writes every module's ``.pyc``
    at install): an editable link tree, freshly made, has none, and with
    ``PYTHONDONTWRITEBYTECODE`` in the bench's environment every ``maestro`` command would
    compile its ~100 modules from source (0.1-0.2 s of CPU) where plain pytest's side loads
    bytecode."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("maestro")
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    for root in [*roots, *trees]:
        compileall.compile_dir(str(root), quiet=1, workers=1)


def empty_state(state: Path) -> None:
    """Empty Maestro's cache and state for a first run, but keep the secret detectors' table
    (``cache/detectors``): Maestro writes it once per machine and detect-secrets version, at the
    first run it ever makes there, so a new project's first run does not pay for it again."""
    keep = state / "cache" / "detectors"
    if not state.is_dir():
        return
    for entry in [*state.iterdir(), *(keep.parent.iterdir() if keep.parent.is_dir() else [])]:
        if entry in (keep, keep.parent):
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def bench_project(
    bench: Bench, rounds: int, *, daemon: bool = False, baseline: Path | None = None
) -> Timings:
    t = Timings(f"{bench.spec.name} {bench.spec.version}")
    # Maestro's side loads its bytecode (see as_installed), as pytest's side does
    bench.maestro_env.pop("PYTHONDONTWRITEBYTECODE", None)
    state = bench.out / "maestro"
    data = bench.out / "testmondata"
    for r in range(rounds):
        order = ["pytest", "testmon", "maestro", *(["daemon"] if daemon else [])]
        order += ["baseline"] if baseline is not None else []
        order = order[r % len(order) :] + order[: r % len(order)]
        codes: dict[str, int] = {}
        for what in order:
            cpu_before = children_cpu()
            if what == "pytest":
                ran, _ = bench.pytest(f"first-{r}")
                t.pytest.append(ran.wall)
            elif what == "testmon":
                for stale in data.parent.glob("testmondata*"):
                    stale.unlink()
                ran, _ = bench.pytest(f"testmon-first-{r}", testmon=True)
                t.testmon.append(ran.wall)
            elif what == "maestro":
                empty_state(state)
                ran, _, _ = bench.maestro(f"maestro-first-{r}")
                t.maestro.append(ran.wall)
            elif what == "baseline":
                assert baseline is not None
                empty_state(state)
                ran = with_baseline(bench, baseline, f"baseline-first-{r}")
                t.baseline.append(ran.wall)
            else:
                empty_state(state)
                ran = through_daemon(bench, f"daemon-first-{r}", bench.timeout)
                t.daemon.append(ran.wall)
            codes[what] = ran.code
            if what != "daemon":
                t.cpu.setdefault(what, []).append(children_cpu() - cpu_before)
        if any(codes[k] != codes["pytest"] for k in ("maestro", "daemon") if k in codes):
            t.disagreements += 1
        through = f" daemon {t.daemon[-1]:.2f}s" if daemon else ""
        through += f" baseline {t.baseline[-1]:.2f}s" if baseline is not None else ""
        print(
            f"{t.name} round {r + 1}: pytest {t.pytest[-1]:.2f}s testmon {t.testmon[-1]:.2f}s "
            f"maestro {t.maestro[-1]:.2f}s{through}; CPU "
            + " ".join(f"{k} {v[-1]:.2f}s" for k, v in sorted(t.cpu.items())),
            file=sys.stderr,
        )
    return t


def report(results: list[Timings], command: str, python: str, took: float) -> str:
    rows = [
        [
            t.name,
            f"{median(t.pytest):.2f} s",
            f"{median(t.testmon):.2f} s",
            f"{median(t.maestro):.2f} s",
            f"{t.ratio(t.maestro, t.pytest):.2f}x",
            f"{t.ratio(t.maestro, t.testmon):.2f}x",
            *(
                [f"{median(t.daemon):.2f} s", f"{t.ratio(t.daemon, t.pytest):.2f}x"]
                if t.daemon
                else []
            ),
            *(
                [f"{median(t.baseline):.2f} s", f"{t.ratio(t.baseline, t.pytest):.2f}x"]
                if t.baseline
                else []
            ),
            f"{t.ratio(t.cpu['maestro'], t.cpu['pytest']):.2f}x",
            *([f"{t.ratio(t.cpu['baseline'], t.cpu['pytest']):.2f}x"] if t.baseline else []),
            str(t.disagreements),
        ]
        for t in results
    ]
    daemon = any(t.daemon for t in results)
    baseline = any(t.baseline for t in results)
    header = [
        "project",
        "pytest",
        "testmon first",
        "maestro first",
        "maestro / pytest",
        "maestro / testmon",
        *(["maestro first, warm daemon", "warm daemon / pytest"] if daemon else []),
        *(["baseline first", "baseline / pytest"] if baseline else []),
        "maestro CPU / pytest CPU",
        *(["baseline CPU / pytest CPU"] if baseline else []),
        "maestro's exit code differs",
    ]
    return (
        f"{time.strftime('%Y-%m-%d')}, {machine()}, project venvs on {python}, maestro at "
        f"{git_rev('maestro', 'engine', 'graph', 'cache')}; the bench took {took / 60:.0f} min. "
        f"Reproduce: `{command}`\n\n"
        "Medians over the rounds; the ratios are medians of per-round ratios (the commands "
        "of a round run back to back, in a rotating order). CPU: user + system seconds of the "
        "command and every process it waited for (maestro's pytest included).\n\n"
        + table(header, rows)
        + "\n"
    )


def main(argv: list[str] | None = None) -> None:
    names = [p.name for p in PROJECTS]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", default=",".join(names), help="comma-separated")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--python", default=DEFAULT_PYTHON, help="makes the project venvs")
    parser.add_argument("--timeout-s", type=float, default=900.0, help="per command")
    parser.add_argument("--no-write", action="store_true", help="leave docs/BENCHMARKS.md alone")
    parser.add_argument("--daemon", action="store_true", help="also time a run through a daemon")
    parser.add_argument(
        "--baseline", metavar="REV", help="also time `maestro test` as of this commit"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="trees and venvs of its own (made once there) instead of the fidelity bench's, "
        "which this bench resets to pristine: for running beside bench_fidelity",
    )
    parser.add_argument(
        "--baseline-revert",
        metavar="COMMITS",
        default="",
        help="comma-separated commits whose changes the baseline leaves out",
    )
    parser.add_argument(
        "--repo",
        type=Path,
        default=None,
        help="the git checkout --baseline takes its commit from (default: this bench's own)",
    )
    ns = parser.parse_args(argv)
    if ns.work_dir is not None:
        fidelity.WORK = ns.work_dir.resolve()
    baseline = None
    if ns.baseline:
        into = Path(tempfile.mkdtemp(prefix="maestro-baseline-"))
        revert = [c for c in ns.baseline_revert.split(",") if c]
        baseline = baseline_tree(ns.baseline, into, revert=revert, repo=ns.repo)
    as_installed(*([baseline] if baseline is not None else []))
    started = time.monotonic()
    results: list[Timings] = []
    for spec in PROJECTS:
        if spec.name not in ns.projects.split(","):
            continue
        try:
            tree = prepare(spec, ns.python, ns.timeout_s)
        except Skip as exc:
            print(f"{spec.name}: skipped ({exc})", file=sys.stderr)
            continue
        bench = Bench(spec, tree, ns.timeout_s)
        results.append(bench_project(bench, ns.rounds, daemon=ns.daemon, baseline=baseline))
    command = "python -m bench.bench_first_run " + " ".join(argv or sys.argv[1:])
    python = _venv_python(ns.python)
    text = report(results, command.strip(), python, time.monotonic() - started)
    if baseline is not None:
        shutil.rmtree(baseline, ignore_errors=True)
    print(text)
    if not ns.no_write:
        write_section(f"First run, repeated (bench/bench_first_run.py), {python}", text)


if __name__ == "__main__":
    main()
