"""LSP benchmark on the Django sdist, through a real stdio client.

    python -m bench.bench_lsp [--runs N] [--write | --no-write] [--baseline REV]

Starts `python -P -m maestro.server` (cwd = the Django tree) with pygls' LanguageClient over
stdio; the server starts the workspace daemon (private MAESTRO_STATE_DIR / MAESTRO_CACHE_DIR under
/tmp). After one warm-up request each, measures client-side round trips:

- `maestro/impactedTargets` for one source file (a saved file: daemon `impacted` with paths),
  warm: target p95 <= 30 ms; with and without the cache-state column (memo only: never `stale`).
  Re-asked, the server holds the last answer and the daemon confirms its etag (no rows sent);
  "first ask" rows ask for a different file each time (random django/ modules, then hubs), so
  every answer is built and sent;
- the same while typing into an unsaved buffer (didChange with new text, then the request: the
  daemon gets the buffer; after the first edit the server's memo holds, the daemon confirms it);
- `textDocument/codeLens` on the largest test file of the graph: target p95 <= 50 ms.

Each row also prints the server's and the daemon's CPU time per request (all threads, from
/proc/<pid>/task/*/schedstat): comparable on a loaded host, where the round trips are not. With
``--baseline REV``, the bench first runs on that commit's server and daemon (its tree laid out
as installed, on PYTHONPATH), then on the working tree, and prints both side by side.

Measured once the server and the daemon are idle after the first answer (`settle`), with the
client's own start-up objects frozen out of its garbage collector (`gc.freeze`, as the server does).

Results go to the `## LSP (issue 5)` section of docs/BENCHMARKS.md (with --write, the default).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from bench.bench_first_run import baseline_tree
from bench.bench_graph import DJANGO
from bench.common import (
    fetch_sdist,
    git_rev,
    host_speed,
    machine,
    percentile,
    table,
    today,
    write_section,
)

SOURCE_FILE = "django/utils/text.py"  # a hub: ~600 test files depend on it
LEAF_FILE = "django/contrib/sitemaps/views.py"  # no test file imports it statically


def _plain_results() -> Any:
    """pygls' client converter, but results of custom requests stay dicts, as an editor's JSON
    parser gives them: pygls' default builds a namedtuple class per JSON object, which cost the
    client 400-500 ms on a 600-row answer (more than the whole server side)."""
    from pygls.protocol import default_converter
    from pygls.protocol.json_rpc import JsonRPCResponseMessage

    conv = default_converter()
    conv.register_structure_hook(JsonRPCResponseMessage, lambda obj, cls: cls(**obj))
    return conv


def _pick_files(root: Path, n: int) -> tuple[list[str], list[str]]:
    """Up to ``n`` django/ modules other than SOURCE_FILE that impact >= 500 test files (hubs),
    and ``n`` django/ modules drawn at random (seeded): what an editor asks about most days."""
    from maestro.graph.build import BuildGraph, Change

    graph = BuildGraph.build(root)
    modules = [rel for rel in sorted(graph.py) if rel.startswith("django/") and rel != SOURCE_FILE]
    hubs = []
    for rel in modules:
        if sum(1 for i in graph.impacted([Change(rel)]) if i.kind == "test") >= 500:
            hubs.append(rel)
            if len(hubs) == n:
                break
    return hubs, random.Random(5).sample(modules, min(n, len(modules)))


def _plain(obj: Any) -> Any:
    if hasattr(obj, "_asdict"):
        return {k: _plain(v) for k, v in obj._asdict().items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


CPU_PIDS: list[int] = []
"""The server's and the daemon's pids: each row also reports their CPU time per request."""
CPU_MS: list[tuple[float, float]] = []
"""Per row: the server's and the daemon's CPU ms per request (comparable on a loaded host)."""


async def _timed(n: int, call: Any) -> tuple[list[float], Any]:
    times: list[float] = []
    last = None
    cpu = [_cpu_ns(p) for p in CPU_PIDS]
    for _ in range(n):
        started = time.perf_counter()
        last = await call()
        times.append(time.perf_counter() - started)
    used = [(_cpu_ns(p) - c) / 1e6 / n for p, c in zip(CPU_PIDS, cpu, strict=True)]
    CPU_MS.append((used[0], sum(used[1:])) if used else (0.0, 0.0))
    return times, last


def _edit(client: LanguageClient, uri: str, version: int, text: str) -> None:
    """An unsaved edit: the whole buffer is ``text`` plus a line naming ``version``."""
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangeWholeDocument(text=f"{text}\n# edit {version}\n")
            ],
        )
    )


def _row(name: str, times: list[float], target: str) -> list[str]:
    server_ms, daemon_ms = CPU_MS[-1] if CPU_MS else (0.0, 0.0)
    print(
        name,
        f"p50 {percentile(times, 50) * 1000:.1f} ms, p95 {percentile(times, 95) * 1000:.1f} ms;",
        f"CPU per request: server {server_ms:.2f} ms, daemon {daemon_ms:.2f} ms",
        flush=True,
    )
    return [
        name,
        f"{percentile(times, 50) * 1000:.1f}",
        f"{percentile(times, 95) * 1000:.1f}",
        f"{max(times) * 1000:.1f}",
        target,
    ]


async def bench(
    root: Path, runs: int, state: Path, pythonpath: str | None = None
) -> tuple[list[list[str]], dict[str, Any]]:
    env = {
        **os.environ,
        "MAESTRO_STATE_DIR": str(state / "st"),
        "MAESTRO_CACHE_DIR": str(state / "ca"),
        "MAESTRO_DAEMON_START_TIMEOUT": "120",
    }
    env.pop("XDG_RUNTIME_DIR", None)
    # The bench's private link tree (bench/__init__.py) has no maestro.server: the server and
    # its daemon use the installed (editable) package.
    env.pop("PYTHONPATH", None)
    if pythonpath:  # another commit's package (--baseline)
        env["PYTHONPATH"] = pythonpath
    client = LanguageClient("bench", "1", converter_factory=_plain_results)

    @client.feature(types.WORKSPACE_CODE_LENS_REFRESH)
    def _refresh(params: Any) -> None:
        return None

    await client.start_io(sys.executable, "-P", "-m", "maestro.server", env=env, cwd=str(root))
    info: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        await client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(),
                root_uri=root.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="django")],
                initialization_options={"interpreter": sys.executable},
            )
        )
        client.initialized(types.InitializedParams())
        src_uri = (root / SOURCE_FILE).as_uri()

        async def impacted(cache_state: bool | str = True) -> Any:
            return _plain(
                await client.protocol.send_request_async(
                    "maestro/impactedTargets",
                    {"textDocument": {"uri": src_uri}, "cacheState": cache_state},
                )
            )

        first = await impacted()  # starts the daemon, builds the graph
        info["first_s"] = time.perf_counter() - started
        info["impacted"] = first["count"]
        assert client._server is not None
        info["settle_s"] = await settle([client._server.pid, *daemon_pids(root)])
        CPU_PIDS[:] = [client._server.pid, *daemon_pids(root)]
        CPU_MS.clear()
        # The measuring client is Python too: a full collection walking everything it imported
        # (lsprotocol's ~1,000 classes) is a 30-60 ms pause in the client, not in the server.
        gc.collect()
        gc.freeze()
        rows = []
        times, last = await _timed(runs, lambda: impacted(False))
        rows.append(
            _row(
                f"impactedTargets, {SOURCE_FILE} saved ({last['count']} tests), re-asked",
                times,
                "<= 30",
            )
        )
        times, last = await _timed(runs, impacted)
        states = {r["cache"]["state"] for r in last["impacted"]}
        rows.append(_row(f"… with cache state ({'/'.join(sorted(states))})", times, "<= 30"))
        # First asks: each file once, so no answer is held (no etag to re-ask with).
        hubs, picked = _pick_files(root, runs)
        counts: list[int] = []

        async def first_ask(files: list[str]) -> Any:
            uri = (root / files.pop()).as_uri()
            answer = _plain(
                await client.protocol.send_request_async(
                    "maestro/impactedTargets", {"textDocument": {"uri": uri}, "cacheState": False}
                )
            )
            counts.append(answer["count"])
            return answer

        times, last = await _timed(min(runs, len(picked)), lambda: first_ask(picked))
        rows.append(
            _row(
                f"… first ask for each of {len(times)} random django/ files "
                f"(median {statistics.median(counts):.0f} tests, max {max(counts)})",
                times,
                "<= 30",
            )
        )
        times, last = await _timed(min(runs, len(hubs)), lambda: first_ask(hubs))
        rows.append(
            _row(
                f"… first ask for each of {len(times)} other hub files (>= 500 tests each)",
                times,
                "<= 30",
            )
        )
        leaf_uri = (root / LEAF_FILE).as_uri()

        async def leaf() -> Any:
            return _plain(
                await client.protocol.send_request_async(
                    "maestro/impactedTargets", {"textDocument": {"uri": leaf_uri}}
                )
            )

        await leaf()
        times, last = await _timed(runs, leaf)
        rows.append(_row(f"impactedTargets, {LEAF_FILE} ({last['count']} tests)", times, "<= 30"))

        # An unsaved edit: the buffer differs from the disk, so the daemon gets it as a buffer.
        text = (root / SOURCE_FILE).read_text()
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=src_uri, language_id="python", version=1, text=text
                )
            )
        )
        version = [1]

        async def unsaved() -> Any:
            version[0] += 1
            _edit(client, src_uri, version[0], text)
            return await impacted(False)

        await unsaved()
        times, last = await _timed(runs, unsaved)
        assert last["source"] == "buffers", last["source"]
        rows.append(
            _row(
                f"impactedTargets, typing into the unsaved buffer ({last['count']} tests)",
                times,
                "<= 30",
            )
        )

        # Code lens on the largest test file of the graph.
        from maestro.daemon.transport.client import DaemonClient
        from maestro.wire import GRAPH_STATS, GraphStatsParams

        os.environ.update({k: env[k] for k in ("MAESTRO_STATE_DIR", "MAESTRO_CACHE_DIR")})
        async with await DaemonClient.connect(root, start=False) as daemon:
            report = await daemon.call(GRAPH_STATS, GraphStatsParams(targets=True))
        tests = [t for t in report.targets or [] if not t.startswith("//")]
        largest = max(tests, key=lambda t: (root / t).stat().st_size)
        test_uri = (root / largest).as_uri()
        test_text = (root / largest).read_text()
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=test_uri, language_id="python", version=1, text=test_text
                )
            )
        )

        async def lenses() -> Any:
            return await client.text_document_code_lens_async(
                types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=test_uri))
            )

        await lenses()
        times, last = await _timed(runs, lenses)
        rows.append(
            _row(
                f"codeLens, {largest} ({len(test_text.splitlines())} lines, {len(last)} lenses)",
                times,
                "<= 50",
            )
        )
        lens_version = [1]

        async def edited_lenses() -> Any:
            # a new buffer text each time: no memo, the file is walked again
            lens_version[0] += 1
            _edit(client, test_uri, lens_version[0], test_text)
            return await lenses()

        times, last = await _timed(runs, edited_lenses)
        rows.append(_row("… after an edit (didChange, then codeLens)", times, "<= 50"))
        info["tests"] = len(tests)
        return rows, info
    finally:
        try:
            await asyncio.wait_for(client.shutdown_async(None), 10)
            client.exit(None)
        finally:
            await client.stop()


def _cpu_ns(pid: int) -> int:
    """CPU time of all of ``pid``'s threads, in ns (schedstat: finer than clock ticks)."""
    total = 0
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError):
                total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
    return total


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def settle(pids: list[int], quiet_s: float = 0.5, limit_s: float = 20.0) -> float:
    """Wait until the server and the daemon stop using CPU (start-up work after the first answer:
    the watcher's first pass, the index save, the model load): "warm" means that work is done, not
    that it lands on the measured requests. Returns the seconds waited."""
    started = time.perf_counter()
    last = sum(_cpu_s(p) for p in pids)
    while time.perf_counter() - started < limit_s:
        await asyncio.sleep(quiet_s)
        now = sum(_cpu_s(p) for p in pids)
        if now - last < 0.02 * quiet_s:  # under 2% of one core
            break
        last = now
    return time.perf_counter() - started


def daemon_pids(root: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"maestro.daemon" in argv and os.fsencode(root) in argv:
            pids.append(int(entry.name))
    return pids


def stop_daemons(root: Path) -> None:
    for pid in daemon_pids(root):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _side_by_side(before: list[list[str]], after: list[list[str]], cpu: list[Any]) -> str:
    rows = [
        [b[0], b[1], a[1], b[2], a[2], f"{cb[0]:.2f}", f"{ca[0]:.2f}"]
        for b, a, (cb, ca) in zip(before, after, cpu, strict=False)
    ]
    head = ["request", "p50 before", "p50 after", "p95 before", "p95 after"]
    return table([*head, "server CPU before", "server CPU after"], rows, "lrrrrrr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--baseline", metavar="REV", help="first run the bench on this commit's server and daemon"
    )
    args = parser.parse_args()
    root = fetch_sdist(*DJANGO).resolve()
    state = Path(tempfile.mkdtemp(prefix="mblsp", dir="/tmp"))
    speed = [host_speed()]
    before: list[list[str]] = []
    before_cpu: list[tuple[float, float]] = []
    try:
        if args.baseline:
            tree = baseline_tree(args.baseline, state / "baseline")
            before, _ = asyncio.run(bench(root, args.runs, state / "b", str(tree)))
            before_cpu = list(CPU_MS)
            stop_daemons(root)
        rows, info = asyncio.run(bench(root, args.runs, state / "a"))
        speed.append(host_speed())
    finally:
        stop_daemons(root)
        shutil.rmtree(state, ignore_errors=True)
    if args.baseline:
        print(f"\nbefore = {args.baseline}, after = the working tree; CPU ms per request")
        print(_side_by_side(before, rows, list(zip(before_cpu, CPU_MS, strict=False))))
    body = "\n".join(
        [
            f"{today()}, {machine()}, {git_rev('server', 'bench/bench_lsp.py')}. "
            f"`python -m bench.bench_lsp --runs {args.runs}` on {root.name} "
            f"({info['tests']} test files): a real stdio client (pygls LanguageClient, custom "
            "results decoded as plain JSON like an editor's client does) talking "
            "to `python -P -m maestro.server`, which talks to the workspace daemon. Client-side "
            f"round trips in ms, {args.runs} requests each after a warm-up; the first request "
            f"(daemon start + graph build) took {info['first_s']:.1f} s; the bench then waited "
            f"{info['settle_s']:.1f} s for the server and the daemon to go idle (start-up work). "
            f"Host speed before / after: a 10^7-item Python loop took {speed[0]:.2f} / "
            f"{speed[1]:.2f} s (~0.3 s in this machine's quiet hours).",
            "",
            table(["request", "p50", "p95", "max", "target p95"], rows, "lrrrr"),
        ]
    )
    print(body)
    if args.write:
        write_section("LSP (issue 5)", body)


if __name__ == "__main__":
    main()
