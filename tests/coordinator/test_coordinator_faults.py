"""Faults with real processes: a coordinator SIGKILLed in the middle of an upload (while the body
streams in slowly, and at assorted moments after it arrived) and restarted: the entry is then
absent or complete, never partial or corrupt. Both storage layouts: embedded LMDB, and replicas
over Redis + an nginx WebDAV upstream."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import zstandard
from coord_helpers import Env
from coord_procs import (
    MAESTRO,
    Replica,
    add_tenant,
    bearer,
    http,
    needs_nginx,
    needs_redis,
    run_replicas,
    start_coordinator,
    stop,
)

pytestmark = pytest.mark.slow


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cli(data: Path, *args: str) -> str:
    result = subprocess.run(
        [MAESTRO, "coordinator", *args],
        cwd=data,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MAESTRO_COORDINATOR_DATA_DIR": str(data)},
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def _start_put(port: int, path: str, key: str, length: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        (
            f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
        ).encode()
    )
    return sock


def _slow_partial_put(replica: Replica, path: str, key: str, blob: bytes) -> None:
    """Stream part of the body in small slow chunks, then SIGKILL the server mid-upload."""
    sock = _start_put(replica.port, path, key, len(blob))
    try:
        sent = 0
        for _ in range(20):
            sock.sendall(blob[sent : sent + 64 * 1024])
            sent += 64 * 1024
            time.sleep(0.01)
        assert sent < len(blob)
        replica.proc.send_signal(signal.SIGKILL)
        replica.proc.wait(10)
    finally:
        sock.close()


def _full_put_then_kill(
    replica: Replica, path: str, key: str, blob: bytes, delay: float | None
) -> None:
    """Send the whole body, then SIGKILL after `delay` s (during hashing, the write, or after),
    or once the 200 arrived (None: an acknowledged upload must survive the kill)."""
    sock = _start_put(replica.port, path, key, len(blob))
    try:
        sock.sendall(blob)
        if delay is None:
            sock.settimeout(120)  # hashing and fsync of 8 MiB on a loaded 2-vCPU box
            head = b""
            while len(head) < 12:
                chunk = sock.recv(64)
                assert chunk, "connection closed before the response"
                head += chunk
            assert head.startswith(b"HTTP/1.1 200"), head
        else:
            time.sleep(delay)
        replica.proc.send_signal(signal.SIGKILL)
        replica.proc.wait(10)
    finally:
        sock.close()


def _absent_or_complete(base: str, path: str, key: str, blob: bytes) -> str:
    status, body, _ = http("GET", base + path, headers=bearer(key))
    if status == 404:
        assert http("HEAD", base + path, headers=bearer(key))[0] == 404
        return "absent"
    assert status == 200, body
    assert len(body) == len(blob) and sha(body) == sha(blob)  # never partial or corrupt
    return "complete"


KILL_DELAYS: tuple[float | None, ...] = (0.0, 0.02, 0.1, 0.3, None)


def test_embedded_store_killed_mid_upload(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _cli(data, "tenant", "add", "team")
    key = json.loads(_cli(data, "key", "create", "team", "--role", "read-write", "--json"))[
        "api_key"
    ]
    replica = start_coordinator(tmp_path, "data", {})
    try:
        big = os.urandom(8 << 20)
        path = f"/team/cas/{sha(big)}"
        _slow_partial_put(replica, path, key, big)
        replica = start_coordinator(tmp_path, "data", {})
        assert _absent_or_complete(replica.base, path, key, big) == "absent"

        outcomes = []
        for delay in KILL_DELAYS:
            blob = os.urandom(8 << 20)
            blob_path = f"/team/cas/{sha(blob)}"
            _full_put_then_kill(replica, blob_path, key, blob, delay)
            replica = start_coordinator(tmp_path, "data", {})
            outcomes.append(_absent_or_complete(replica.base, blob_path, key, blob))
        # still writable and consistent after all that
        assert http("PUT", replica.base + path, data=big, headers=bearer(key))[0] == 200
        assert http("GET", replica.base + path, headers=bearer(key))[1] == big
    finally:
        stop(replica.proc)
    assert outcomes[-1] == "complete"  # acknowledged = durable
    # the snapshot drill re-hashes every stored blob: nothing torn anywhere in the store
    _cli(data, "snapshot", str(tmp_path / "snap"))
    print("kill outcomes (embedded):", outcomes)


@needs_redis
@needs_nginx
def test_replica_killed_mid_upload_to_upstream(tmp_path: Path) -> None:
    with run_replicas(tmp_path, ("a", "b")) as replicas:
        _, key = asyncio.run(add_tenant(replicas.redis.url, "team"))
        a, b, nginx = replicas.a, replicas.b, replicas.nginx
        try:
            big = os.urandom(8 << 20)
            path = f"/team/cas/{sha(big)}"
            _slow_partial_put(a, path, key, big)
            assert _absent_or_complete(b.base, path, key, big) == "absent"
            assert not [p for p in nginx.root.rglob("*") if p.is_file()]  # nothing upstream
            outcomes = []
            for delay in KILL_DELAYS:
                a = start_coordinator(tmp_path, "a", replicas.settings)
                blob = os.urandom(8 << 20)
                blob_path = f"/team/cas/{sha(blob)}"
                _full_put_then_kill(a, blob_path, key, blob, delay)
                outcomes.append(_absent_or_complete(b.base, blob_path, key, blob))
            # every file the upstream holds is whole (nginx renames a complete temp file)
            for file in nginx.root.rglob("*"):
                if file.is_file():
                    assert file.stat().st_size == 8 << 20
            assert outcomes[-1] == "complete"
            print("kill outcomes (upstream):", outcomes)
        finally:
            stop(a.proc)  # the last restart (run_replicas stops the first a and b)


async def test_large_embedded_blob_corrupt_is_never_served(env: Env) -> None:
    """Large blobs take the zero-copy path (verified in the pool, sent from the map): a flipped
    byte is still detected, quarantined, counted and answered 404; zstd and re-upload work."""
    h = await env.auth("alpha")
    data = os.urandom(700_000)
    digest = sha(data)
    assert (await env.client.put(f"/alpha/cas/{digest}", data=data, headers=h)).status == 200
    resp = await env.client.get(f"/alpha/cas/{digest}", headers=h)
    assert resp.status == 200 and await resp.read() == data
    assert resp.headers["Content-Length"] == str(len(data))
    zh = {**h, "Accept-Encoding": "zstd"}
    resp = await env.client.get(f"/alpha/cas/{digest}", headers=zh, auto_decompress=False)
    assert resp.headers["Content-Encoding"] == "zstd"
    assert zstandard.ZstdDecompressor().decompress(await resp.read()) == data
    tenant = env.store.get_tenant("alpha")
    assert tenant is not None
    with env.store.env.begin(write=True, db=env.store._db["cas"]) as txn:
        txn.put(tenant.prefix + bytes.fromhex(digest), data[:-1] + bytes([data[-1] ^ 1]))
    assert (await env.client.get(f"/alpha/cas/{digest}", headers=h)).status == 404
    assert env.store.quarantined() == 1
    metrics = await (await env.client.get("/metrics")).text()
    assert 'maestro_coordinator_corrupt_entries_total{kind="cas",tenant="alpha"} 1.0' in metrics
    assert (await env.client.put(f"/alpha/cas/{digest}", data=data, headers=h)).status == 200
    assert await (await env.client.get(f"/alpha/cas/{digest}", headers=h)).read() == data
