"""Connection hardening on a real `maestro coordinator serve` process on loopback: slowloris and
trickling uploads are closed, an aborted upload is a client abort (not a 5xx, no unhandled-error
log), and one client cannot hold more than its cap of connections."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from coord_procs import Replica, bearer, http, start_coordinator, stop, token

from maestro.coordinator.auth import create_key
from maestro.coordinator.models import Role
from maestro.coordinator.store import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Replica, str]]:
    tmp: Path = tmp_path_factory.mktemp("hardening")
    with Store(tmp / "coord" / "store") as store:
        store.add_tenant("alpha")
        key = create_key(store, "alpha", Role.READ_WRITE).plaintext
    replica = start_coordinator(
        tmp,
        "coord",
        {
            "header_timeout_s": "1.5",
            "body_read_timeout_s": "2",
            "min_upload_bytes_per_s": "2000",
            "upload_grace_s": "1",
            "max_connections_per_client": "20",
        },
    )
    try:
        yield replica, token(replica.base, key)
    finally:
        stop(replica.proc)


def _closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> float | None:
    """Seconds until the server closed `sock` (sending `trickle` one byte per 0.3 s), or None."""
    start = time.monotonic()
    sock.settimeout(0.3)
    sent = 0
    while time.monotonic() - start < seconds:
        try:
            if trickle and sent < len(trickle):
                sock.send(trickle[sent : sent + 1])
                sent += 1
            data = sock.recv(65536)
            if not data:
                return time.monotonic() - start
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
    return None


def test_slowloris_headers_are_closed_after_the_timeout(served: tuple[Replica, str]) -> None:
    replica, _ = served
    socks = [socket.create_connection(("127.0.0.1", replica.port)) for _ in range(10)]
    try:
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
        closed = _closed_within(socks[0], 8, trickle=head)
        assert closed is not None and closed < 4, closed
        for s in socks[1:]:  # connected, never sent a byte
            assert _closed_within(s, 3) is not None
    finally:
        for s in socks:
            s.close()
    assert http("GET", f"{replica.base}/healthz")[0] == 200


def test_trickling_upload_gets_408_and_is_closed(served: tuple[Replica, str]) -> None:
    replica, tok = served
    body = b"z" * 5000
    sock = socket.create_connection(("127.0.0.1", replica.port))
    try:
        sock.sendall(
            (
                f"PUT /alpha/cas/{hashlib.sha256(body).hexdigest()} HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {tok}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
        )
        start = time.monotonic()
        answer = b""
        sock.settimeout(0.1)
        sent = 0
        while time.monotonic() - start < 10:
            if sent < len(body):
                sock.send(body[sent : sent + 10])  # ~100 B/s
                sent += 10
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"upload_too_slow" in answer
        assert time.monotonic() - start < 5
    finally:
        sock.close()


def test_aborted_upload_is_a_client_abort_not_a_5xx(served: tuple[Replica, str]) -> None:
    replica, tok = served
    body = b"q" * 100_000
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", replica.port))
        sock.sendall(
            (
                f"PUT /alpha/cas/{hashlib.sha256(body).hexdigest()} HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {tok}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body[:30_000]
        )
        time.sleep(0.2)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST mid-body
    time.sleep(0.5)
    metrics = http("GET", f"{replica.base}/metrics")[1].decode()
    aborts = [
        ln
        for ln in metrics.splitlines()
        if ln.startswith("maestro_coordinator_client_aborts_total")
    ]
    assert aborts and float(aborts[0].split()[-1]) >= 3
    fives = [
        ln
        for ln in metrics.splitlines()
        if ln.startswith("maestro_coordinator_requests_total") and 'status="5' in ln
    ]
    assert fives == []
    assert 'status="499"' in metrics
    log = replica.log.read_text(errors="replace")
    assert "unhandled error" not in log and "Traceback" not in log
    # the server still serves the tenant
    status, _, _ = http(
        "GET", f"{replica.base}/alpha/cas/{hashlib.sha256(body).hexdigest()}", headers=bearer(tok)
    )
    assert status == 404


def test_connections_per_client_are_capped(served: tuple[Replica, str]) -> None:
    replica, _ = served
    socks = []
    try:
        for _ in range(20):
            socks.append(socket.create_connection(("127.0.0.1", replica.port)))
            socks[-1].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        extra = socket.create_connection(("127.0.0.1", replica.port))
        assert _closed_within(extra, 2) is not None  # closed at once
        extra.close()
        # another loopback address is another client
        other = socket.create_connection(
            ("127.0.0.1", replica.port), source_address=("127.0.0.2", 0)
        )
        other.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        other.settimeout(3)
        assert other.recv(100).startswith(b"HTTP/1.1 200")
        other.close()
    finally:
        for s in socks:
            s.close()
    time.sleep(0.3)
    assert http("GET", f"{replica.base}/healthz")[0] == 200
    metrics = http("GET", f"{replica.base}/metrics")[1].decode()
    assert "maestro_coordinator_connections_refused_total 1.0" in metrics
