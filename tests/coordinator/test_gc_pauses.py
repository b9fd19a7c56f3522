"""A coordinator holding many connections must not stop for full garbage collections while it
serves them: a full collection traverses every object of every held connection, and the event
loop (every tenant's request) waits it out. With the interpreter's defaults, a request's short-
lived objects were still alive at the frequent young collections, were promoted, and made the
old generations grow until a full collection ran, again and again under load."""

from __future__ import annotations

import json
import os
import re
import resource
import socket
import subprocess
from pathlib import Path

import pytest
from coord_procs import MAESTRO, stop

CONNECTIONS = 1500
ROUNDS = 2


def _healthz(port: int) -> bytes:
    return f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


def _answered(sock: socket.socket) -> None:
    head = b""
    while b"\r\n\r\n" not in head:
        got = sock.recv(4096)
        assert got, "connection closed"
        head += got
    header, _, body = head.partition(b"\r\n\r\n")
    assert header.startswith(b"HTTP/1.1 200"), header[:80]
    length = int(re.search(rb"(?i)content-length: *(\d+)", header).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += sock.recv(4096)


def _full_collections(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        text = b""
        while chunk := sock.recv(65536):
            text += chunk
    found = re.search(rb'maestro_coordinator_gc_pause_seconds_count\{generation="2"\} (\S+)', text)
    assert found, "the served process times its garbage collections"
    return int(float(found.group(1)))


def _serve_held_connections(tmp_path: Path, **env: str) -> int:
    """Full collections while `CONNECTIONS` connections are opened, each answered, held, and
    asked again `ROUNDS` times."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < CONNECTIONS + 200:
        pytest.skip(f"needs {CONNECTIONS + 200} open files (ulimit -n is {soft})")
    data = tmp_path / "data"
    data.mkdir()
    proc = subprocess.Popen(
        [MAESTRO, "coordinator", "serve", "--port", "0", "--host", "127.0.0.1",
         "--data", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MAESTRO_COORDINATOR_MAX_CONNECTIONS_PER_CLIENT": "100000",
             "MAESTRO_COORDINATOR_ACCESS_LOG": "false", **env},
    )  # fmt: skip
    held: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        port = json.loads(proc.stdout.readline())["port"]
        before = _full_collections(port)
        request = _healthz(port)
        for _ in range(CONNECTIONS):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            held.append(sock)
            sock.sendall(request)
            _answered(sock)
        for _ in range(ROUNDS):
            for sock in held:
                sock.sendall(request)
                _answered(sock)
        return _full_collections(port) - before
    finally:
        for sock in held:
            sock.close()
        stop(proc)


def test_held_connections_and_their_requests_cause_no_full_collection(tmp_path: Path) -> None:
    assert _serve_held_connections(tmp_path) == 0


@pytest.mark.extended
def test_with_the_interpreters_gc_settings_the_same_load_runs_full_collections(
    tmp_path: Path,
) -> None:
    """What the setting changes (and that the load above is enough to show it)."""
    assert _serve_held_connections(tmp_path, MAESTRO_COORDINATOR_GC_YOUNG_THRESHOLD="0") >= 1
