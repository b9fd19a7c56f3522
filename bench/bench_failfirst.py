"""Fail-first through a real daemon: how soon the first failing test arrives under each
`ml.fail-first` mode.

For each mode a fresh daemon (its own state and cache dirs) on a private copy of requests 2.34.2
(sdist from PyPI, the venv bench_test_cache builds; the whole suite) is primed with one full run,
then replays the same mutants: killers from bench_model's requests log, seeded. For each one it
saves the mutant, runs `maestro test` (the daemon's run_tests, like the CLI: node-level
selection, fail-first order), saves the revert and runs again, so the history learns as it would
in a real session. Every mode sees the same saves in the same order.

Measured per mutant that fails a test: run start -> first failing test result (the daemon's
progress events), the APFD of the order pytest executed, and how many tests ran.

    .venv/bin/python -m bench.bench_failfirst [--mutants 10] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import refresh_link_tree
from bench.bench_model import Mutant, apply, load_model_package, logged_mutants
from bench.bench_test_cache import PROJECTS as CACHE_PROJECTS
from bench.bench_test_cache import prepare
from bench.common import BENCH_DIR, fetch_sdist, git_rev, machine, table, today, write_section

WORK = BENCH_DIR / "failfirst"
SEED = 11
MODES = ("off", "files", "tests")
BASE_PYTHONPATH = os.environ.get("PYTHONPATH", "")  # the link tree (bench/__init__.py)
TITLE = "Fail-first through the daemon (issue 6)"
# A per-test alarm for every mode alike: a mutant that makes a test wait forever fails that test
# instead of hanging the run (the daemon itself has no per-test timeout).
ALARM = r"""
import signal
import pytest


def _alarm(signum, frame):
    raise TimeoutError("test exceeded 10 s")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, 10.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
"""
# deselected for every mode alike: they need the network or take seconds here
DESELECT = (
    "tests/test_requests.py::TestTimeout::test_connect_timeout",
    "tests/test_requests.py::TestTimeout::test_total_timeout_connect",
)


@dataclass
class Step:
    mutant: str
    first_fail_s: float | None = None  # run start -> first failing test result
    apfd: float | None = None
    ran: int = 0
    failed: int = 0
    wall_s: float = 0.0


@dataclass
class Phase:
    mode: str
    steps: list[Step] = field(default_factory=list)
    prime_s: float = 0.0


def killers(count: int) -> list[Mutant]:
    found: list[Mutant] = []
    for m, row in logged_mutants("requests"):
        # bench_model stops a test after 5 s: on a loaded host that is a "failure" of no mutant
        failing = [t for t, (o, d) in row["results"].items() if o == "failed" and d < 4.9]
        # a mutant that breaks every test (an import) leaves nothing to order
        if failing and len(failing) < len(row["results"]):
            found.append(m)
    random.Random(SEED).shuffle(found)
    return found[:count]


def run_phase(
    mode: str, chosen: list[Mutant], python: Path, threshold: float | None = None
) -> Phase:
    """One fresh daemon replaying `chosen` under `ml.fail-first = mode`; with `threshold`, the
    mutants' runs are `maestro test --predictive --threshold T` (the reverts' are plain)."""
    from maestro import wire
    from maestro.daemon.lifecycle import start_daemon, stop_daemon
    from maestro.daemon.transport.client import SyncDaemonClient

    load_model_package()
    from maestro.model.metrics import apfd

    spec = next(p for p in CACHE_PROJECTS if p.name == "requests")
    name = mode if threshold is None else f"predictive-{threshold:g}"
    root = (WORK / name / "ws").resolve()
    shutil.rmtree(WORK / name, ignore_errors=True)
    shutil.copytree(fetch_sdist(spec.name, spec.spec), root)
    text = (root / "pyproject.toml").read_text()
    text += (
        f'\n[tool.maestro]\ninterpreter = "{python}"\nenv-allowlist = ["PYTHONPATH"]\n'
        f'\n[tool.maestro.ml]\nfail-first = "{mode}"\n'
    )
    (root / "pyproject.toml").write_text(text)
    os.environ["MAESTRO_STATE_DIR"] = str(WORK / name / "state")
    os.environ["MAESTRO_CACHE_DIR"] = str(WORK / name / "cache")
    plugins = WORK / "plugin"
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / "failfirst_alarm.py").write_text(ALARM)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(root / "src"), str(plugins), *filter(None, BASE_PYTHONPATH.split(os.pathsep))]
    )
    env = dict(os.environ)
    args = ["-p", "failfirst_alarm", *(a for node in DESELECT for a in ("--deselect", node))]
    phase = Phase(name)
    refresh_link_tree()
    reply = start_daemon(root)
    assert reply is not None
    try:
        with SyncDaemonClient(root, start=False, timeout=900) as client:

            def run(predictive: bool = False) -> Step:
                order: list[str] = []
                failing: set[str] = set()
                first: list[float] = []
                t0 = time.monotonic()

                def on_event(event: wire.Event) -> None:
                    if event.event != "run.progress":
                        return
                    inner = (event.payload or {}).get("event", {})
                    if inner.get("event") != "test_result":
                        return
                    order.append(inner["nodeid"])
                    if inner.get("outcome") in ("failed", "error"):
                        failing.add(inner["nodeid"])
                        if not first:
                            first.append(time.monotonic() - t0)

                params = wire.RunTestsParams(
                    env=env, pytest_args=args, predictive=predictive, threshold=threshold
                )
                result = client.stream(wire.RUN_TESTS, params, on_event, timeout=900)
                step = Step("", first[0] if first else None, apfd(order, failing))
                step.ran, step.failed = len(order), len(failing)
                step.wall_s = time.monotonic() - t0
                assert result.exit_code in (0, 1), result.exit_code
                return step

            t0 = time.monotonic()
            prime = run()
            phase.prime_s = time.monotonic() - t0
            print(f"[{name}] primed: {prime.ran} tests in {phase.prime_s:.1f}s", flush=True)
            for i, m in enumerate(chosen):
                original = apply(root, m)
                time.sleep(1.0)  # the watcher's batch: the change set of the run
                step = run(predictive=threshold is not None)
                step.mutant = m.key
                phase.steps.append(step)
                shown = "-" if step.first_fail_s is None else f"{step.first_fail_s:.2f}s"
                score = "-" if step.apfd is None else f"{step.apfd:.3f}"
                print(
                    f"[{name}] {i + 1:2d}/{len(chosen)} {m.key}: {step.failed} failing of "
                    f"{step.ran} run, first failure {shown}, APFD {score}",
                    flush=True,
                )
                (root / m.file).write_text(original)
                time.sleep(1.0)
                run()
    finally:
        stop_daemon(root, timeout=30)
    return phase


def report(phases: dict[str, Phase], chosen: list[Mutant]) -> str:
    base = "off" if "off" in phases else next(iter(phases))  # the ratios' baseline
    keys = [i for i, s in enumerate(phases[base].steps) if s.failed]

    def med(xs: list[float]) -> str:
        return f"{statistics.median(xs):.3f}" if xs else "-"

    def col(mode: str, attr: str) -> list[float]:
        steps = phases[mode].steps
        return [v for i in keys if (v := getattr(steps[i], attr)) is not None]

    def ratio(mode: str) -> str:
        pairs = [
            (phases[base].steps[i].first_fail_s, phases[mode].steps[i].first_fail_s) for i in keys
        ]
        rs = [b / a for a, b in pairs if a and b is not None]
        return f"{statistics.median(rs):.2f}" if rs else "-"

    rows = [
        [
            f"`{mode}`",
            med(col(mode, "apfd")),
            med(col(mode, "first_fail_s")) + " s",
            ratio(mode),
            med([float(s.ran) for s in phases[mode].steps if s.failed]),
        ]
        for mode in MODES
        if mode in phases
    ]
    body = table(
        ["ml.fail-first", "APFD (median)", "run start -> first failure (median)",
         f"vs {base} (median ratio)", "tests run (median)"],
        rows, "lrrrr",
    )  # fmt: skip
    extra = []
    for name, ph in phases.items():
        if name in MODES:
            continue
        truth = [phases[base].steps[i].failed for i in keys]
        found = [ph.steps[i].failed for i in keys]
        ran = sum(s.ran for s in ph.steps)
        ran_off = sum(s.ran for s in phases[base].steps)
        extra.append(
            f"- `{name}` (fail-first `tests`, `maestro test --predictive --threshold "
            f"{name.split('-', 1)[1]}` after each mutant): caught {sum(found)} of {sum(truth)} "
            f"failing tests ({sum(found) / max(1, sum(truth)):.1%} pooled; every failure of a "
            f"mutant in {sum(f >= t for f, t in zip(found, truth, strict=True))} of "
            f"{len(keys)} mutants), running {ran} tests where the plain runs ran {ran_off} "
            f"({ran / max(1, ran_off):.0%})."
        )
    return "\n".join(
        [
            f"{today()}, {machine()}, maestro at {git_rev('daemon', 'model', 'bench')}.",
            f"requests 2.34.2 (whole suite, {len(DESELECT)} network tests deselected), "
            f"{len(chosen)} mutants from bench_model's log that fail some but not all tests "
            f"({len(keys)} fail a test through the daemon's node-level selection); per mode a "
            "fresh daemon primed by one full run, then mutant / `maestro test` / revert / "
            "`maestro test` for each.",
            "",
            body,
            "",
            *extra,
            *([""] if extra else []),
            "Reproduce: `.venv/bin/python -m bench.bench_failfirst --write` (needs "
            "`python -m bench.bench_model --only requests` to have logged its mutants).",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_failfirst")
    parser.add_argument("--mutants", type=int, default=10)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: off,files,tests")
    parser.add_argument(
        "--predictive",
        type=float,
        action="append",
        default=[],
        help="also a phase with `--predictive --threshold T` (repeatable)",
    )
    parser.add_argument("--write", action="store_true", help="write docs/BENCHMARKS.md")
    ns = parser.parse_args(argv)
    spec = next(p for p in CACHE_PROJECTS if p.name == "requests")
    python = prepare(spec) / ".venv" / "bin" / "python"
    chosen = killers(ns.mutants)
    print(f"{len(chosen)} mutants; {machine()}", flush=True)
    modes = [m for m in ns.modes.split(",") if m in MODES]
    phases = {mode: run_phase(mode, chosen, python) for mode in modes}
    for t in ns.predictive:
        ph = run_phase("tests", chosen, python, threshold=t)
        phases[ph.mode] = ph
    body = report(phases, chosen)
    print(body)
    (WORK / "results.json").write_text(
        json.dumps({k: v.__dict__ for k, v in phases.items()}, default=lambda o: o.__dict__)
    )
    if ns.write:
        write_section(TITLE, body)


if __name__ == "__main__":
    main()
