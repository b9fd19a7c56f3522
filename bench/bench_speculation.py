"""Replayed editing session through a real daemon: speculation on vs off.

A scripted developer edits requests 2.34.2 (sdist from PyPI, the venv bench_test_cache builds):
for each mutant (one operator/constant swap in a function, from bench_model's mutant log) it
saves the mutant, thinks for --think seconds, runs `maestro test` (the daemon's run_tests, like
the CLI), then saves the revert and runs `maestro test` again. Every fourth mutant is preceded by
a "typo" save (another mutant of the same file) superseded --typo seconds later, so cancellation
is exercised. The session runs twice, each in a fresh daemon with its own state and cache dirs
(primed by one full run, not measured): speculation off, then on (`ml.speculation.enabled`).

Measured:
- used % = speculative file results served to an explicit run / all speculative file results
  (served + replaced unused + still pending at the end);
- waste % = speculative CPU-seconds with nothing used (cancelled runs + results replaced or
  never served) / all speculative CPU-seconds (the tripwire's measure);
- save -> first failing result: *off*, the developer asks after the think time and the run's
  first failing test arrives; *on*, the first failing result of the speculative run (daemon
  clock, from the watcher batch), or the explicit run's if speculation had none;
- the explicit run's wall time after the developer asks.

The workspace is a private copy of the sdist without tests/test_requests.py and
tests/test_lowlevel.py (they serve HTTP from pytest-httpbin / local threads: tens of seconds per
run on this machine, which would bound the session at an hour, not minutes).

    .venv/bin/python -m bench.bench_speculation [--mutants 16] [--think 5] [--write]
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
from typing import Any

from bench import refresh_link_tree
from bench.bench_model import Mutant, apply, logged_mutants
from bench.bench_test_cache import PROJECTS as CACHE_PROJECTS
from bench.bench_test_cache import prepare
from bench.common import BENCH_DIR, fetch_sdist, git_rev, machine, table, today, write_section

WORK = BENCH_DIR / "speculation"
SEED = 6
DROP = ("tests/test_requests.py", "tests/test_lowlevel.py")
BASE_PYTHONPATH = os.environ.get("PYTHONPATH", "")  # the link tree (bench/__init__.py)
TITLE = "Speculation model (issue 6): replayed editing session"


@dataclass
class Step:
    mutant: str
    kills: bool
    typo: bool
    fail_s: float | None = None  # save -> first failing result
    ask_wall_s: float = 0.0  # explicit run after the think time
    ask_ran_files: int = 0
    ask_failed: int = 0


@dataclass
class Phase:
    speculate: bool
    steps: list[Step] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    prime_s: float = 0.0
    wall_s: float = 0.0


def mutants(count: int) -> list[tuple[Mutant, bool]]:
    """(mutant, kills a kept test) from bench_model's requests log, killers first, seeded."""
    found = [
        (m, any(
            outcome == "failed" and not test.startswith(DROP)
            for test, (outcome, _) in row["results"].items()
        ))
        for m, row in logged_mutants("requests")
    ]  # fmt: skip
    rng = random.Random(SEED)
    killers = [f for f in found if f[1]]
    others = [f for f in found if not f[1]]
    rng.shuffle(killers)
    rng.shuffle(others)
    n_kill = min(len(killers), max(1, (count * 3) // 4))
    chosen = killers[:n_kill] + others[: count - n_kill]
    rng.shuffle(chosen)
    return chosen


def workspace(phase: str) -> Path:
    spec = next(p for p in CACHE_PROJECTS if p.name == "requests")
    pristine = fetch_sdist(spec.name, spec.spec)
    root = WORK / phase / "ws"
    shutil.rmtree(WORK / phase, ignore_errors=True)
    shutil.copytree(pristine, root)
    for rel in DROP:
        (root / rel).unlink()
    return root


def configure(root: Path, python: Path, speculate: bool) -> None:
    text = (root / "pyproject.toml").read_text()
    text += (
        "\n[tool.maestro]\n"
        f'interpreter = "{python}"\n'
        'env-allowlist = ["PYTHONPATH"]\n'
        "\n[tool.maestro.ml.speculation]\n"
        f"enabled = {'true' if speculate else 'false'}\n"
    )
    (root / "pyproject.toml").write_text(text)


def run_phase(
    speculate: bool, chosen: list[tuple[Mutant, bool]], ns: argparse.Namespace, python: Path
) -> Phase:
    from maestro import wire
    from maestro.daemon.lifecycle import start_daemon, stop_daemon
    from maestro.daemon.transport.client import SyncDaemonClient

    name = "on" if speculate else "off"
    root = workspace(name).resolve()
    configure(root, python, speculate)
    os.environ["MAESTRO_STATE_DIR"] = str(WORK / name / "state")
    os.environ["MAESTRO_CACHE_DIR"] = str(WORK / name / "cache")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(root / "src"), *filter(None, BASE_PYTHONPATH.split(os.pathsep))]
    )
    env = dict(os.environ)
    phase = Phase(speculate)
    refresh_link_tree()
    reply = start_daemon(root)
    assert reply is not None
    try:
        with SyncDaemonClient(root, start=False, timeout=900) as client:

            def ask() -> tuple[wire.RunTestsResult, float, float | None]:
                first: list[float] = []
                t0 = time.monotonic()

                def on_event(event: wire.Event) -> None:
                    if event.event != "run.progress":
                        return
                    inner = (event.payload or {}).get("event", {})
                    if inner.get("event") == "test_result" and inner.get("outcome") in (
                        "failed", "error",
                    ) and not first:  # fmt: skip
                        first.append(time.monotonic() - t0)

                params = wire.RunTestsParams(env=env)
                result = client.stream(wire.RUN_TESTS, params, on_event, timeout=900)
                wall = time.monotonic() - t0
                if result.failed and not first:
                    first.append(wall)  # served from the cache: known when the answer arrives
                return result, wall, (first[0] if first else None)

            def spec() -> wire.SpeculationStatus:
                status = client.call(wire.STATUS).speculation
                assert status is not None
                return status

            t0 = time.monotonic()
            prime, _, _ = ask()
            phase.prime_s = time.monotonic() - t0
            print(
                f"[{name}] primed: {prime.passed} passed, {prime.failed} failed, "
                f"{prime.ran_files} files in {phase.prime_s:.1f}s",
                flush=True,
            )
            session0 = time.monotonic()
            rng = random.Random(SEED)
            for i, (m, kills) in enumerate(chosen):
                typo = i % 4 == 3
                if typo:
                    others = [o for o, _ in chosen if o.file == m.file and o != m]
                    if others:
                        original = apply(root, rng.choice(others))
                        time.sleep(ns.typo)
                        (root / m.file).write_text(original)
                seen = len(spec().first_failure_s)
                original = apply(root, m)
                time.sleep(ns.think)
                result, wall, first = ask()
                step = Step(m.key, kills, typo)
                step.ask_wall_s, step.ask_ran_files, step.ask_failed = (
                    wall, result.ran_files, result.failed + result.errors,
                )  # fmt: skip
                fails = spec().first_failure_s[seen:]
                if speculate and fails:
                    step.fail_s = fails[0]
                elif first is not None:
                    step.fail_s = ns.think + first
                phase.steps.append(step)
                shown = f"{step.fail_s:.2f}s" if step.fail_s is not None else "-"
                print(
                    f"[{name}] {i + 1:2d}/{len(chosen)} {m.key}{' (typo first)' if typo else ''}: "
                    f"{step.ask_failed} failing, ran {step.ask_ran_files} file(s), ask "
                    f"{wall:.2f}s, first failure {shown}",
                    flush=True,
                )
                (root / m.file).write_text(original)
                time.sleep(ns.think / 2)
                ask()
            phase.wall_s = time.monotonic() - session0
            phase.status = spec().model_dump()
    finally:
        stop_daemon(root, timeout=30)
    print(f"[{name}] status: {json.dumps(phase.status)}", flush=True)
    return phase


def med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def report(off: Phase, on: Phase, ns: argparse.Namespace, chosen: list[Any]) -> str:
    st = on.status
    hits, wasted, pending = st["hits"], st["wasted"], st["pending"]
    total = hits + wasted + pending
    used = hits / total if total else 0.0
    waste = st["waste_share"] or 0.0

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f} s"

    kill_off = [s.fail_s for s in off.steps if s.fail_s is not None]
    kill_on = [s.fail_s for s in on.steps if s.fail_s is not None]
    pairs = [
        (a.fail_s, b.fail_s)
        for a, b in zip(off.steps, on.steps, strict=True)
        if a.fail_s is not None and b.fail_s is not None
    ]
    ratio = med([b / a for a, b in pairs if a > 0])
    rows = [
        ["save -> first failing result (median)", fmt(med(kill_off)), fmt(med(kill_on))],
        ["explicit run after the ask (median)", fmt(med([s.ask_wall_s for s in off.steps])),
         fmt(med([s.ask_wall_s for s in on.steps]))],
        ["files run by the explicit runs (sum)", str(sum(s.ask_ran_files for s in off.steps)),
         str(sum(s.ask_ran_files for s in on.steps))],
        ["session wall time", f"{off.wall_s:.0f} s", f"{on.wall_s:.0f} s"],
    ]  # fmt: skip
    saves = len(chosen) * 2 + sum(s.typo for s in on.steps)
    lines = [
        f"{today()}, {machine()}, maestro at {git_rev('daemon', 'model', 'bench')}.",
        f"requests 2.34.2 without {', '.join(DROP)}; {len(chosen)} mutants from bench_model's "
        f"log ({sum(k for _, k in chosen)} broke a test in its file-level runs, "
        f"{sum(s.ask_failed > 0 for s in off.steps)} fail a test here), {saves} saves "
        "(mutant, revert, and a "
        f"typo save before every fourth mutant, superseded after {ns.typo:g} s), think time "
        f"{ns.think:g} s, "
        "default `ml.speculation` budget (1 process, nice 10, 60 CPU-s/min, 20 files).",
        "",
        f"- **used: {used:.0%}** ({hits} speculative file results served, {wasted} replaced "
        f"unused, {pending} pending at the end; target >= 65%)",
        f"- **waste: {waste:.1%}** of {st['cpu_s']:.1f} speculative CPU-s "
        f"({st['cancelled']} runs cancelled by a newer save; target < 5%)",
        f"- speculative runs {st['runs']}, skipped {st['skipped']}, tripwire: "
        f"{st['state']}{' - ' + st['throttled_reason'] if st['throttled_reason'] else ''}",
        f"- save -> first failing result, on/off per mutant (median ratio): "
        f"{'-' if ratio is None else f'{ratio:.2f}'} over {len(pairs)} failing mutants",
        "",
        table(["", "speculation off", "speculation on"], rows, "lrr"),
        "",
        "Reproduce: `.venv/bin/python -m bench.bench_speculation --write` (about "
        f"{(off.wall_s + on.wall_s + off.prime_s + on.prime_s) / 60:.0f} min; needs "
        "`python -m bench.bench_model --only requests` to have logged its mutants).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_speculation")
    parser.add_argument("--mutants", type=int, default=16)
    parser.add_argument("--think", type=float, default=5.0, help="seconds from save to ask")
    parser.add_argument("--typo", type=float, default=0.4, help="seconds a typo save lives")
    parser.add_argument("--write", action="store_true", help="write docs/BENCHMARKS.md")
    ns = parser.parse_args(argv)
    spec = next(p for p in CACHE_PROJECTS if p.name == "requests")
    python = prepare(spec) / ".venv" / "bin" / "python"
    chosen = mutants(ns.mutants)
    print(f"{len(chosen)} mutants; {machine()}", flush=True)
    off = run_phase(False, chosen, ns, python)
    on = run_phase(True, chosen, ns, python)
    body = report(off, on, ns, chosen)
    print(body)
    (WORK / "results.json").write_text(
        json.dumps({"off": off.__dict__, "on": on.__dict__}, default=lambda o: o.__dict__)
    )
    if ns.write:
        write_section(TITLE, body)


if __name__ == "__main__":
    main()
