"""Run every bench quickly: `python -m bench` (what `make bench` runs).

    python -m bench [--full] [--only graph,reality,cas]

Quick mode keeps the medians (>= 5 rounds) but samples fewer files and leaves
docs/BENCHMARKS.md alone; --full runs the reference configuration and rewrites its sections.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from bench import bench_graph, bench_reality
from bench.common import FetchError

CAS = Path(__file__).resolve().parent / "bench_cas.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--full", action="store_true", help="reference runs; write the docs")
    parser.add_argument("--only", default="graph,reality,cas", help="comma-separated benches")
    args = parser.parse_args()
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    failed: list[str] = []
    if "graph" in only:
        print("\n# Build graph (bench/bench_graph.py)\n", flush=True)
        try:
            bench_graph.main([] if args.full else ["--quick", "--no-profile"])
        except FetchError as exc:
            print(f"skipped: {exc}")
    if "reality" in only:
        print("\n# Static closure vs reality (bench/bench_reality.py)\n", flush=True)
        try:
            if bench_reality.main([] if args.full else ["--no-write"]):
                failed.append("reality")
        except FetchError as exc:
            print(f"skipped: {exc}")
    if "cas" in only:
        print("\n# CAS (bench/bench_cas.py)\n", flush=True)
        cmd = [sys.executable, str(CAS)] + ([] if args.full else ["--quick"])
        if subprocess.run(cmd).returncode != 0:
            failed.append("cas")
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
