"""Large upload bodies of bulk tenants received by receiver threads, off the event loop: what a
client sees (stored intact, the connection closed after the answer, a re-upload answered, a
corrupt body refused) and what an aborted or stalled upload leaves behind (nothing stored,
nothing else damaged). In-process app on loopback over a real LMDB store."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from coord_helpers import Clock, Env, served, sha

from maestro.coordinator.app import RUNNER_KWARGS, STATE, create_app
from maestro.coordinator.settings import Settings
from maestro.coordinator.store import Store

MIB = 1 << 20


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    settings = Settings(
        data_dir=tmp_path / "coord",
        max_blob_bytes=4 * MIB,
        bulk_receive_threads=2,
        bulk_receive_nice=5,
        body_read_timeout_s=1.0,
        tenants={"farm": {"priority": "ci"}, "dev": {"priority": "interactive"}},
    )
    async with served(settings, ["farm", "dev"]) as env:
        yield env


def _taken_over(env: Env) -> int:
    receiver = env.client.app[STATE].bulk_receiver if env.client.app is not None else None
    assert receiver is not None
    return receiver.taken_over


async def test_a_ci_upload_is_received_off_the_loop_stored_intact_and_closes(env: Env) -> None:
    blob = os.urandom(3 * MIB)
    headers = await env.auth("farm")
    resp = await env.client.put(f"/farm/cas/{sha(blob)}", data=blob, headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers.get("Connection", "").lower() == "close"
    assert _taken_over(env) == 1
    got = await env.client.get(f"/farm/cas/{sha(blob)}", headers=headers)
    assert got.status == 200 and await got.read() == blob
    # the same blob again: received and dropped by a thread, answered 200
    again = await env.client.put(f"/farm/cas/{sha(blob)}", data=blob, headers=headers)
    assert again.status == 200
    assert _taken_over(env) == 2


async def test_interactive_and_small_uploads_stay_on_the_loop_and_keep_the_connection(
    env: Env,
) -> None:
    big, small = os.urandom(MIB), os.urandom(64 << 10)
    for tenant, blob in (("dev", big), ("farm", small)):
        headers = await env.auth(tenant)
        resp = await env.client.put(f"/{tenant}/cas/{sha(blob)}", data=blob, headers=headers)
        assert resp.status == 200
        assert resp.headers.get("Connection", "").lower() != "close"
    assert _taken_over(env) == 0


async def test_a_body_that_does_not_hash_to_its_digest_is_refused_and_not_stored(
    env: Env,
) -> None:
    blob = os.urandom(2 * MIB)
    wrong = sha(b"something else")
    headers = await env.auth("farm")
    resp = await env.client.put(f"/farm/cas/{wrong}", data=blob, headers=headers)
    assert resp.status == 400
    assert (await resp.json())["error"] == "digest_mismatch"
    assert _taken_over(env) == 1
    miss = await env.client.get(f"/farm/cas/{wrong}", headers=headers)
    assert miss.status == 404


def _raw_put(port: int, path: str, token: str, length: int, sent: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()
    sock.sendall(head + sent)
    return sock


async def _metric(env: Env, name: str) -> str:
    text = await (await env.client.get("/metrics")).text()
    return "\n".join(line for line in text.splitlines() if line.startswith(name))


async def test_an_aborted_upload_stores_nothing_and_damages_nothing(env: Env) -> None:
    headers = await env.auth("farm")
    kept = os.urandom(MIB)
    assert (
        await env.client.put(f"/farm/cas/{sha(kept)}", data=kept, headers=headers)
    ).status == 200
    blob = os.urandom(2 * MIB)
    token = headers["Authorization"].removeprefix("Bearer ")
    port = env.client.port
    assert port is not None
    sock = await asyncio.to_thread(
        _raw_put, port, f"/farm/cas/{sha(blob)}", token, len(blob), blob[: MIB + 12345]
    )
    deadline = time.monotonic() + 5
    while _taken_over(env) < 1 and time.monotonic() < deadline:  # the thread is reading it
        await asyncio.sleep(0.05)
    sock.close()
    deadline = time.monotonic() + 5
    while "499" not in await _metric(env, "maestro_coordinator_requests_total"):
        assert time.monotonic() < deadline, "the abort was not recorded"
        await asyncio.sleep(0.05)
    assert 'status="500"' not in await _metric(env, "maestro_coordinator_requests_total")
    miss = await env.client.get(f"/farm/cas/{sha(blob)}", headers=headers)
    assert miss.status == 404
    hit = await env.client.get(f"/farm/cas/{sha(kept)}", headers=headers)
    assert hit.status == 200 and await hit.read() == kept
    # and the next complete upload of that blob is stored whole
    again = await env.client.put(f"/farm/cas/{sha(blob)}", data=blob, headers=headers)
    assert again.status == 200
    assert await (await env.client.get(f"/farm/cas/{sha(blob)}", headers=headers)).read() == blob


async def test_a_stalled_upload_gets_408_after_the_read_timeout_and_stores_nothing(
    env: Env,
) -> None:
    headers = await env.auth("farm")
    blob = os.urandom(MIB)
    token = headers["Authorization"].removeprefix("Bearer ")
    port = env.client.port
    assert port is not None
    sock = await asyncio.to_thread(
        _raw_put, port, f"/farm/cas/{sha(blob)}", token, len(blob), blob[: 300 << 10]
    )
    try:
        sock.settimeout(5)
        started = time.monotonic()
        answer = await asyncio.to_thread(sock.recv, 4096)
        waited = time.monotonic() - started
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"upload_too_slow" in answer
    assert 0.8 <= waited < 4, waited  # body_read_timeout_s = 1
    miss = await env.client.get(f"/farm/cas/{sha(blob)}", headers=headers)
    assert miss.status == 404


async def test_an_interactive_read_is_answered_while_bulk_bodies_trickle_in(env: Env) -> None:
    """Receiver threads hold the stalled bodies; the loop answers the read at once."""
    dev = await env.auth("dev")
    small = os.urandom(4096)
    assert (await env.client.put(f"/dev/cas/{sha(small)}", data=small, headers=dev)).status == 200
    farm = await env.auth("farm")
    token = farm["Authorization"].removeprefix("Bearer ")
    port = env.client.port
    assert port is not None
    blobs = [os.urandom(MIB) for _ in range(2)]
    socks = [
        await asyncio.to_thread(
            _raw_put, port, f"/farm/cas/{sha(b)}", token, len(b), b[: 512 << 10]
        )
        for b in blobs
    ]
    try:
        deadline = time.monotonic() + 5
        while _taken_over(env) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        started = time.monotonic()
        got = await env.client.get(f"/dev/cas/{sha(small)}", headers=dev)
        assert got.status == 200 and await got.read() == small
        assert time.monotonic() - started < 0.5
        for sock, blob in zip(socks, blobs, strict=True):
            await asyncio.to_thread(sock.sendall, blob[512 << 10 :])
            answer = await asyncio.to_thread(sock.recv, 4096)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            assert b"Connection: close" in answer
    finally:
        for sock in socks:
            sock.close()
    for blob in blobs:
        got = await env.client.get(f"/farm/cas/{sha(blob)}", headers=farm)
        assert await got.read() == blob


async def test_a_taken_over_upload_is_paced_with_the_others_and_not_cut_as_too_slow(
    tmp_path: Path,
) -> None:
    settings = Settings(
        data_dir=tmp_path / "coord",
        max_blob_bytes=4 * MIB,
        bulk_receive_threads=2,
        bulk_upload_bytes_per_s=MIB,
        # paced time must not count: 1.5 MiB read in ~1 s would be far below this otherwise
        min_upload_bytes_per_s=4 * MIB,
        upload_grace_s=0.2,
        tenants={"farm": {"priority": "ci"}},
    )
    store = Store(settings.data_dir / "store")
    store.add_tenant("farm")
    app = create_app(settings, store=store, clock=Clock())
    server = TestServer(app)
    await server.start_server(**RUNNER_KWARGS)
    client = TestClient(server)
    await client.start_server()
    try:
        env = Env(client, store, Clock())
        blob = os.urandom(3 * MIB // 2)
        headers = await env.auth("farm")
        started = time.monotonic()
        resp = await client.put(f"/farm/cas/{sha(blob)}", data=blob, headers=headers)
        took = time.monotonic() - started
        assert resp.status == 200, await resp.text()
        assert _taken_over(env) == 1
        # 1.5 MiB at 1 MiB/s after a 256 KiB burst, less what aiohttp read before: ~1 s
        assert took >= 0.7, took
        got = await client.get(f"/farm/cas/{sha(blob)}", headers=headers)
        assert await got.read() == blob
    finally:
        await client.close()
        store.close()
