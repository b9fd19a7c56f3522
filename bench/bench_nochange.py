"""No-change `maestro test` vs `pytest --testmon`, side by side.

On the requests tree of bench_test_cache (its venv, its failing tests deselected for every tool),
after each tool has recorded a full run, the same no-change command is timed in rounds, the
tools interleaved within each round so that load on the shared machine hits them alike:

- `pytest --testmon` (nothing changed: testmon deselects everything);
- `maestro test` without a daemon (MAESTRO_DAEMON=off: typer CLI, graph index, cache, in process);
- `maestro test` with the workspace daemon running (the console script's fast path, one RPC).

Bytecode is written for every tool (PYTHONDONTWRITEBYTECODE unset), as an installed package has it.

Run: `.venv/bin/python -m bench.bench_nochange --runs 15`
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.bench_test_cache import PROJECTS, WORK, failing_tests, prepare, sh
from bench.common import median

MAESTRO = str(Path(sys.executable).with_name("maestro"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="timed rounds (medians reported)")
    parser.add_argument(
        "--deselect", action="append", help="node ids to deselect (default: detect failing ones)"
    )
    parser.add_argument("--state", type=Path, default=WORK / "state-nochange-requests")
    opts = parser.parse_args()

    tree = prepare(next(p for p in PROJECTS if p.name == "requests"))
    py = str(tree / ".venv/bin/python")
    deselect = opts.deselect if opts.deselect is not None else failing_tests(tree)
    args = ["-p", "no:randomly", *(a for n in deselect for a in ("--deselect", n))]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.pop("VIRTUAL_ENV", None)
    env["MAESTRO_CACHE_DIR"] = str(opts.state / "cache")
    env["MAESTRO_STATE_DIR"] = str(opts.state / "state")
    env["TESTMON_DATAFILE"] = str(opts.state / "testmondata")
    opts.state.mkdir(parents=True, exist_ok=True)
    commands = {
        "testmon": ([py, "-m", "pytest", "-q", "--testmon", *args], env),
        "maestro, no daemon": ([MAESTRO, "test", "--", *args], {**env, "MAESTRO_DAEMON": "off"}),
        "maestro, warm daemon": ([MAESTRO, "test", "--", *args], env),
    }
    print(f"recording runs (deselected: {deselect})", flush=True)
    for name in ("testmon", "maestro, no daemon"):
        for _ in range(2):  # the first may record everything; the second settles the state
            wall, code, out = sh(commands[name][0], tree, commands[name][1])
            print(f"  {name}: {wall:.2f}s exit {code}: {out.strip().splitlines()[-1]}", flush=True)
    subprocess.run([MAESTRO, "daemon", "start"], cwd=tree, env=env, check=True)
    try:
        sh(commands["maestro, warm daemon"][0], tree, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        outputs: dict[str, str] = {}
        for _ in range(opts.runs):
            for name, (command, command_env) in commands.items():
                wall, code, out = sh(command, tree, command_env)
                times[name].append(wall)
                outputs[name] = f"exit {code}: {out.strip()}"
    finally:
        subprocess.run([MAESTRO, "daemon", "stop"], cwd=tree, env=env, check=False)
    base = median(times["testmon"])
    print(f"\n{opts.runs} rounds, medians (min-max):")
    for name, samples in times.items():
        print(
            f"  {name:22s} {median(samples):6.3f}s ({min(samples):.3f}-{max(samples):.3f})"
            f"  = {median(samples) / base:.2f} of testmon; median of per-round ratios "
            f"{median([a / b for a, b in zip(samples, times['testmon'], strict=True)]):.2f}"
        )
    for name, out in outputs.items():
        print(f"\n[{name}] {out}")


if __name__ == "__main__":
    start = time.monotonic()
    main()
    print(f"\n({time.monotonic() - start:.0f}s)")
