"""End to end over loopback: a real coordinator, real daemons (one per workspace,
each with its own cache dir), `maestro test` and `maestro status` as a user runs them."""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest
from sync_helpers import Team, cached_count, plan_line

pytestmark = pytest.mark.slow


def test_ci_writes_developers_read_tenants_isolated(team: Team) -> None:
    ci = team.workspace("ci", "read-write")
    dev = team.workspace("dev", "read")
    other = team.workspace("oth", "read-write", tenant="other")
    for ws in (ci, dev, other):
        ws.setup()

    first = ci.test()
    assert first.returncode == 0, first.stdout + first.stderr
    assert cached_count(first.stdout) == 0
    remote = ci.wait_remote(lambda r: r["queue_length"] == 0 and r["uploaded"] == 2)
    assert remote["role"] == "read-write" and remote["uploads"] == "on"
    assert remote["last_error"] is None

    # Another workspace of the tenant, empty cache, read key: every file is a remote hit.
    second = dev.test()
    assert second.returncode == 0, second.stdout + second.stderr
    assert plan_line(second.stdout).startswith("2 test files: 2 cached (3 tests), 0 to run")
    assert second.stdout.splitlines()[-1].startswith("3 passed — ran 0 files, 2 cached")
    remote = dev.remote()
    assert remote["remote_hits"] == 2 and remote["role"] == "read"
    assert remote["uploads"].startswith("off") and remote["uploaded"] == 0
    verify = dev.maestro("cache", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # The reader runs something new: stored locally, never uploaded.
    dev.write("tests/test_dev.py", "def test_dev():\n    assert True\n")
    third = dev.test()
    assert third.returncode == 0 and "1 to run" in plan_line(third.stdout)
    time.sleep(1.0)
    remote = dev.remote()
    assert remote["queue_length"] == 0 and remote["uploaded"] == 0
    ci.write("tests/test_dev.py", "def test_dev():\n    assert True\n")
    fourth = ci.test()
    assert "2 cached" in plan_line(fourth.stdout) and "1 to run" in plan_line(fourth.stdout)

    # Another tenant with the very same files and a write key sees nothing of "team".
    isolated = other.test()
    assert isolated.returncode == 0
    assert cached_count(isolated.stdout) == 0
    remote = other.remote()
    assert remote["remote_hits"] == 0 and remote["remote_misses"] >= 2


def test_coordinator_down_then_back(team: Team) -> None:
    ci = team.workspace("ci", "read-write")
    dev = team.workspace("dev", "read")
    for ws in (ci, dev):
        ws.setup()
    assert ci.test().returncode == 0
    ci.wait_remote(lambda r: r["queue_length"] == 0 and r["uploaded"] == 2)

    team.coord.stop()
    ci.write("pkg/a.py", "def add(a, b):\n    return b + a\n")
    started = time.monotonic()
    down = ci.test()
    elapsed = time.monotonic() - started
    assert down.returncode == 0, down.stdout + down.stderr
    assert "1 cached" in plan_line(down.stdout) and "1 to run" in plan_line(down.stdout)
    remote = ci.wait_remote(lambda r: r["queue_length"] == 1 and r["last_error"] is not None)
    assert "unreachable" in remote["last_error"] or "timed out" in remote["last_error"]
    # The IDE's question never waits on the network, whatever the coordinator does.
    t0 = time.monotonic()
    assert ci.maestro("stale").returncode == 0
    stale_s = time.monotonic() - t0

    team.coord.start()  # same port, same data
    ci.wait_remote(lambda r: r["queue_length"] == 0 and r["uploaded"] == 3, timeout=30)
    dev.write("pkg/a.py", "def add(a, b):\n    return b + a\n")
    second = dev.test()
    assert second.returncode == 0
    assert plan_line(second.stdout).startswith("2 test files: 2 cached")
    print(f"run with coordinator down: {elapsed:.2f}s; stale: {stale_s:.2f}s")


def test_slow_coordinator_never_blocks_a_run(team: Team) -> None:
    """A coordinator that accepts connections and never answers: reads time out (short), the
    circuit opens, the run completes and its results are queued, not lost."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        ws = team.workspace("slow", "read-write")
        ws.setup(read_timeout_s=0.5)
        ws.set_url(f"http://127.0.0.1:{listener.getsockname()[1]}")
        files = {f"tests/test_s{i}.py": f"def test_s{i}():\n    assert True\n" for i in range(8)}
        for rel, text in files.items():
            ws.write(rel, text)
        result = ws.test()
        assert result.returncode == 0, result.stdout + result.stderr
        remote = ws.remote()
        assert remote["circuit"] in ("open", "half-open")
        assert remote["remote_errors"] <= 4  # the breaker stopped asking after a few timeouts
        assert remote["queue_length"] == 10
    finally:
        stop.set()
        thread.join(5)
        for s in held:
            s.close()
        listener.close()


def test_killed_mid_upload_never_serves_partial_entries(team: Team) -> None:
    ci = team.workspace("ci", "read-write")
    dev = team.workspace("dev", "read")
    files = {
        f"tests/test_k{i}.py": (
            f"def test_k{i}():\n    print('x' * 300_000)\n    assert {i} % 7 != 3\n"
        )
        for i in range(40)
    }
    for ws in (ci, dev):
        ws.setup(files=files)
    first = ci.test()
    assert first.returncode == 1  # test_k3, k10, ... fail: their stdout blobs are large
    remote = ci.remote()
    caught_mid_upload = remote["queue_length"] > 0
    team.coord.stop(signal.SIGKILL)
    team.coord.start()
    ci.wait_remote(lambda r: r["queue_length"] == 0, timeout=60)

    second = dev.test()
    assert second.returncode == 1
    # Everything that was uploaded is served complete; nothing partial ever lands locally.
    verify = dev.maestro("cache", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert plan_line(second.stdout).startswith("40 test files: 34 cached")  # failures re-run
    remote = dev.remote()
    assert remote["corrupt_refused"] == 0
    print(f"killed with {remote['queue_length']} queued; mid-upload: {caught_mid_upload}")
