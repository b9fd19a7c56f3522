"""Daemon benchmark on the Django sdist.

    python -m bench.bench_daemon [--queries N] [--saves N] [--restarts N] [--write | --no-write]

A private copy of the Django tree (so edits never disturb the other benches' tree), a private
state and cache dir under /tmp (short AF_UNIX paths), and a real detached daemon:

- `impacted` for one random file over RPC from a warm daemon (one connection, client wall time);
- file saved -> next `impacted` reflects it: a test file gains an import of a module it did not
  depend on; the clock runs from just before the write to the first `impacted(module)` answer
  listing that test (polling as fast as answers come, no refresh request);
- daemon RSS with the Django graph loaded (VmRSS and VmHWM from /proc/<pid>/status);
- daemon restart -> first answer: from `start_daemon` (spawn, imports, build from the persisted
  index) to the first `impacted` answer.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench import refresh_link_tree
from bench.common import (
    fetch_sdist,
    git_rev,
    machine,
    percentile,
    table,
    today,
    write_section,
)

DJANGO = ("django", "==5.2.*")
TITLE = "Daemon (issue 4)"
COMMAND = ".venv/bin/python -m bench.bench_daemon"
SEED = 4
SHOWN = 40  # maestro.cli.graph_cmd.SHOWN: the trees `maestro impacted` prints
# (hops, why): the CLI's text (40 chains, no one-line reasons), --json (everything), the LSP
# server (one-line reasons, no chains)
SHAPES: dict[str, tuple[int | None, bool]] = {
    "cli": (SHOWN, False), "json": (None, True), "editor": (0, True),
}  # fmt: skip

MISSES = (
    "- Where the time goes (profiled on the same tree): a hub answer (602 targets) is ~3 ms of "
    "graph walk (level sets in C, parents and reason texts resolved on demand), ~1 ms of rows "
    "(sent as built: the receiver validates), ~1-2 ms of msgpack and pydantic on the client. "
    "`json` also words and structures every chain (~150 KB). A restart is the interpreter and "
    "its imports (asyncio, pydantic, the wire models: 0.25-0.4 s, the floor), the index "
    "(CRC-checked msgpack, import lists decoded only on demand: ~0.1 s with the stat of every "
    "file), one stat pass for edits made meanwhile, then the answer; the watcher's inotify "
    "set-up (~0.1 s, holding the GIL) waits until after the first answer. Numbers move by "
    "1.5x between runs on this shared 2-vCPU machine.\n"
)


@contextlib.contextmanager
def private_env(tree: Path) -> Iterator[Path]:
    """A copy of `tree` and private state/cache dirs; every daemon stopped on the way out."""
    base = Path(tempfile.mkdtemp(prefix="mzb", dir="/tmp"))
    root = base / "django"
    shutil.copytree(tree, root, symlinks=True)  # copy2 keeps mtimes: the index can trust stat
    saved = {k: os.environ.get(k) for k in ("MAESTRO_STATE_DIR", "MAESTRO_CACHE_DIR")}
    os.environ["MAESTRO_STATE_DIR"] = str(base / "st")
    os.environ["MAESTRO_CACHE_DIR"] = str(base / "cache")
    os.environ["MAESTRO_DAEMON_IDLE"] = "900"
    try:
        yield root.resolve()
    finally:
        from maestro.daemon.lifecycle import stop_daemon

        with contextlib.suppress(Exception):
            stop_daemon(root.resolve(), timeout=10)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(base, ignore_errors=True)


def rss_mb(pid: int) -> tuple[float, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_s(pid: int) -> float:
    """The process's user + system CPU time so far (/proc/<pid>/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def module_of(rel: str) -> str:
    return rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_daemon")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--saves", type=int, default=40)
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    refresh_link_tree()

    from maestro import wire
    from maestro.daemon.lifecycle import start_daemon, stop_daemon
    from maestro.daemon.transport.client import SyncDaemonClient

    tree = fetch_sdist(*DJANGO)
    version = tree.name.rsplit("-", 1)[-1]
    rng = random.Random(SEED)
    print(f"Django {version} at {tree}; {machine()}", flush=True)
    with private_env(tree) as root:
        t0 = time.perf_counter()
        reply = start_daemon(root)
        assert reply is not None
        pid = reply.pid
        with SyncDaemonClient(root, start=False, timeout=600) as client:
            stats = client.call(wire.GRAPH_STATS, wire.GraphStatsParams(targets=True))
            cold_s = time.perf_counter() - t0
            print(f"cold start to first answer {cold_s:.2f} s; {stats.python_files} Python files")
            files = sorted(
                p.relative_to(root).as_posix()
                for p in root.rglob("*.py")
                if "/." not in p.as_posix()
            )
            tests = sorted(t for t in (stats.targets or []) if not t.startswith("//"))

            # 1. impacted for one random file over RPC, as each client asks: the CLI's text
            # output (hop chains for the 40 targets it prints, no `why` lines), `--json`
            # (everything), the editor (no chains: one `why` line per row). Same files,
            # interleaved.
            def ask(
                rel: str, shape: tuple[int | None, bool] = SHAPES["cli"]
            ) -> wire.ImpactedReport:
                hops, why = shape
                params = wire.ImpactedParams(paths=[rel], hops=hops, why=why)
                return client.call(wire.IMPACTED, params)

            for rel in rng.sample(files, 20):
                ask(rel)
            by_shape: dict[str, list[float]] = {shape: [] for shape in SHAPES}
            sizes: list[int] = []
            for rel in rng.sample(files, min(args.queries, len(files))):
                for shape, how in SHAPES.items():
                    started = time.perf_counter()
                    report = ask(rel, how)
                    by_shape[shape].append(time.perf_counter() - started)
                sizes.append(len(report.impacted))
            times = by_shape["cli"]
            q50, q95 = statistics.median(times), percentile(times, 95)
            for shape, shape_times in by_shape.items():
                print(
                    f"impacted over RPC ({shape}): p50 "
                    f"{statistics.median(shape_times) * 1000:.2f} ms, "
                    f"p95 {percentile(shape_times, 95) * 1000:.2f} ms"
                )

            # 2. save -> next answer reflects it
            lib = [f for f in files if f.startswith("django/") and not f.endswith("__init__.py")]
            latencies: list[float] = []
            polls: list[int] = []
            while len(latencies) < args.saves:
                test, target = rng.choice(tests), rng.choice(lib)
                if client.call(wire.WHY, wire.WhyParams(target=test, path=target)).depends:
                    continue
                path = root / test
                original = path.read_bytes()
                edited = original + f"\nimport {module_of(target)}  # bench\n".encode()
                started = time.perf_counter()
                path.write_bytes(edited)
                n = 0
                while True:
                    n += 1
                    if test in {i.target for i in ask(target).impacted}:
                        break
                    if time.perf_counter() - started > 10:
                        raise RuntimeError(f"{test} never showed up as impacted by {target}")
                latencies.append(time.perf_counter() - started)
                polls.append(n)
                path.write_bytes(original)
                while test in {i.target for i in ask(target).impacted}:
                    time.sleep(0.002)
            s50, s95 = statistics.median(latencies), percentile(latencies, 95)
            print(f"save -> answer: p50 {s50 * 1000:.1f} ms, p95 {s95 * 1000:.1f} ms")

            rss, hwm = rss_mb(pid)
            print(f"daemon RSS {rss:.0f} MB (peak {hwm:.0f} MB)")

        # 4. restart -> first answer
        restarts: list[float] = []
        restart_cpu: list[float] = []
        warm_rss: list[float] = []
        probe = "django/utils/html.py"
        for _ in range(args.restarts):
            stop_daemon(root)
            started = time.perf_counter()
            reply = start_daemon(root)
            assert reply is not None
            with SyncDaemonClient(root, start=False, timeout=600) as client:
                hops, why = SHAPES["cli"]  # as `maestro impacted` asks, like the rows above
                client.call(wire.IMPACTED, wire.ImpactedParams(paths=[probe], hops=hops, why=why))
                restarts.append(time.perf_counter() - started)
                restart_cpu.append(cpu_s(reply.pid))
                warm = client.call(wire.GRAPH_STATS, wire.GraphStatsParams())
            warm_rss.append(rss_mb(reply.pid)[0])
        r50 = statistics.median(restarts)
        c50 = statistics.median(restart_cpu)
        print(
            f"restart -> first answer: median {r50:.3f} s (daemon CPU {c50:.2f} s), "
            f"max {max(restarts):.3f} s "
            f"({warm.reused_from_index} files from the index, {warm.scanned} scanned)"
        )

    def ok(value: float, target: float) -> str:
        return "yes" if value <= target else "**no**"

    rows = [
        ["`impacted` one random file over RPC, warm daemon: p50", f"{q50 * 1000:.2f} ms",
         "<= 5 ms", ok(q50, 0.005)],
        ["same: p95", f"{q95 * 1000:.2f} ms", "<= 15 ms", ok(q95, 0.015)],
        *(
            [f"same, as {shape} asks: p50 / p95",
             f"{statistics.median(t) * 1000:.2f} / {percentile(t, 95) * 1000:.2f} ms", "", ""]
            for shape, t in by_shape.items() if shape != "cli"
        ),
        ["file saved -> next `impacted` reflects it: p50", f"{s50 * 1000:.1f} ms", "", ""],
        ["same: p95", f"{s95 * 1000:.1f} ms", "<= 150 ms", ok(s95, 0.150)],
        ["daemon RSS with the Django graph loaded", f"{rss:.0f} MB (peak {hwm:.0f} MB)",
         "<= 200 MB", ok(rss, 200)],
        ["daemon restart -> first answer: median", f"{r50:.3f} s", "<= 0.5 s", ok(r50, 0.5)],
        ["same: worst of the restarts", f"{max(restarts):.3f} s", "", ""],
        ["same: the daemon's CPU time to that answer, median", f"{c50:.2f} s", "", ""],
    ]  # fmt: skip
    md = table(["measure", "result", "target", "met"], rows, "lrrl")
    print()
    print(md)
    notes = (
        f"Django {version} sdist ({stats.python_files} Python files, {len(tests)} test files), "
        f"{today()}, {machine()}, maestro at {git_rev('daemon', 'maestro', 'graph')}.\n\n"
        f"{md}\n\n"
        f"- Queries: {len(times)} `impacted` requests for random `.py` files (seed {SEED}), "
        f"one connection, client-side wall time including framing and pydantic on both sides; "
        f"the main rows ask as `maestro impacted` does for its text output (hop chains for the "
        f"{SHOWN} targets it prints and the count of the rest: `hops={SHOWN}, why=false`); "
        f"`json` = `--json` (every chain and every one-line `why`), `editor` = the LSP server "
        f"(one-line `why` per row, no chains); "
        f"median {statistics.median(sizes):.0f} impacted targets per answer, max {max(sizes)}.\n"
        f"- Saves: {len(latencies)} edits, each appending `import <module>` to a test file that "
        f"did not depend on it; timed from just before the write to the first `impacted(module)` "
        f"answer naming the test (median {statistics.median(polls):.0f} polls; watcher quiet "
        f"period 30 ms). The edit is then reverted and the revert awaited the same way.\n"
        f"- Restarts: {len(restarts)} rounds of `maestro daemon stop` (which saves the index) then "
        f"`start_daemon` -> first `impacted({probe})` (a hub: 602 targets; asked as the CLI's "
        f"text asks); the warm daemon reused "
        f"{warm.reused_from_index} files from the index and scanned {warm.scanned}; its RSS "
        f"after the first answer: {statistics.median(warm_rss):.0f} MB. Cold start (no index) "
        f"to first answer was {cold_s:.2f} s.\n"
        f"- Reproduce: `{COMMAND}` (downloads the sdist into .bench/ with pip on first use).\n"
        + MISSES
    )
    if args.write:
        write_section(TITLE, notes)
        print("\nwrote docs/BENCHMARKS.md section", repr(TITLE))


if __name__ == "__main__":
    main()
