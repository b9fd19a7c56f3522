"""CAS throughput of `Cache` against raw py-lmdb, and the snapshot/restore/verify drill.

    python bench/bench_cas.py [--quick] [--big] [--runs N]

Both sides do the same work per blob: sha256 to derive the key on put, sha256 re-check on get,
the same batch sizes, one write transaction per batch, fresh environments with the same map
size. Raw get is also reported without the re-hash to show what verification costs. The Cache
side additionally maintains metadata (sizes, access times), byte counters and stats.
Targets: Cache >= 80% of raw; snapshot + restore + verify of a ~1 GB cache <= 30 s (--big).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import lmdb

from maestro.cache import Cache, Digest
from maestro.cache.sizes import format_size

MAP_SIZE = 64 << 30


@dataclass(frozen=True)
class Case:
    label: str
    size: int
    count: int
    batch: int


def make_blobs(case: Case, seed: int) -> list[bytes]:
    base = os.urandom(case.size)
    return [
        seed.to_bytes(4, "little") + i.to_bytes(4, "little") + base[8:] for i in range(case.count)
    ]


def batches(items: list[bytes], n: int) -> list[list[bytes]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


# -- raw py-lmdb -------------------------------------------------------------------------------


def raw_put(path: Path, blobs: list[bytes], batch: int) -> tuple[float, list[bytes]]:
    env = lmdb.open(str(path), map_size=MAP_SIZE, max_dbs=8)
    db = env.open_db(b"cas")
    keys: list[bytes] = []
    start = time.perf_counter()
    for chunk in batches(blobs, batch):
        with env.begin(write=True, db=db) as txn:
            for data in chunk:
                key = hashlib.sha256(data).digest()
                txn.put(key, data)
                keys.append(key)
    elapsed = time.perf_counter() - start
    env.close()
    return elapsed, keys


def raw_get(path: Path, keys: list[bytes], batch: int, *, verify: bool) -> float:
    env = lmdb.open(str(path), map_size=MAP_SIZE, max_dbs=8)
    db = env.open_db(b"cas")
    start = time.perf_counter()
    for i in range(0, len(keys), batch):
        values = []  # a batch get hands all values back, as Cache.get_blobs does
        with env.begin(db=db) as txn:
            for key in keys[i : i + batch]:
                data = txn.get(key)
                if data is None or (verify and hashlib.sha256(data).digest() != key):
                    raise AssertionError("raw get failed")
                values.append(data)
        del values
    elapsed = time.perf_counter() - start
    env.close()
    return elapsed


# -- Cache -------------------------------------------------------------------------------------


def cache_put(path: Path, blobs: list[bytes], batch: int) -> tuple[float, list[Digest]]:
    digests: list[Digest] = []
    with Cache.open(path) as cache:
        start = time.perf_counter()
        for chunk in batches(blobs, batch):
            digests.extend(cache.put_blobs(chunk))
        elapsed = time.perf_counter() - start
    return elapsed, digests


def cache_get(path: Path, digests: list[Digest], batch: int) -> float:
    with Cache.open(path) as cache:
        start = time.perf_counter()
        for i in range(0, len(digests), batch):
            if any(b is None for b in cache.get_blobs(digests[i : i + batch])):
                raise AssertionError("cache get failed")
        cache.flush()  # the deferred access-time writes are part of the cost
        elapsed = time.perf_counter() - start
    return elapsed


def bench_throughput(work: Path, case: Case, runs: int) -> list[tuple[str, float, float, float]]:
    blobs = make_blobs(case, 1)
    raw_puts, cache_puts = [], []
    for run in range(runs):
        for name in ("raw", "cache"):
            shutil.rmtree(work / name, ignore_errors=True)
        # alternate order so neither side always gets the warmer page cache
        order = ("raw", "cache") if run % 2 == 0 else ("cache", "raw")
        for name in order:
            if name == "raw":
                elapsed, keys = raw_put(work / "raw", blobs, case.batch)
                raw_puts.append(elapsed)
            else:
                elapsed, digests = cache_put(work / "cache", blobs, case.batch)
                cache_puts.append(elapsed)
    gets: dict[str, list[float]] = {"raw": [], "raw-nv": [], "cache": []}
    for run in range(runs):  # interleaved, so load from other processes hits both sides
        order = ("raw", "cache", "raw-nv") if run % 2 == 0 else ("cache", "raw", "raw-nv")
        for name in order:
            if name == "cache":
                gets[name].append(cache_get(work / "cache", digests, case.batch))
            else:
                gets[name].append(raw_get(work / "raw", keys, case.batch, verify=name == "raw"))
    raw_get_v, raw_get_nv, cache_g = (
        statistics.median(gets[k]) for k in ("raw", "raw-nv", "cache")
    )
    rp, cp = statistics.median(raw_puts), statistics.median(cache_puts)
    n = case.count
    return [
        (f"put {case.label} (batch {case.batch})", n / rp, n / cp, rp / cp),
        (
            f"get {case.label} + sha256 (batch {case.batch})",
            n / raw_get_v,
            n / cache_g,
            raw_get_v / cache_g,
        ),
        (
            f"get {case.label}, raw without sha256",
            n / raw_get_nv,
            n / cache_g,
            raw_get_nv / cache_g,
        ),
    ]


def bench_drill(work: Path, total: int) -> list[tuple[str, float]]:
    """Fill a cache to ~`total` bytes (90% 1 MiB blobs, 10% 4 KiB), then time the drill."""
    src = work / "drill-src"
    shutil.rmtree(work / "drill-src", ignore_errors=True)
    shutil.rmtree(work / "drill-snap", ignore_errors=True)
    shutil.rmtree(work / "drill-restored", ignore_errors=True)
    big = Case("1 MiB", 1 << 20, max(1, int(total * 0.9) >> 20), 50)
    small = Case("4 KiB", 4096, max(1, int(total * 0.1) >> 12), 1000)
    timings: list[tuple[str, float]] = []
    with Cache.open(src) as cache:
        start = time.perf_counter()
        for case in (big, small):
            for chunk in batches(make_blobs(case, 7), case.batch):
                cache.put_blobs(chunk)
        timings.append((f"fill ({format_size(cache.stats().bytes)})", time.perf_counter() - start))
        start = time.perf_counter()
        cache.snapshot(work / "drill-snap")
        timings.append(("snapshot (compact copy + manifest re-hash)", time.perf_counter() - start))
    start = time.perf_counter()
    Cache.restore(work / "drill-snap", work / "drill-restored")
    timings.append(("restore (full re-verify + copy)", time.perf_counter() - start))
    with Cache.open(work / "drill-restored") as restored:
        start = time.perf_counter()
        report = restored.verify()
        timings.append(("verify restored cache", time.perf_counter() - start))
        if not report.clean:
            raise AssertionError(f"restored cache not clean: {report.corrupt}")
    drill = sum(t for name, t in timings if not name.startswith("fill"))
    timings.append(("snapshot + restore + verify", drill))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller blob counts")
    parser.add_argument("--big", action="store_true", help="~1 GB drill (default ~128 MiB)")
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: tmp)")
    args = parser.parse_args()
    runs = max(5, args.runs)
    cases = [
        Case("4 KiB", 4096, 5_000 if args.quick else 20_000, 1000),
        Case("1 MiB", 1 << 20, 50 if args.quick else 200, 50),
    ]
    work = Path(tempfile.mkdtemp(prefix="bench-cas-", dir=args.dir))
    try:
        print(f"CAS throughput, median of {runs} runs (ops/s; ratio = Cache / raw)\n")
        print("| operation | raw py-lmdb | maestro Cache | ratio |")
        print("|---|---:|---:|---:|")
        for case in cases:
            for name, raw_rate, cache_rate, ratio in bench_throughput(work, case, runs):
                mbps = case.size / 1e6
                print(
                    f"| {name} | {raw_rate:,.0f} ({raw_rate * mbps:,.0f} MB/s) "
                    f"| {cache_rate:,.0f} ({cache_rate * mbps:,.0f} MB/s) | {ratio:.0%} |"
                )
        total = (1 << 30) if args.big else (128 << 20)
        print(f"\nDisaster-recovery drill on a ~{format_size(total)} cache\n")
        print("| step | seconds |")
        print("|---|---:|")
        for name, seconds in bench_drill(work, total):
            print(f"| {name} | {seconds:.2f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
