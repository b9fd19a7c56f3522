"""Malformed requests make aiohttp's parser log the offending request line or header; with a
credential in it, the coordinator's log held the full API key or token (4 of 5 variants). Logs
are an egress: every line goes through the redacting formatter."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

from coord_procs import MAESTRO, free_port, stop, token


def _cli(data: Path, *args: str) -> str:
    done = subprocess.run(
        [MAESTRO, "coordinator", *args, "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def _variants(key: str) -> list[str]:
    return [
        f"GET /acme/ac/00 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\x01\r\n\r\n",
        f"GET /acme/ac/00 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n {key}\r\n\r\n",
        f"GET /acme/ac/00 HTTP/1.1\r\nHost: x\r\nAuthorization : Bearer {key}\r\n\r\n",
        f"GET /acme/ac/00?k={key} HTTP/1.1 junk\r\nHost: x\r\n\r\n",
        f"GET /acme/ac/00 HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {key}\r\n"
        "Content-Length: x\r\n\r\n",
    ]


def _send(port: int, request: str) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request.encode("latin-1"))
        assert s.recv(100).startswith(b"HTTP/1.")  # a 400, not a hang


def test_malformed_requests_leave_no_credential_in_the_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _cli(data, "tenant", "add", "acme")
    key = json.loads(_cli(data, "key", "create", "acme", "--role", "read-write", "--json")
                     .strip().splitlines()[-1])["api_key"]  # fmt: skip
    port = free_port()
    log = tmp_path / "coordinator.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [MAESTRO, "coordinator", "serve", "--port", str(port), "--host", "127.0.0.1",
             "--data", str(data)],
            stdout=subprocess.PIPE,
            stderr=err,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            assert json.loads(proc.stdout.readline())["event"] == "listening"
            # a short-lived token leaks the same way as the key it was exchanged for
            bearer = token(f"http://127.0.0.1:{port}", key)
            logged = []
            for credential in (key, bearer):
                for request in _variants(credential):
                    _send(port, request)
                    time.sleep(0.3)
                    logged.append(log.read_text(errors="replace")[len("".join(logged)) :])
        finally:
            stop(proc)
    text = log.read_text(errors="replace")
    assert "Error handling request" in text  # aiohttp did log the bad requests
    # each variant on its own: logged (the check is not vacuous) and redacted
    assert len(logged) == 10 and sum("[REDACTED:" in part for part in logged) >= 8, logged
    for secret in (key.split("_", 2)[2], bearer.removeprefix("mt_")):
        assert secret not in text and secret[:16] not in text
        for part in secret.split(".")[1:]:  # a JWT's claims and signature, one by one
            assert part[:16] not in text, part[:16]
