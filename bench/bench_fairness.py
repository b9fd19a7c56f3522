"""Fairness bench: a hostile tenant against light interactive tenants, fairness off vs on.

    python -m bench.bench_fairness [--quick] [--scenarios embedded,replicas] [--phase-s 8]
        [--hostile 200] [--hold 5000] [--write-docs]

Loopback only, real processes, bounded: every phase lasts `--phase-s` seconds, every process
has a deadline, and everything started is stopped on exit.

Per scenario (`embedded`: one `maestro coordinator serve` on LMDB; `replicas`: two replicas
sharing a Debian redis-server and an nginx WebDAV upstream, load split between them):

1. **unloaded**: three light tenants (priority interactive) read a 4 KiB blob, open loop at
   `--light-rate` requests/s each; their p95 is the baseline (server with fairness on).
2. **loaded, fairness off** (`fairness = false`, `rate_limits = "off"`: every request served at
   once, as before admission existed): the same light load while the hostile tenant (priority
   ci) keeps `--hostile` 1 MiB uploads in flight (re-sending 50 ms after any refusal, ignoring
   Retry-After) plus a burst of 300 reads every 2 s; `--hold` more connections are opened from
   20 loopback addresses (spread over the replicas) and kept alive for the whole phase.
3. **loaded, fairness on** (defaults plus `rate_limits = "shadow"` with limits on the hostile
   tenant, so the limit check is part of every admission): the same load.
4. **unloaded + hostile client's CPU**: as 1, while a process burns as much CPU as the hostile
   client process used in 3 (without sending anything): the baseline with the load generator's
   own CPU accounted for, on a host whose 2 cores the clients share with the servers.

Reported: each tenant's p95; the **gap** = light p95 loaded - light p95 unloaded (how far the
top tenant pushes the bottom ones; the seed target is a 40% reduction with fairness on); light
p95 loaded / unloaded (goal <= 1.5x); per tenant, the share of its level's seats it held while
it had requests waiting, against its minimum share; the admission-check p95 from the server's
histogram (goal <= 2 ms); connections held; how long the servers' event loops and the light
client waited for a CPU while runnable (/proc schedstat). Client processes are separate from the
servers; the host has 2 vCPUs shared with other jobs, so read ratios, not absolute numbers.
`--client-nice N` runs the load generators (hostile client, held connections, burner) at nice N.
`--pin 0:1` pins the servers (and redis-server, nginx) to CPU 0 and every client process (light
client included) to CPU 1, as a deployment would give the coordinator cores of its own and the
CI farm and developers machines of theirs; other processes on the host still use both CPUs. The
targets are the same; a pinned run is labelled as such in its output.
`--load-sched idle` runs the load generators (hostile client, held connections, burner) at
SCHED_IDLE: a model of a CI farm whose clients run on machines of their own. They still send as
much as they can, but get a CPU only when the servers, Redis, nginx and the light client leave
one free, and a waking server or light client always preempts them. Report the unmodelled run
beside it: the model removes the load generator's CPU from the measured path, so it also makes
the fairness-off phase milder (the gap cut is read on the unmodelled run).
Per phase the report also gives the CPU of redis-server and nginx (replicas) and how late the
light client's own timers fired (p50/p95): the light client's wait for a CPU, which each of its
requests also pays when its answer arrives.
`--session-nice N`: with the kernel's autogroup scheduling on (`/proc/sys/kernel/
sched_autogroup_enabled`), CPU time is shared between sessions first and a thread's nice value
only orders it within its own session, so `--server-nice` and `--client-nice` cannot take CPU
from another session's jobs. This sets the bench session's autogroup nice (every process of the
bench, servers and clients alike, against the other sessions on the host; negative needs root)
and puts it back when the bench ends. The session is the one the bench was started in (its
shell included): run it in a session of its own (`setsid`).

    python -m bench.bench_fairness --decision-only 5000   # the admission decision alone
    python -m bench.bench_fairness --cost-only 200        # server CPU per upload / per read
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.bench_coordinator import Procs

PYTHON = sys.executable
THIS = Path(__file__).resolve()
LIGHT = ("dev1", "dev2", "dev3")
HOSTILE = "cifarm"
HOSTILE_POLICY = {"priority": "ci", "min_share": 0.25, "rate_per_s": 100.0, "burst": 200}
LIGHT_POLICY = {"priority": "interactive", "min_share": 0.1}
BLOB = 4096
UPLOAD = 1 << 20

BOOTSTRAP = """
import asyncio, json, sys
from maestro.coordinator.auth import new_key
from maestro.coordinator.models import Role
from maestro.coordinator.records import TenantUpdate

spec = json.loads(sys.argv[1])

async def main():
    if spec["redis"]:
        from maestro.coordinator.state import RedisState
        state = RedisState.from_url(spec["redis"])
    else:
        from maestro.coordinator.state import LmdbState
        from maestro.coordinator.store import Store
        store = Store(__import__("pathlib").Path(spec["data"]) / "store")
        state = LmdbState(store)
    keys = {}
    for name, policy in spec["tenants"].items():
        await state.add_tenant(name)
        await state.update_tenant(name, TenantUpdate(policy_changes=policy))
        key = new_key(name, Role.READ_WRITE, "bench")
        await state.add_key(key.record)
        keys[name] = key.plaintext
    await state.close()
    if not spec["redis"]:
        store.close()
    print(json.dumps(keys))

asyncio.run(main())
"""


def _env(**extra: str) -> dict[str, str]:
    """The installed package for child processes (bench/__init__'s link tree has no
    coordinator); the load roles import nothing from bench/. MAESTRO_BENCH_CODE=DIR runs every
    child from a package tree instead (a snapshot of a commit, when the shared working tree is
    in the middle of someone's edit)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = os.environ.get("MAESTRO_BENCH_CODE")
    if code:
        env["PYTHONPATH"] = code
    env.update(extra)
    return env


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _raise_nofile(want: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, max(soft, want)) if hard != resource.RLIM_INFINITY else max(soft, want)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- client roles (each runs in its own process) -----------------------------------------------


async def _token(session: Any, base: str, key: str) -> str:
    """A token; a server answering 5xx under load is asked again (up to ~10 s)."""
    for _ in range(50):
        async with session.post(f"{base}/v1/token", json={"api_key": key}) as resp:
            body = await resp.json()
            if resp.status == 200:
                return str(body["token"])
            if resp.status < 500:
                raise RuntimeError(f"token: {resp.status} {body}")
        await asyncio.sleep(0.2)
    raise RuntimeError(f"token: {resp.status} {body}")


async def _light(spec: dict[str, Any]) -> dict[str, Any]:
    """Open-loop reads of one 4 KiB blob per tenant; latency per request, timeouts included."""
    import aiohttp

    bases: list[str] = spec["bases"]
    duration, rate = spec["duration"], spec["rate"]
    results: dict[str, dict[str, Any]] = {}
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=timeout
    ) as session:
        tokens = {
            (t, b): await _token(session, b, spec["keys"][t])
            for t in spec["tenants"]
            for b in bases
        }

        async def one(tenant: str, base: str, out: list[float], codes: dict[str, int]) -> None:
            start = time.perf_counter()
            try:
                async with session.get(
                    f"{base}/{tenant}/cas/{spec['digests'][tenant]}",
                    headers={"Authorization": f"Bearer {tokens[tenant, base]}"},
                ) as resp:
                    await resp.read()
                    codes[str(resp.status)] = codes.get(str(resp.status), 0) + 1
            except (aiohttp.ClientError, TimeoutError):
                codes["error"] = codes.get("error", 0) + 1
            out.append((time.perf_counter() - start) * 1000)

        async def tenant_loop(tenant: str) -> None:
            out: list[float] = []
            codes: dict[str, int] = {}
            tasks = []
            start = time.perf_counter()
            i = 0
            while time.perf_counter() - start < duration:
                base = bases[i % len(bases)]
                tasks.append(asyncio.create_task(one(tenant, base, out, codes)))
                i += 1
                next_at = start + i / rate
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                late.append((time.perf_counter() - next_at) * 1000)
            await asyncio.gather(*tasks)
            results[tenant] = {
                "n": len(out),
                "p50": _pct(out, 0.5),
                "p95": _pct(out, 0.95),
                "codes": codes,
            }

        # how late the client's own timers fired: the light client's wait for a CPU (and for
        # its loop), which every one of its requests also pays when its answer arrives
        late: list[float] = []
        await asyncio.gather(*(tenant_loop(t) for t in spec["tenants"]))
    return {"tenants": results, "late_p50": _pct(late, 0.5), "late_p95": _pct(late, 0.95)}


async def _hostile(spec: dict[str, Any]) -> dict[str, Any]:
    """`concurrency` uploads always in flight plus a burst of reads every 2 s, until the
    deadline; a refused upload is re-sent after 50 ms whatever Retry-After said."""
    import hashlib

    import aiohttp

    bases: list[str] = spec["bases"]
    deadline = time.monotonic() + spec["duration"]
    rng = random.Random(7)
    pool = [rng.randbytes(UPLOAD) for _ in range(8)]
    digests = [hashlib.sha256(b).hexdigest() for b in pool]
    codes: dict[str, int] = {}
    latencies: list[float] = []
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as up,
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, local_addr=("127.0.0.30", 0)), timeout=timeout
        ) as burst,
    ):
        tokens = {b: await _token(up, b, spec["key"]) for b in bases}

        def count(code: str) -> None:
            codes[code] = codes.get(code, 0) + 1

        async def uploader(n: int) -> None:
            i = n
            while time.monotonic() < deadline:
                base = bases[i % len(bases)]
                k = i % len(pool)
                i += 1
                start = time.perf_counter()
                try:
                    async with up.put(
                        f"{base}/{HOSTILE}/cas/{digests[k]}",
                        data=pool[k],
                        headers={"Authorization": f"Bearer {tokens[base]}"},
                    ) as resp:
                        await resp.read()
                        count(f"put {resp.status}")
                        latencies.append((time.perf_counter() - start) * 1000)
                        if resp.status != 200:
                            await asyncio.sleep(0.05)
                except (aiohttp.ClientError, TimeoutError):
                    count("put error")
                    await asyncio.sleep(0.05)

        async def bursts() -> None:
            while time.monotonic() < deadline:

                async def read(j: int) -> None:
                    base = bases[j % len(bases)]
                    try:
                        async with burst.get(
                            f"{base}/{HOSTILE}/cas/{rng.randbytes(32).hex()}",
                            headers={"Authorization": f"Bearer {tokens[base]}"},
                        ) as resp:
                            await resp.read()
                            count(f"burst {resp.status}")
                    except (aiohttp.ClientError, TimeoutError):
                        count("burst error")

                await asyncio.gather(*(read(j) for j in range(300)))
                await asyncio.sleep(2.0)

        await asyncio.gather(*(uploader(n) for n in range(spec["concurrency"])), bursts())
    return {"codes": codes, "put_p95": _pct(latencies, 0.95), "puts": len(latencies)}


async def _hold(spec: dict[str, Any]) -> dict[str, Any]:
    """Open `n` connections from 20 loopback addresses, spread over the servers, hold them idle
    until the deadline, then send one request on each: held = still open and answered."""
    _raise_nofile(spec["n"] + 1000)
    servers: list[tuple[str, int]] = [(h, int(p)) for h, p in spec["servers"]]
    host = servers[0][0]
    deadline = time.monotonic() + spec["duration"]
    opened = 0
    lost = 0
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

    async def one(i: int) -> None:
        nonlocal opened, lost
        try:
            reader, writer = await asyncio.open_connection(
                *servers[i % len(servers)], local_addr=(f"127.0.0.{2 + i % 20}", 0)
            )
        except OSError:
            lost += 1
            return
        opened += 1

        async def ask() -> None:
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            length = next(
                (int(ln.split(b":")[1]) for ln in head.split(b"\r\n")
                 if ln.lower().startswith(b"content-length")),
                0,
            )  # fmt: skip
            await asyncio.wait_for(reader.readexactly(length), 30)

        try:
            # held idle through the phase (5,000 requests at once would be a load of their
            # own), then each must still be open and served
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            await ask()
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            lost += 1
        finally:
            writer.close()

    tasks = []
    for i in range(spec["n"]):
        tasks.append(asyncio.create_task(one(i)))
        if i % 200 == 199:
            await asyncio.sleep(0.05)  # stay under the listen backlog
    await asyncio.gather(*tasks)
    return {"opened": opened, "lost": lost, "held": opened - lost}


async def _decide(spec: dict[str, Any]) -> dict[str, Any]:
    """The admission decision alone (rate limits of a tenant with burst + rate + a key limit +
    a global limit, then a seat), `n` times in a row: wall time per decision."""
    from limits.aio.storage import MemoryStorage, RedisStorage
    from prometheus_client import CollectorRegistry

    from maestro.coordinator.admission import Admission, FairnessMetrics
    from maestro.coordinator.limits import RateLimits
    from maestro.coordinator.tenancy import TenantPolicy

    metrics = FairnessMetrics(CollectorRegistry())
    storage = (
        RedisStorage("async+" + spec["redis"], implementation="redispy", key_prefix="bench")
        if spec["redis"]
        else MemoryStorage()
    )
    limits = RateLimits(
        storage, mode="shadow", metrics=metrics, global_rate_per_s=1e6, token_rate_per_s=1e6
    )
    admission = Admission(
        concurrency=32,
        shares={"interactive": 40, "ci": 30, "batch": 20, "speculative": 10},
        queues_per_level=64,
        hand_size=6,
        queue_length=32,
        max_wait_s=5,
        metrics=metrics,
    )
    policy = TenantPolicy(priority="interactive", rate_per_s=1e6, burst=1_000_000)
    floor: dict[str, float] = {}
    if spec["redis"]:  # the floor: one bare round trip to the same Redis, same client library
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(spec["redis"])
        pings: list[float] = []
        for _ in range(spec["n"]):
            start = time.perf_counter()
            await client.ping()
            pings.append((time.perf_counter() - start) * 1000)
        await client.aclose()
        floor = {"ping_p50_ms": _pct(pings, 0.5), "ping_p95_ms": _pct(pings, 0.95)}
    times: list[float] = []
    for i in range(spec["n"]):
        start = time.perf_counter()
        await limits.check(f"t{i % 8}", f"k{i % 8}", policy, 0)
        seat = await admission.acquire(f"t{i % 8}", policy)
        times.append((time.perf_counter() - start) * 1000)
        admission.release(seat)
    quota: dict[str, float] = {}
    if spec["redis"]:
        # with replicas, a tenant with a max_concurrent also takes a seat of its cluster-wide
        # quota (one Lua round trip; the release is batched off the path)
        import redis.asyncio

        from maestro.coordinator.concurrency import ClusterConcurrency

        client = redis.asyncio.Redis.from_url(spec["redis"])
        shared = ClusterConcurrency(
            client, "bench:", lease_s=10, queue_length=32, max_wait_s=5, metrics=metrics
        )
        shared.start()
        # another replica holding seats of the same tenants (quota_near)
        other = ClusterConcurrency(
            client, "bench:", lease_s=10, queue_length=32, max_wait_s=5, metrics=metrics,
            replica="other",
        )  # fmt: skip
        other.start()
        held_elsewhere = [
            await other.acquire(f"quota_near{j}", 4, "interactive")
            for j in range(8)
            for _ in range(3)
        ]
        # 1000: far from the quota (spares); 4: a small quota the tenant has to itself (before
        # seats were kept, too small for spares: one Lua round trip each); near: 3 of its 4
        # seats in flight on another replica, this one takes and frees the last
        for label, cap in (("quota", 1000), ("quota_exact", 4), ("quota_near", 4)):
            capped = TenantPolicy(
                priority="interactive", rate_per_s=1e6, burst=1_000_000, max_concurrent=cap
            )
            with_quota: list[float] = []
            asks_before = _asks(shared)
            for i in range(spec["n"]):
                start = time.perf_counter()
                await limits.check(f"t{i % 8}", f"k{i % 8}", capped, 0)
                held = await shared.acquire(f"{label}{i % 8}", cap, "interactive")
                seat = await admission.acquire(f"t{i % 8}", capped)
                with_quota.append((time.perf_counter() - start) * 1000)
                admission.release(seat)
                shared.release(held, 0.0)
            quota |= {
                f"{label}_p50_ms": _pct(with_quota, 0.5),
                f"{label}_p95_ms": _pct(with_quota, 0.95),
                f"{label}_p99_ms": _pct(with_quota, 0.99),
                f"{label}_round_trips": (
                    None if asks_before is None else (_asks(shared) or 0) - asks_before
                ),
            }
        for seat in held_elsewhere:
            other.release(seat, 0.0)
        await other.close()
        await shared.close()
        await client.aclose()
    await limits.close()
    return {
        "n": len(times),
        "p50_ms": _pct(times, 0.5),
        "p95_ms": _pct(times, 0.95),
        "p99_ms": _pct(times, 0.99),
        **quota,
        **floor,
    }


def _asks(quota: Any) -> int | None:
    """Acquire scripts this quota holder has run in Redis so far (None: its code does not
    count them, an older commit)."""
    asks = getattr(quota, "asks", None)
    return None if asks is None else int(asks)


def _decision_only(n: int) -> dict[str, Any]:
    """The decision alone against a throwaway redis-server, without the load phases."""
    from bench.bench_coordinator import Procs, _free_port, _wait_port

    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        raise RuntimeError("needs redis-server (apt-get install -y redis-server)")
    procs = Procs()
    with tempfile.TemporaryDirectory(prefix="bench-decide-") as work:
        try:
            port = _free_port()
            redis = procs.add(
                subprocess.Popen(
                    [redis_bin, "--port", str(port), "--bind", "127.0.0.1", "--dir", work,
                     "--save", "", "--appendonly", "no"],
                    stdout=subprocess.DEVNULL,
                )
            )  # fmt: skip
            _wait_port(port, redis, "redis-server")
            memory = _collect(_spawn("decide", {"redis": None, "n": n}), timeout=300)
            shared = _collect(
                _spawn("decide", {"redis": f"redis://127.0.0.1:{port}/0", "n": n}), timeout=300
            )
        finally:
            procs.close()
    return {"in memory": memory, "redis": shared, "loadavg": os.getloadavg()}


async def _cost(spec: dict[str, Any]) -> dict[str, Any]:
    """One request at a time on one keep-alive connection: `n` 1 MiB uploads (the hostile
    tenant's 8 blobs in turn), then `10 n` 4 KiB reads with a token (the light tenants'), with
    the server's CPU time (from /proc) around each series: its CPU per request, alone."""
    import hashlib

    import aiohttp

    base, pid, n = spec["base"], spec["pid"], spec["n"]
    rng = random.Random(7)
    pool = [rng.randbytes(UPLOAD) for _ in range(8)]
    digests = [hashlib.sha256(b).hexdigest() for b in pool]
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        hostile = {"Authorization": f"Bearer {await _token(session, base, spec['key'])}"}
        light = {"Authorization": f"Bearer {await _token(session, base, spec['light_key'])}"}
        for kind in ("put", "get"):
            before = _cpu_s(pid)
            count = n if kind == "put" else 10 * n
            for i in range(count):
                if kind == "put":
                    request = session.put(
                        f"{base}/{HOSTILE}/cas/{digests[i % 8]}", data=pool[i % 8], headers=hostile
                    )
                else:
                    request = session.get(f"{base}/{LIGHT[0]}/cas/{spec['digest']}", headers=light)
                async with request as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"cost: {kind} answered {resp.status}")
            out[f"{kind}_cpu_ms"] = 1000 * (_cpu_s(pid) - before) / count
    return out


def _cost_only(n: int, rounds: int) -> dict[str, Any]:
    """Server CPU per 1 MiB upload and per 4 KiB read, one at a time, embedded, fairness on
    (as in the loaded phase): `rounds` servers in a row, each measured over `n` of each."""
    import bench.bench_coordinator as coordinator_bench
    from bench.bench_coordinator import Procs

    coordinator_bench._env = _env
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-cost-") as tmp:
        for _ in range(rounds):
            procs = Procs()
            try:
                bases, keys, digests, _ = _start(procs, Path(tmp), "embedded", True)
                spec = {
                    "base": bases[0], "pid": procs.procs[-1].pid, "n": n, "key": keys[HOSTILE],
                    "light_key": keys[LIGHT[0]], "digest": digests[LIGHT[0]],
                }  # fmt: skip
                results.append(_collect(_spawn("cost", spec), timeout=300))
            finally:
                procs.close()
    return {"rounds": results, "loadavg": os.getloadavg()}


async def _burn(spec: dict[str, Any]) -> dict[str, Any]:
    """Busy for `duty` of every 10 ms until the deadline: the CPU the hostile client process
    took, without its requests (the unloaded baseline with the load generator's CPU)."""
    deadline = time.monotonic() + spec["duration"]
    period = 0.01
    while time.monotonic() < deadline:
        until = time.perf_counter() + period * spec["duty"]
        while time.perf_counter() < until:
            pass
        await asyncio.sleep(period * (1 - spec["duty"]))
    return {"duty": spec["duty"]}


def _role_main(role: str, spec_json: str) -> int:
    spec = json.loads(spec_json)
    if spec.get("sched_idle"):  # every thread started from here on inherits it
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    runner = {
        "light": _light, "hostile": _hostile, "hold": _hold, "decide": _decide, "burn": _burn,
        "cost": _cost,
    }[role]  # fmt: skip
    print(json.dumps(asyncio.run(runner(spec))))
    return 0


# -- orchestration -----------------------------------------------------------------------------


PIN: dict[str, set[int]] = {}
"""`--pin`: the CPUs of the "servers" and of the "clients" (empty: not pinned)."""


def _pin(pid: int, cpus: set[int] | None) -> None:
    """Every thread of a process and of its descendants on `cpus` (later threads inherit)."""
    if not cpus:
        return
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for tid in tids:
        try:
            os.sched_setaffinity(int(tid), cpus)
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                children = [int(c) for c in f.read().split()]
        except OSError:
            continue
        for child in children:
            _pin(child, cpus)


LOAD_IDLE: list[bool] = []
"""`--load-sched idle`: the load generators (hostile client, held connections, burner) run at
SCHED_IDLE (non-empty: yes)."""


def _spawn(role: str, spec: dict[str, Any], nice: int = 0) -> subprocess.Popen[str]:
    niced = ["nice", "-n", str(nice)] if nice else []
    if LOAD_IDLE and role in ("hostile", "hold", "burn"):
        spec = {**spec, "sched_idle": True}
    proc = subprocess.Popen(
        [*niced, PYTHON, str(THIS), "--role", role, json.dumps(spec)],
        cwd=tempfile.gettempdir(),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if role in ("light", "hostile", "hold", "burn"):
        _pin(proc.pid, PIN.get("clients"))
    return proc


def _collect(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"load process failed: {err[-2000:]}")
    result: dict[str, Any] = json.loads(out)
    return result


def _with_children(pid: int) -> list[int]:
    """A process and its child processes (nginx's workers)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [pid, *(int(c) for c in f.read().split())]
    except OSError:
        return [pid]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _runq_wait_s(pid: int) -> float:
    """Seconds the process's main thread (the event loop's) has waited for a CPU while
    runnable (0 once it is gone, or without schedstats)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of the process's main thread so far: how
    often it slept (the event loop waiting in epoll) and how often it was preempted."""
    counts = {}
    try:
        with open(f"/proc/{pid}/task/{pid}/status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    key, value = line.split(":")
                    counts[key] = int(value)
    except (OSError, ValueError):
        return 0, 0
    return counts.get("voluntary_ctxt_switches", 0), counts.get("nonvoluntary_ctxt_switches", 0)


def _host_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:8]]
    return sum(values) - values[3] - values[4], sum(values)


class _CpuMeter:
    """CPU cores used by each named process and by the whole host over a window."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self.start = {k: sum(_cpu_s(p) for p in v) for k, v in pids.items()}
        self.waited = {k: sum(_runq_wait_s(p) for p in v) for k, v in pids.items()}
        self.switched = {k: [_switches(p) for p in v] for k, v in pids.items()}
        self.host = _host_jiffies()
        self.t0 = time.monotonic()
        self.wall = 0.0
        self.runq_wait: dict[str, float] = {}
        """Per name: the main threads' wait for a CPU, seconds per second (after `stop`)."""
        self.switches: dict[str, list[float]] = {}
        """Per name: the main threads' [sleeps, preemptions] per second (after `stop`)."""

    def stop(self) -> dict[str, float]:
        wall = self.wall = time.monotonic() - self.t0
        self.runq_wait = {
            k: round((sum(_runq_wait_s(p) for p in v) - self.waited[k]) / wall, 3)
            for k, v in self.pids.items()
        }
        for k, v in self.pids.items():
            now = [_switches(p) for p in v]
            self.switches[k] = [
                round(sum(b[i] - a[i] for a, b in zip(self.switched[k], now, strict=True)) / wall)
                for i in (0, 1)
            ]
        out = {k: (sum(_cpu_s(p) for p in v) - self.start[k]) / wall for k, v in self.pids.items()}
        busy, total = _host_jiffies()
        cores = os.cpu_count() or 1
        out["host"] = cores * (busy - self.host[0]) / max(1, total - self.host[1])
        return {k: round(v, 2) for k, v in out.items()}


def _metrics(base: str) -> str:
    import urllib.request

    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
        text: str = resp.read().decode()
        return text


def _histogram_p95(text: str, name: str, labels: str = "") -> float | None:
    """The upper bound of the bucket holding the 95th percentile (None: no observations)."""
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if line.startswith(name + "_bucket{") and labels in line:
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    for bound, cumulative in sorted(buckets):
        if cumulative >= 0.95 * total:
            return bound
    return None


def _sum_metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.split()[-1])
    return total


def _start(
    procs: Procs, tmp: Path, scenario: str, fairness: bool, extra: dict[str, str] | None = None
) -> tuple[list[str], dict[str, str], dict[str, str], str | None]:
    from bench.bench_coordinator import NGINX_CONF, _coordinator, _free_port, _wait_port

    settings = {
        "max_connections_per_client": "2000",
        "metrics_public": "true",  # loopback bench: per-tenant series without a metrics token
        "fairness": "true" if fairness else "false",
        "rate_limits": "shadow" if fairness else "off",
        # interactive reads get most seats: their handlers are short but wait on a busy loop
        "concurrency": "32",
        "priority_shares": "interactive=60,ci=20,batch=15,speculative=5",
        # held connections stay open idle for the whole phase (slowloris tests use the default)
        "header_timeout_s": "120",
        **(extra or {}),
    }
    tenants = {HOSTILE: HOSTILE_POLICY, **{t: LIGHT_POLICY for t in LIGHT}}
    work = Path(tempfile.mkdtemp(prefix=f"{scenario}-", dir=tmp))
    redis_url = None
    if scenario == "replicas":
        redis_bin = shutil.which("redis-server")
        nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
        if redis_bin is None or not os.path.exists(nginx_bin):
            raise RuntimeError("replicas need redis-server and nginx")
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
            ).replace("worker_connections 1024", "worker_connections 4096")
        )
        nginx = procs.add(
            subprocess.Popen(
                [nginx_bin, "-c", str(conf), "-p", str(work), "-e", str(work / "error.log")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        _wait_port(nginx_port, nginx, "nginx")
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        settings |= {
            "state_backend": "redis",
            "redis_url": redis_url,
            "blob_backend": "http",
            "blob_upstream_url": f"http://127.0.0.1:{nginx_port}/cache",
        }
    data = work / "a"
    data.mkdir(parents=True, exist_ok=True)
    keys = json.loads(
        subprocess.run(
            [PYTHON, "-c", BOOTSTRAP,
             json.dumps({"redis": redis_url, "data": str(data), "tenants": tenants})],
            cwd=work, env=_env(), capture_output=True, text=True, check=True, timeout=120,
        ).stdout
    )  # fmt: skip
    names = ("a", "b") if scenario == "replicas" else ("a",)
    bases = [_coordinator(procs, work / name, settings) for name in names]
    digests = _seed(bases[0], keys)
    return bases, keys, digests, redis_url


def _seed(base: str, keys: dict[str, str]) -> dict[str, str]:
    """One 4 KiB blob per light tenant, uploaded before measuring."""
    import hashlib
    import urllib.request

    digests = {}
    for tenant in LIGHT:
        data = random.Random(tenant).randbytes(BLOB)
        digest = hashlib.sha256(data).hexdigest()
        req = urllib.request.Request(
            f"{base}/v1/token", data=json.dumps({"api_key": keys[tenant]}).encode(), method="POST"
        )
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            token = json.loads(resp.read())["token"]
        put = urllib.request.Request(f"{base}/{tenant}/cas/{digest}", data=data, method="PUT")
        put.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(put, timeout=10):
            pass
        digests[tenant] = digest
    return digests


def _phase(
    bases: list[str],
    keys: dict[str, str],
    digests: dict[str, str],
    args: argparse.Namespace,
    *,
    hostile: bool,
    hold: int,
    servers: list[int],
    burn: float = 0.0,
    redis_url: str | None = None,
    helpers: dict[str, list[int]] | None = None,
) -> dict[str, Any]:
    warm = 2.0 if hostile else 0.0
    span = args.phase_s + warm + 1
    hold_proc = None
    if hold:
        addresses = [b.removeprefix("http://").rsplit(":", 1) for b in bases]
        hold_proc = _spawn(
            "hold", {"n": hold, "servers": addresses, "duration": span + 4}, args.client_nice
        )
        time.sleep(4)  # connections opened before the load starts
    hostile_proc = None
    if hostile:
        hostile_proc = _spawn(
            "hostile",
            {"bases": bases, "key": keys[HOSTILE], "duration": span, "concurrency": args.hostile},
            args.client_nice,
        )
        time.sleep(warm)
    import threading

    samples: list[float] = []
    sampling = threading.Event()

    def sample() -> None:  # the hostile tenant's seats held, as a share of its level's seats
        while not sampling.wait(0.5):
            try:
                texts = [_metrics(b) for b in bases]
            except OSError:
                continue
            held = sum(
                _sum_metric(t, "maestro_coordinator_tenant_in_flight", tenant=HOSTILE)
                for t in texts
            )
            seats = sum(
                _sum_metric(t, "maestro_coordinator_level_seats", priority="ci") for t in texts
            )
            if seats:
                samples.append(held / seats)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    burners = [
        _spawn("burn", {"duty": min(1.0, burn - i), "duration": args.phase_s + 1}, args.client_nice)
        for i in range(int(-(-burn // 1)))
    ]
    # without the hostile tenant, every Redis command is the light reads' (and the replicas' own
    # periodic ones): what one light read costs in Redis round trips
    redis_before = _redis_commands(redis_url) if redis_url and not hostile else None
    light_proc = _spawn(
        "light",
        {
            "bases": bases,
            "keys": keys,
            "tenants": list(LIGHT),
            "digests": digests,
            "duration": args.phase_s,
            "rate": args.light_rate,
        },
        args.server_nice,
    )
    meter = _CpuMeter(
        {
            "servers": servers,
            "light client": [light_proc.pid],
            **({"hostile client": [hostile_proc.pid]} if hostile_proc else {}),
            **({"holder": [hold_proc.pid]} if hold_proc else {}),
            **({"burner": [b.pid for b in burners]} if burners else {}),
            **(helpers or {}),
        }
    )
    time.sleep(max(0.0, args.phase_s - 0.5))
    cpu = meter.stop()
    light_out = _collect(light_proc, timeout=args.phase_s + 60)
    light = light_out["tenants"]
    redis_used = (
        _redis_commands(redis_url) - redis_before
        if redis_url is not None and redis_before is not None
        else None
    )
    for burner in burners:
        _collect(burner, timeout=30)
    sampling.set()
    sampler.join()
    metrics_after = [_metrics(b) for b in bases]
    out: dict[str, Any] = {
        "light": light,
        "light_client_late_p50_ms": light_out["late_p50"],
        "light_client_late_p95_ms": light_out["late_p95"],
        "cpu_cores": cpu,
        "runq_wait": meter.runq_wait,
        "switches_per_s": meter.switches,
    }
    requests = sum(v.get("n", 0) for v in light.values())
    if redis_used is not None and requests:
        out["redis_cmds_per_light_read"] = redis_used / requests
    if hostile_proc is not None:
        out["hostile"] = _collect(hostile_proc, timeout=span + 60)
    if hold_proc is not None:
        out["hold"] = _collect(hold_proc, timeout=span + 60)
    out["admission_p95_s"] = max(
        (p for p in (_histogram_p95(m, "maestro_coordinator_admission_check_seconds")
                     for m in metrics_after) if p is not None),
        default=None,
    )  # fmt: skip
    for key, name, labels in (
        (
            "light_server_p95_s",
            "maestro_coordinator_gated_request_seconds",
            'priority="interactive"',
        ),
        ("loop_lag_p95_s", "maestro_coordinator_event_loop_lag_seconds", ""),
    ):
        out[key] = max(
            (p for p in (_histogram_p95(m, name, labels) for m in metrics_after) if p is not None),
            default=None,
        )
    out["hostile_seat_share"] = sum(samples) / len(samples) if samples and hostile else None
    out["shares_while_queued"] = _shares_while_queued(metrics_after)
    out["light_rejected"] = sum(
        _sum_metric(m, "maestro_coordinator_rejected_total", tenant=t)
        for m in metrics_after
        for t in LIGHT
    )
    out["shadow_refusals"] = sum(
        _sum_metric(m, "maestro_coordinator_rate_limit_shadow_total") for m in metrics_after
    )
    return out


def _shares_while_queued(texts: list[str]) -> dict[str, dict[str, Any]]:
    """Per tenant: the time it had requests waiting for a seat (summed over the servers) and
    the share of its level's seats it held meanwhile, against its configured minimum share.
    This, not the seats held at an instant, is what a minimum share promises."""
    out: dict[str, dict[str, Any]] = {}
    for tenant, policy in ((HOSTILE, HOSTILE_POLICY), *((t, LIGHT_POLICY) for t in LIGHT)):
        level = str(policy["priority"])
        queued = seat_s = capacity = 0.0
        for text in texts:
            waited = _sum_metric(
                text, "maestro_coordinator_queued_seconds_total", priority=level, tenant=tenant
            )
            seats = _sum_metric(text, "maestro_coordinator_level_seats", priority=level)
            queued += waited
            capacity += waited * seats
            seat_s += _sum_metric(
                text,
                "maestro_coordinator_queued_seat_seconds_total",
                priority=level,
                tenant=tenant,
            )
        out[tenant] = {
            "queued_s": queued,
            "share": seat_s / capacity if capacity else None,
            "min_share": policy.get("min_share", 0.0),
        }
    return out


def _renice(pid: int, nice: int) -> None:
    """Every thread of a process at `nice` (threads started later inherit it)."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError as exc:
            raise RuntimeError(f"--server-nice {nice}: {exc} (negative needs root)") from None


def _autogroup(nice: int | None) -> str | None:
    """This session's autogroup (and its nice), after setting it to `nice`; None when the
    kernel does not group by session."""
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as f:
            if f.read().strip() != "1":
                return None
        if nice is not None:
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(nice))
        with open("/proc/self/autogroup") as f:
            return f.read().strip()
    except OSError as exc:
        if nice is not None:
            raise RuntimeError(f"--session-nice {nice}: {exc}") from None
        return None


def _redis_commands(url: str) -> int:
    """Commands the Redis server has run so far (INFO itself excluded)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def _light_p95(result: dict[str, Any]) -> float:
    return float(max(v["p95"] for v in result["light"].values()))


BURNED = "unloaded + hostile client's CPU"
PHASES = ("unloaded", "loaded, fairness off", "loaded, fairness on", BURNED)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import bench.bench_coordinator as coordinator_bench
    from bench.bench_coordinator import Procs

    coordinator_bench._env = _env  # the servers run from the same code as the clients

    limit = _raise_nofile(args.hold + 4000)
    report: dict[str, Any] = {"nofile": limit, "scenarios": {}}
    report["autogroup"] = _autogroup(args.session_nice)
    if args.pin:
        servers, clients = ({int(c) for c in part.split(",")} for part in args.pin.split(":", 1))
        if servers & clients:
            raise SystemExit("--pin: the servers' and the clients' CPUs must be disjoint")
        PIN.update(servers=servers, clients=clients)
        report["pin"] = {"servers": sorted(servers), "clients": sorted(clients)}
    if args.load_sched == "idle":
        LOAD_IDLE.append(True)
        report["load_sched"] = "idle"
    with tempfile.TemporaryDirectory(prefix="bench-fairness-") as tmp_name:
        tmp = Path(tmp_name)
        for scenario in args.scenarios.split(","):
            rows: dict[str, Any] = {}
            hold = args.hold
            for label, fairness, hostile in (
                ("unloaded", True, False),
                ("loaded, fairness off", False, True),
                ("loaded, fairness on", True, True),
                (BURNED, True, False),
            ):
                procs = Procs()
                burn = 0.0
                if label == BURNED:  # the hostile client's own CPU, taken from the light load
                    burn = rows["loaded, fairness on"]["cpu_cores"]["hostile client"]
                extra = dict(kv.split("=", 1) for kv in args.setting) if fairness else {}
                if fairness and args.bulk_upload_rate:
                    extra["bulk_upload_bytes_per_s"] = args.bulk_upload_rate
                try:
                    bases, keys, digests, redis_url = _start(procs, tmp, scenario, fairness, extra)
                    servers = [p.pid for p in procs.procs[-len(bases) :]]
                    helpers = (
                        {
                            "redis-server": [procs.procs[0].pid],
                            "nginx": _with_children(procs.procs[1].pid),
                        }
                        if scenario == "replicas"
                        else None
                    )
                    if args.server_nice:
                        for proc in procs.procs:  # servers, and redis-server and nginx
                            _renice(proc.pid, args.server_nice)
                    for proc in procs.procs:
                        _pin(proc.pid, PIN.get("servers"))
                    rows[label] = _phase(
                        bases,
                        keys,
                        digests,
                        args,
                        hostile=hostile,
                        hold=hold if hostile else 0,
                        servers=servers,
                        burn=burn,
                        redis_url=redis_url,
                        helpers=helpers,
                    )
                    if label == "loaded, fairness on":  # the load is over: the decision alone
                        rows["decision"] = _collect(
                            _spawn("decide", {"redis": redis_url, "n": 5000}), timeout=300
                        )
                except RuntimeError:
                    for log in sorted(tmp.glob("*/*/server.log")):
                        tail = log.read_text(errors="replace")[-3000:]
                        print(f"--- {log}\n{tail}", file=sys.stderr)
                    raise
                finally:
                    procs.close()
                print(
                    f"{scenario} / {label}: light p95 {_light_p95(rows[label]):.1f} ms",
                    file=sys.stderr,
                )
            base = _light_p95(rows["unloaded"])
            off, on = (
                _light_p95(rows["loaded, fairness off"]),
                _light_p95(rows["loaded, fairness on"]),
            )
            gap_off, gap_on = off - base, on - base
            rows["summary"] = {
                "light_p95_unloaded_ms": base,
                "light_p95_off_ms": off,
                "light_p95_on_ms": on,
                "gap_off_ms": gap_off,
                "gap_on_ms": gap_on,
                "gap_reduction": 1 - gap_on / gap_off if gap_off > 0 else None,
                "loaded_over_unloaded_on": on / base if base else None,
                "light_p95_burned_ms": _light_p95(rows[BURNED]),
                "loaded_over_burned_on": on / _light_p95(rows[BURNED]),
            }
            report["scenarios"][scenario] = rows
    return report


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def render(report: dict[str, Any], command: str) -> str:
    pin = report.get("pin")
    lines = [
        (
            f"**Pinned**: servers (and redis-server, nginx) on CPU {pin['servers']}, every client "
            f"process on CPU {pin['clients']} (other processes on the host unpinned)."
            if pin
            else "Not pinned: servers and clients share every CPU of the host."
        )
        + (
            f" Scheduling: autogroups on; the bench's session is {report['autogroup']}."
            if report.get("autogroup")
            else ""
        )
        + (
            " **Load generators at SCHED_IDLE** (hostile client, held connections, burner): a "
            "model of clients on other machines."
            if report.get("load_sched") == "idle"
            else ""
        ),
        "",
        "| scenario | phase | light p95 (ms, worst of 3) | hostile PUT p95 (ms) "
        "| hostile PUTs ok / 429 | admission p95 (server, wall) | hostile seats held, sampled "
        "(share of its level) | light refused | conns held |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario, rows in report["scenarios"].items():
        for label in PHASES:
            r = rows[label]
            h = r.get("hostile", {})
            codes = h.get("codes", {})
            adm = r.get("admission_p95_s")
            lines.append(
                f"| {scenario} | {label} | {_light_p95(r):.1f} | {_fmt(h.get('put_p95'))} | "
                f"{codes.get('put 200', '-')} / {codes.get('put 429', '-')} | "
                f"{'<= ' + _fmt(adm * 1000, 2) + ' ms' if adm is not None else '-'} | "
                f"{_fmt(r.get('hostile_seat_share'), 2) if h else '-'} | "
                f"{int(r.get('light_rejected', 0))} | {r.get('hold', {}).get('held', '-')} |"
            )
    lines += [
        "",
        "Minimum shares: per tenant, the time it had requests waiting for a seat (summed over "
        "the servers) and the share of its level's seats it held meanwhile, against its "
        "`min_share` (never waited: nothing to guarantee):",
        "",
        "| scenario | phase | tenant | waited (s) | share while waiting | min share | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario, rows in report["scenarios"].items():
        for label in PHASES:
            idle = []
            for tenant, got in rows[label].get("shares_while_queued", {}).items():
                share = got["share"]
                if share is None:
                    idle.append(tenant)
                    continue
                lines.append(
                    f"| {scenario} | {label} | {tenant} | {_fmt(got['queued_s'], 3)} | "
                    f"{_fmt(share, 2)} | {_fmt(got['min_share'], 2)} | "
                    f"{'yes' if share >= got['min_share'] else 'NO'} |"
                )
            if idle:
                lines.append(
                    f"| {scenario} | {label} | {', '.join(idle)} | 0 | - | - | never waited |"
                )
    lines += [
        "",
        "Where a light request's time goes, and who used the CPU (cores, averaged over the "
        "phase; host = every process on the machine, other sessions included):",
        "",
        "| scenario | phase | light p95 at the client (ms) | light p95 in the server, gate to "
        "answer (ms, bucket bound) | event loop lag p95 (ms, bucket bound) | light client's "
        "timers late p95 (ms) | CPU: servers | redis-server / nginx | hostile client "
        "| light client | other bench processes | host |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario, rows in report["scenarios"].items():
        for label in PHASES:
            r = rows[label]
            cpu = r["cpu_cores"]
            others = sum(v for k, v in cpu.items() if k in ("holder", "burner"))
            server_p95, lag_p95 = r.get("light_server_p95_s"), r.get("loop_lag_p95_s")
            lines.append(
                f"| {scenario} | {label} | {_light_p95(r):.1f} | "
                f"{'<= ' + _fmt(server_p95 * 1000) if server_p95 is not None else '-'} | "
                f"{'<= ' + _fmt(lag_p95 * 1000) if lag_p95 is not None else '-'} | "
                f"{_fmt(r.get('light_client_late_p95_ms'))} | {_fmt(cpu['servers'], 2)} | "
                + (
                    f"{_fmt(cpu['redis-server'], 2)} / {_fmt(cpu['nginx'], 2)} | "
                    if "redis-server" in cpu
                    else "- | "
                )
                + f"{_fmt(cpu.get('hostile client'), 2)} | "
                f"{_fmt(cpu['light client'], 2)} | {_fmt(others or None, 2)} | "
                f"{_fmt(cpu['host'], 2)} |"
            )
    lines += [
        "",
        "How long the servers' event loops and the light client waited for a CPU while "
        "runnable (ms per second of the phase, from /proc schedstat; the host's other "
        "processes, other sessions included, decide most of it):",
        "",
        "| scenario | phase | light p95 at the client (ms) | servers' loops waiting for a CPU "
        "(ms/s, summed) | light client waiting for a CPU (ms/s) | redis-server waiting (ms/s) "
        "| hostile client waiting (ms/s) | servers' loops: sleeps / preemptions per s "
        "| light client: sleeps / preemptions per s | host (cores) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario, rows in report["scenarios"].items():
        for label in PHASES:
            r = rows[label]
            wait = r.get("runq_wait", {})
            lines.append(
                f"| {scenario} | {label} | {_light_p95(r):.1f} | "
                f"{_fmt(_ms(wait.get('servers')), 0)} | {_fmt(_ms(wait.get('light client')), 0)} | "
                f"{_fmt(_ms(wait.get('redis-server')), 0)} | "
                f"{_fmt(_ms(wait.get('hostile client')), 0)} | "
                f"{' / '.join(map(str, r.get('switches_per_s', {}).get('servers', ['-'])))} | "
                f"{' / '.join(map(str, r.get('switches_per_s', {}).get('light client', ['-'])))} | "
                f"{_fmt(r['cpu_cores']['host'], 2)} |"
            )
    lines.append("")
    for scenario, rows in report["scenarios"].items():
        s = rows["summary"]
        reduction = s["gap_reduction"]
        ratio = s["loaded_over_unloaded_on"]
        lines.append(
            f"- {scenario}: gap (light p95 loaded - unloaded) {s['gap_off_ms']:.1f} ms with "
            f"fairness off, {s['gap_on_ms']:.1f} ms on: reduced by "
            f"{_fmt(reduction * 100 if reduction is not None else None, 0)}% (target >= 40%); "
            f"light p95 loaded/unloaded with fairness on {_fmt(ratio, 2)}x (goal <= 1.5x), "
            f"{_fmt(s['loaded_over_burned_on'], 2)}x against the unloaded run that burns the "
            "hostile client's CPU; "
            f"admission decision alone (limits + seat, {rows['decision']['n']} in a row, "
            f"{'Redis' if scenario == 'replicas' else 'in memory'}): p50 "
            f"{rows['decision']['p50_ms']:.3f} ms, p95 {rows['decision']['p95_ms']:.3f} ms "
            f"(goal <= 2 ms), p99 {rows['decision']['p99_ms']:.3f} ms"
            + (
                f"; with a cluster-wide max_concurrent of 1000 (spares): p95 "
                f"{rows['decision']['quota_p95_ms']:.3f} ms, of 4 to itself: "
                f"p95 {rows['decision']['quota_exact_p95_ms']:.3f} ms"
                + (
                    f", of 4 with 3 in flight on another replica: p95 "
                    f"{rows['decision']['quota_near_p95_ms']:.3f} ms "
                    f"({rows['decision']['quota_near_round_trips']} Redis round trips "
                    f"in {rows['decision']['n']})"
                    if "quota_near_p95_ms" in rows["decision"]
                    else ""
                )
                if "quota_p95_ms" in rows["decision"]
                else ""
            )
            + (
                f"; a bare Redis PING from the same process: p50 "
                f"{rows['decision']['ping_p50_ms']:.3f} ms, p95 "
                f"{rows['decision']['ping_p95_ms']:.3f} ms."
                if "ping_p95_ms" in rows["decision"]
                else "."
            )
            + (
                " Redis commands per light read (unloaded phase, the replicas' periodic ones "
                f"included): {rows['unloaded']['redis_cmds_per_light_read']:.2f}."
                if "redis_cmds_per_light_read" in rows["unloaded"]
                else ""
            )
        )
    lines.append("")
    lines.append(f"Command: `{command}` (RLIMIT_NOFILE soft limit {report['nofile']}).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--role"]:
        return _role_main(argv[1], argv[2])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 s phases, 60 uploads, 1000 conns")
    parser.add_argument("--scenarios", default="embedded,replicas")
    parser.add_argument("--phase-s", type=float, default=8.0)
    parser.add_argument("--hostile", type=int, default=200)
    parser.add_argument("--hold", type=int, default=5000)
    parser.add_argument("--light-rate", type=float, default=20.0)
    parser.add_argument("--json", action="store_true", help="print the raw report")
    parser.add_argument(
        "--bulk-upload-rate",
        metavar="SIZE",
        help="with fairness on, the servers' bulk_upload_bytes_per_s (e.g. 32MiB)",
    )
    parser.add_argument(
        "--decision-only",
        type=int,
        metavar="N",
        help="only time N admission decisions in a row (in memory, then Redis with and "
        "without a cluster-wide max_concurrent)",
    )
    parser.add_argument(
        "--client-nice",
        type=int,
        default=0,
        metavar="N",
        help="run the hostile client, the held connections and the burner at nice N (the "
        "servers and the light client stay at 0): the load generators yield the host's CPU "
        "as if they ran on other machines, while still sending as much as they can",
    )
    parser.add_argument(
        "--server-nice",
        type=int,
        default=0,
        metavar="N",
        help="run the servers (and redis-server, nginx) and the light client at nice N: on a "
        "host shared with other jobs, a negative N keeps the measured path ahead of them "
        "(the load generators stay at --client-nice)",
    )
    parser.add_argument(
        "--session-nice",
        type=int,
        metavar="N",
        help="set the bench session's autogroup nice to N (kernels with sched_autogroup: "
        "the only nice that orders the bench against other sessions' jobs)",
    )
    parser.add_argument(
        "--pin",
        metavar="SERVER_CPUS:CLIENT_CPUS",
        help="pin the servers (and redis-server, nginx) and the client processes to disjoint "
        "CPUs, e.g. 0:1 (comma-separated lists)",
    )
    parser.add_argument(
        "--load-sched",
        choices=("normal", "idle"),
        default="normal",
        help="idle: run the load generators (hostile client, held connections, burner) at "
        "SCHED_IDLE, so they only get a CPU that the servers, Redis, nginx and the light "
        "client leave free: a model of a CI farm whose clients run on machines of their own "
        "(they still send as much as they can); normal (the default): they compete as equals",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a server setting for the phases with fairness on (e.g. bulk_yield_max_s=0); "
        "repeatable",
    )
    parser.add_argument(
        "--cost-only",
        type=int,
        metavar="N",
        help="only measure the server's CPU per 1 MiB upload and per 4 KiB read (N uploads, "
        "10 N reads, one at a time; embedded, 3 servers in a row)",
    )
    args = parser.parse_args(argv)
    if args.cost_only:
        print(json.dumps(_cost_only(args.cost_only, 3), indent=1))
        return 0
    if args.decision_only:
        print(json.dumps(_decision_only(args.decision_only), indent=1))
        return 0
    if args.quick:
        args.phase_s, args.hostile, args.hold = 3.0, 60, 1000
    before = _autogroup(None)
    try:
        report = run(args)
    finally:
        if args.session_nice is not None and before is not None:  # the session outlives us
            _autogroup(int(before.rsplit(" ", 1)[1]))
    if args.json:
        print(json.dumps(report, indent=1))
    print(render(report, "python -m bench.bench_fairness " + " ".join(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
