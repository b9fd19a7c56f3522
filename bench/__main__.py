"""Run every bench quickly: `python -m bench` (what `make bench` runs).

    python -m bench [--full] [--only graph,reality,cas,test_cache]

Quick mode keeps the medians (>= 5 rounds) but samples fewer files, leaves docs/BENCHMARKS.md
alone and skips test_cache (cached test runs take many minutes); --full runs every bench in its
reference configuration and rewrites the docs sections.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from bench import bench_graph, bench_reality
from bench.common import FetchError

CAS = Path(__file__).resolve().parent / "bench_cas.py"
ALL = ("graph", "reality", "cas", "test_cache")
QUICK = ("graph", "reality", "cas")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--full", action="store_true", help="reference runs; write the docs")
    parser.add_argument("--only", default=None, help="comma-separated: " + ",".join(ALL))
    args = parser.parse_args()
    chosen = args.only or ",".join(ALL if args.full else QUICK)
    only = {name.strip() for name in chosen.split(",") if name.strip()}
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
    if "test_cache" in only:
        print("\n# Cached test runs (bench/bench_test_cache.py)\n", flush=True)
        cmd = [sys.executable, "-m", "bench.bench_test_cache"] + (["--write"] if args.full else [])
        if subprocess.run(cmd, cwd=CAS.parent.parent).returncode != 0:
            failed.append("test_cache")
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
