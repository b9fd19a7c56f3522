"""Coordinator GET-hit bench: throughput and p50/p95 for 4 KiB and 1 MiB blobs over loopback.

    python -m bench.bench_coordinator [--quick] [--setups single,replicas] [--profile]
    python -m bench.bench_coordinator --setups single-copy,single,single-copy,single  # A/B

Setups (real processes, temp dirs, loopback only):
- `single`: one `maestro coordinator serve` with the embedded LMDB store.
- `single-copy`: the same with `stream_large_reads = false` (the copying 1 MiB read path this
  issue replaced), for an A/B comparison interleaved in one run on a noisy machine.
- `replicas`: two replicas sharing a Debian redis-server (keys, quotas) and a Debian nginx WebDAV
  upstream (blobs); the load generator alternates between them like a round-robin balancer.

The load generator is a second process (aiohttp client): a sequential pass (one request at a
time: latency) and a concurrent pass (16 in flight: throughput), each a fixed number of requests.
Bodies are length-checked, not re-hashed, so client CPU stays off the server's 2 vCPUs as much
as possible. `--profile` runs the single node under cProfile and prints the top of the 1 MiB GET
path. Nothing here imports maestro in-process (bench/__init__ has no link for the coordinator):
servers and bootstrap run as subprocesses of the installed `maestro`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PYTHON = sys.executable
MAESTRO = str(Path(sys.executable).parent / "maestro")
THIS = Path(__file__).resolve()
SIZES = {"4 KiB": 4 << 10, "1 MiB": 1 << 20}
CONCURRENCY = 16


def _env(**extra: str) -> dict[str, str]:
    """The installed package, not bench/__init__'s private link tree (it has no coordinator)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(extra)
    return env


# -- load generator (runs in its own process) --------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    bases: list[str] = spec["bases"]
    headers = {"Authorization": f"Bearer {spec['key']}"}
    results: dict[str, Any] = {}
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY * 2)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=connector, auto_decompress=False
    ) as http:
        import hashlib

        for label, size in SIZES.items():
            if label not in spec["requests"]:
                continue
            n_seq, n_conc = spec["requests"][label]
            paths = []
            for i in range(8):  # a few distinct blobs, uploaded through the first replica
                blob = os.urandom(size)
                path = f"/{spec['tenant']}/cas/{hashlib.sha256(blob).hexdigest()}"
                async with http.put(bases[i % len(bases)] + path, data=blob, headers=headers) as r:
                    assert r.status == 200, await r.text()
                paths.append(path)

            async def get(i: int, paths: list[str] = paths, size: int = size) -> float:
                url = bases[i % len(bases)] + paths[i % len(paths)]
                start = time.perf_counter()
                async with http.get(url, headers=headers) as resp:
                    body = await resp.read()
                elapsed = time.perf_counter() - start
                assert resp.status == 200 and len(body) == size, resp.status
                return elapsed

            for i in range(20):  # warm up connections, caches, page cache
                await get(i)
            seq = [await get(i) for i in range(n_seq)]
            counter = iter(range(n_conc))
            conc: list[float] = []

            async def worker(get: Any = get, counter: Any = counter, conc: Any = conc) -> None:
                for i in counter:
                    conc.append(await get(i))

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            wall = time.perf_counter() - start
            results[label] = {
                "seq_n": n_seq,
                "seq_p50_ms": statistics.median(seq) * 1000,
                "seq_p95_ms": _pct(seq, 0.95) * 1000,
                "conc_n": n_conc,
                "conc_p50_ms": statistics.median(conc) * 1000,
                "conc_p95_ms": _pct(conc, 0.95) * 1000,
                "req_s": n_conc / wall,
                "mb_s": n_conc * size / wall / 1e6,
            }
    return results


# -- process orchestration ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


class Procs:
    """Every process started here, stopped (in reverse order) on exit."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def add(self, proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


def _coordinator(
    procs: Procs, data: Path, settings: dict[str, str], profile: Path | None = None
) -> str:
    data.mkdir(parents=True, exist_ok=True)
    env = _env(
        MAESTRO_COORDINATOR_DATA_DIR=str(data),
        MAESTRO_COORDINATOR_ACCESS_LOG="false",
        **{f"MAESTRO_COORDINATOR_{k.upper()}": v for k, v in settings.items()},
    )
    cmd = [MAESTRO, "coordinator", "serve", "--port", "0"]
    if profile is not None:
        cmd = [PYTHON, "-m", "cProfile", "-o", str(profile), *cmd]
    proc = procs.add(
        subprocess.Popen(
            cmd,
            cwd=data,
            env=env,
            stdout=subprocess.PIPE,
            stderr=open(data / "server.log", "wb"),  # noqa: SIM115
        )
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError((data / "server.log").read_text()[-2000:])
    return f"http://127.0.0.1:{json.loads(line)['port']}"


def _cli(data: Path, *args: str) -> str:
    return subprocess.run(
        [MAESTRO, "coordinator", *args],
        cwd=data,
        env=_env(MAESTRO_COORDINATOR_DATA_DIR=str(data)),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


BOOTSTRAP_REDIS = """
import asyncio, sys
from maestro.coordinator.auth import new_key
from maestro.coordinator.models import Role
from maestro.coordinator.state import RedisState

async def main():
    state = RedisState.from_url(sys.argv[1])
    await state.add_tenant("bench")
    key = new_key("bench", Role.READ_WRITE, "bench")
    await state.add_key(key.record)
    await state.close()
    print(key.plaintext)

asyncio.run(main())
"""

NGINX_CONF = """\
{user}
daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    client_max_body_size 0;
    client_body_buffer_size 2m;
    sendfile on;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{
            dav_methods PUT DELETE;
            create_full_put_path on;
        }}
    }}
}}
"""


def _setup_single(
    procs: Procs, tmp: Path, profile: Path | None, settings: dict[str, str] | None = None
) -> tuple[list[str], str]:
    data = Path(tempfile.mkdtemp(prefix="single-", dir=tmp))
    _cli(data, "tenant", "add", "bench")
    key = json.loads(_cli(data, "key", "create", "bench", "--role", "read-write", "--json"))
    return [_coordinator(procs, data, settings or {}, profile)], key["api_key"]


def shared_state(procs: Procs, work: Path, worker_connections: int = 1024) -> dict[str, str]:
    """A redis-server and an nginx WebDAV upstream in `work` (both stopped with `procs`): the
    coordinator settings that make replicas share them."""
    redis_bin, nginx_bin = shutil.which("redis-server"), shutil.which("nginx") or "/usr/sbin/nginx"
    if redis_bin is None or not os.path.exists(nginx_bin):
        raise RuntimeError("needs redis-server and nginx (apt-get install -y redis-server nginx)")
    (work / "root" / "cache").mkdir(parents=True)
    redis_port = _free_port()
    redis = procs.add(
        subprocess.Popen(
            [redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1", "--dir", str(work),
             "--save", "", "--appendonly", "no", "--logfile", str(work / "redis.log")],
            stdout=subprocess.DEVNULL,
        )
    )  # fmt: skip
    _wait_port(redis_port, redis, "redis-server")
    nginx_port = _free_port()
    conf = work / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            user="user root root;" if os.geteuid() == 0 else "",
            work=work,
            root=work / "root",
            port=nginx_port,
        ).replace("worker_connections 1024", f"worker_connections {worker_connections}")
    )
    nginx = procs.add(
        subprocess.Popen(
            [nginx_bin, "-c", str(conf), "-p", str(work), "-e", str(work / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    _wait_port(nginx_port, nginx, "nginx")
    return {
        "state_backend": "redis",
        "redis_url": f"redis://127.0.0.1:{redis_port}/0",
        "blob_backend": "http",
        "blob_upstream_url": f"http://127.0.0.1:{nginx_port}/cache",
    }


def _setup_replicas(procs: Procs, tmp: Path) -> tuple[list[str], str]:
    work = tmp / "replicas"
    settings = shared_state(procs, work)
    key = subprocess.run(
        [PYTHON, "-c", BOOTSTRAP_REDIS, settings["redis_url"]],
        cwd=work,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    bases = [_coordinator(procs, work / name, settings) for name in ("a", "b")]
    return bases, key


def _run_load(bases: list[str], key: str, requests: dict[str, tuple[int, int]]) -> Any:
    spec = {"bases": bases, "key": key, "tenant": "bench", "requests": requests}
    out = subprocess.run(
        [PYTHON, str(THIS), "--load", json.dumps(spec)],
        cwd=tempfile.gettempdir(),  # never the repository root
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout)


def _table(rows: list[tuple[str, str, dict[str, Any]]]) -> str:
    lines = [
        "| setup | blob | sequential p50 / p95 (ms) | 16 in flight: p50 / p95 (ms) "
        "| req/s | MB/s |",
        "| :--- | :--- | ---: | ---: | ---: | ---: |",
    ]
    for setup, label, r in rows:
        lines.append(
            f"| {setup} | {label} | {r['seq_p50_ms']:.2f} / {r['seq_p95_ms']:.2f} "
            f"| {r['conc_p50_ms']:.1f} / {r['conc_p95_ms']:.1f} | {r['req_s']:.0f} "
            f"| {r['mb_s']:.0f} |"
        )
    return "\n".join(lines)


SETUP_NAMES = {
    "single": "1 node, embedded LMDB",
    "single-copy": "1 node, embedded LMDB, copying read path (before)",
    "replicas": "2 replicas, Redis + nginx upstream",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    parser.add_argument("--setups", default="single,replicas")
    parser.add_argument("--profile", action="store_true", help="cProfile the single node")
    parser.add_argument("--sizes", default="4KiB,1MiB", help="subset of 4KiB,1MiB")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load:
        print(json.dumps(asyncio.run(_load(json.loads(args.load)))))
        return 0
    scale = 4 if args.quick else 1
    requests = {"4 KiB": (2000 // scale, 4000 // scale), "1 MiB": (300 // scale, 600 // scale)}
    wanted = {s.strip().replace(" ", "") for s in args.sizes.split(",")}
    requests = {k: v for k, v in requests.items() if k.replace(" ", "") in wanted}
    rows: list[tuple[str, str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="maestro-bench-coord-") as tmp_name:
        tmp = Path(tmp_name)
        for setup in [s.strip() for s in args.setups.split(",") if s.strip()]:
            procs = Procs()
            profile = tmp / "single.prof" if args.profile and setup == "single" else None
            try:
                if setup == "single":
                    bases, key = _setup_single(procs, tmp, profile)
                elif setup == "single-copy":
                    bases, key = _setup_single(procs, tmp, None, {"stream_large_reads": "false"})
                elif setup == "replicas":
                    bases, key = _setup_replicas(procs, tmp)
                else:
                    parser.error(f"unknown setup {setup!r}")
                print(f"running {setup} ({len(bases)} server(s))...", file=sys.stderr, flush=True)
                result = _run_load(bases, key, requests)
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                print(f"{setup}: skipped: {exc}", file=sys.stderr)
                continue
            finally:
                procs.close()
            for label in SIZES:
                if label in result:
                    rows.append((SETUP_NAMES[setup], label, result[label]))
            if profile is not None and profile.exists():
                import pstats

                pstats.Stats(str(profile)).sort_stats("cumulative").print_stats(
                    "coordinator|aiohttp/web_|hashlib|lmdb", 25
                )
    print(_table(rows))
    counts = ", ".join(
        f"{k}: {seq} sequential + {conc} concurrent" for k, (seq, conc) in requests.items()
    )
    print(
        f"\nrequests per setup: {counts}; "
        f"{os.cpu_count()} CPUs shared by servers and load generator"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
