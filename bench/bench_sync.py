"""The daemon's remote-hit path: a local miss read through from a real coordinator.

    python bench/bench_sync.py [--entries 200] [--big 20]

Starts `maestro coordinator serve` on loopback (embedded LMDB, temporary data dir), uploads
ActionResults with their blobs through CoordinatorClient (as a CI daemon's drainer would), then
times `MirroredCache.get_action` from an empty local cache, i.e. the code path `plan` runs in the
daemon: local miss -> AC GET -> decode -> CAS GETs (verified) -> local put -> local re-read.

Rows: remote hit (small blobs: ~1 KiB stdout, ~2 KiB JUnit), remote hit with a 1 MiB stdout,
local hit afterwards, remote miss (404), and a miss with the coordinator stopped (first the
connection errors, then the open circuit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAESTRO = str(Path(sys.executable).parent / "maestro")


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def _cli(data: Path, *args: str) -> str:
    out = subprocess.run(
        [MAESTRO, "coordinator", *args, "--data", str(data)],
        cwd=data.parent, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return out.stdout


def _result(i: int, blobs: list[bytes]) -> tuple[str, object, list[bytes]]:
    from maestro.cache import ActionResult, Provenance, TestOutcome, Timing, digest_bytes

    stdout, junit = blobs
    result = ActionResult(
        exit_code=0,
        tests=[
            TestOutcome(node_id=f"tests/test_{i}.py::test_{j}", outcome="passed") for j in range(5)
        ],
        stdout=digest_bytes(stdout),
        junit=digest_bytes(junit),
        timing=Timing(started_at=datetime.now(UTC), wall_s=0.5, cpu_s=0.4),
        provenance=Provenance.current(),
    )
    key = digest_bytes(f"bench-action-{i}-{os.getpid()}-{time.time_ns()}".encode()).hash
    return key, result, blobs


async def _upload(url: str, key: str, entries: list[tuple[str, object, list[bytes]]]) -> None:
    from maestro.coordinator.client import CoordinatorClient

    async with CoordinatorClient(url, "bench", key) as client:
        gate = client.redactor  # only cleared bytes are sent, as the daemon's uploads are
        for action, result, blobs in entries:
            for blob in blobs:
                cleared = gate.vet(blob, enforce=False).blob
                assert cleared is not None
                await client.put_cas(cleared)
            encoded = gate.vet(result.encode(), enforce=False).blob  # type: ignore[attr-defined]
            assert encoded is not None
            await client.put_ac(action, encoded)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=200)
    parser.add_argument("--big", type=int, default=20, help="entries with a 1 MiB stdout")
    args = parser.parse_args(argv)

    from maestro.cache.remote import MirroredCache, RemoteSync

    base = Path(tempfile.mkdtemp(prefix="mbs", dir="/tmp"))
    data = base / "coord"
    _cli(data, "tenant", "add", "bench")
    key = json.loads(_cli(data, "key", "create", "bench", "--role", "read-write", "--json"))[
        "api_key"
    ]
    proc = subprocess.Popen(
        [MAESTRO, "coordinator", "serve", "--port", "0", "--data", str(data)],
        cwd=base, stdout=subprocess.PIPE, stderr=open(base / "coord.log", "wb"),  # noqa: SIM115
    )  # fmt: skip
    assert proc.stdout is not None
    port = json.loads(proc.stdout.readline())["port"]
    url = f"http://127.0.0.1:{port}"
    rows: list[tuple[str, list[float]]] = []
    try:
        small = [_result(i, [os.urandom(1024), os.urandom(2048)]) for i in range(args.entries)]
        big = [
            _result(10_000 + i, [os.urandom(1 << 20), os.urandom(2048)]) for i in range(args.big)
        ]
        asyncio.run(_upload(url, key, small + big))

        os.environ["MAESTRO_CACHE_DIR"] = str(base / "local")
        from maestro.cache import Cache

        sync = RemoteSync(
            Cache.open(), url=url, tenant="bench", api_key=key,
            queue_path=base / "queue.sqlite", read_timeout_s=2.0,
        )  # fmt: skip
        sync.start()
        cache = MirroredCache.mirror(sync)
        try:
            cache.get_action("0" * 64)  # token exchange, connection pool warm-up
            for label, entries in (
                ("remote hit, 3 KiB of blobs", small),
                ("remote hit, 1 MiB stdout", big),
            ):
                times = []
                for action, _, _ in entries:
                    t0 = time.perf_counter()
                    assert cache.get_action(action) is not None
                    times.append(time.perf_counter() - t0)
                rows.append((label, times))
            times = []
            for action, _, _ in small:
                t0 = time.perf_counter()
                assert cache.get_action(action) is not None
                times.append(time.perf_counter() - t0)
            rows.append(("local hit (after the mirror)", times))
            times = []
            for i in range(args.entries):
                t0 = time.perf_counter()
                assert cache.get_action(f"{i:064x}") is None
                times.append(time.perf_counter() - t0)
            rows.append(("remote miss (404)", times))
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
            times = []
            for i in range(args.entries):
                t0 = time.perf_counter()
                assert cache.get_action(f"{i + 1:063x}f") is None
                times.append(time.perf_counter() - t0)
            rows.append(("coordinator down (errors, then circuit open)", times))
            print(f"circuit: {sync.breaker.state}; remote errors: {sync.counters.remote_errors}")
        finally:
            cache.close()
            sync.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    print(f"\n{args.entries} small entries, {args.big} with 1 MiB stdout; loopback coordinator\n")
    print("| path | n | p50 (ms) | p95 (ms) | max (ms) |")
    print("| :--- | ---: | ---: | ---: | ---: |")
    for label, times in rows:
        print(
            f"| {label} | {len(times)} | {_pct(times, 50) * 1e3:.2f} | "
            f"{_pct(times, 95) * 1e3:.2f} | {max(times) * 1e3:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
