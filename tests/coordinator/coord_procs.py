"""Real processes for scale-out tests: Debian's redis-server and nginx (WebDAV PUT) on loopback,
and `maestro coordinator serve` replicas. Every process is started in a temp dir, on a free
loopback port, and killed by the fixture that started it (imported by name: tests/ has no
packages)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from maestro.coordinator.auth import new_key
from maestro.coordinator.models import Role
from maestro.coordinator.records import TenantRecord, TenantUpdate
from maestro.coordinator.state import RedisState

REDIS_SERVER = shutil.which("redis-server") or (
    "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
)
NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.path.exists(p)), None
)
MAESTRO = str(Path(sys.executable).parent / "maestro")

needs_redis = pytest.mark.skipif(
    REDIS_SERVER is None,
    reason="redis-server not installed (apt-get install -y redis-server)",
)
needs_nginx = pytest.mark.skipif(
    NGINX is None, reason="nginx not installed (apt-get install -y nginx-light or nginx)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@dataclass
class Redis:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@contextmanager
def run_redis(tmp: Path) -> Iterator[Redis]:
    """A throwaway redis-server: loopback, random port, no persistence, its own dir."""
    assert REDIS_SERVER is not None
    work = tmp / "redis"
    work.mkdir(parents=True, exist_ok=True)
    log = work / "redis.log"
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(work),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--logfile",
                str(log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_port(port, proc, "redis-server", log)
        except RuntimeError:
            stop(proc, signal.SIGKILL)
            continue
        try:
            yield Redis(port, proc)
        finally:
            stop(proc)
        return
    raise RuntimeError("could not start redis-server")


NGINX_CONF = """\
{user}
daemon off;
master_process on;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log {work}/access.log;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    client_max_body_size 0;
    sendfile on;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{
            dav_methods PUT DELETE;
            create_full_put_path on;
            dav_access user:rw;
        }}
    }}
}}
"""


@dataclass
class Nginx:
    port: int
    root: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cache"


@contextmanager
def run_nginx(tmp: Path) -> Iterator[Nginx]:
    """Debian's nginx as a WebDAV PUT blob upstream over a temp root (files under root/cache)."""
    assert NGINX is not None
    work = tmp / "nginx"
    root = work / "root"
    (root / "cache").mkdir(parents=True, exist_ok=True)
    user = "user root root;" if os.geteuid() == 0 else ""
    for _ in range(5):
        port = free_port()
        conf = work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user=user, work=work, root=root, port=port))
        proc = subprocess.Popen(
            [NGINX, "-c", str(conf), "-p", str(work), "-e", str(work / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=open(work / "stderr.log", "wb"),  # noqa: SIM115
        )
        try:
            _wait_port(port, proc, "nginx", work / "stderr.log")
        except RuntimeError:
            stop(proc, signal.SIGKILL)
            continue
        try:
            yield Nginx(port, root, proc)
        finally:
            stop(proc, signal.SIGQUIT)  # graceful: the master takes its worker with it
        return
    raise RuntimeError("could not start nginx")


@dataclass
class Replica:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    data: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_coordinator(tmp: Path, name: str, settings: dict[str, str]) -> Replica:
    """`maestro coordinator serve --port 0` with MAESTRO_COORDINATOR_* settings from `settings`."""
    data = tmp / name
    data.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "MAESTRO_COORDINATOR_DATA_DIR": str(data),
        "MAESTRO_COORDINATOR_METRICS_PUBLIC": "true",  # per-tenant series without a token
        **{f"MAESTRO_COORDINATOR_{k.upper()}": v for k, v in settings.items()},
    }
    log = data / "server.log"
    proc = subprocess.Popen(
        [MAESTRO, "coordinator", "serve", "--port", "0", "--host", "127.0.0.1"],
        cwd=data,  # never the source tree (it would shadow the installed package)
        stdout=subprocess.PIPE,
        stderr=open(log, "ab"),  # noqa: SIM115
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        stop(proc, signal.SIGKILL)
        raise RuntimeError(f"coordinator {name} did not start: {log.read_text()[-3000:]}")
    return Replica(int(json.loads(line)["port"]), proc, log, data, env)  # type: ignore[arg-type]


@dataclass
class Replicas:
    """Two coordinator replicas sharing state in one redis-server and blobs in one nginx."""

    redis: Redis
    nginx: Nginx
    a: Replica
    b: Replica
    settings: dict[str, str]
    """their MAESTRO_COORDINATOR_* settings (lower-case names, as start_coordinator takes them)"""


@contextmanager
def run_replicas(
    tmp: Path, names: tuple[str, str] = ("replica-a", "replica-b"), **extra: str
) -> Iterator[Replicas]:
    """redis-server, nginx and two replicas over them (`extra`: more settings); all stopped on
    exit. A replica a test restarts under the same name is the test's to stop."""
    with run_redis(tmp) as redis, run_nginx(tmp) as nginx:
        settings = {
            "state_backend": "redis",
            "redis_url": redis.url,
            "blob_backend": "http",
            "blob_upstream_url": nginx.url,
            **extra,
        }
        a = start_coordinator(tmp, names[0], settings)
        try:
            b = start_coordinator(tmp, names[1], settings)
            try:
                yield Replicas(redis, nginx, a, b, settings)
            finally:
                stop(b.proc)
        finally:
            stop(a.proc)


async def add_tenant(
    redis_url: str,
    name: str,
    role: Role = Role.READ_WRITE,
    label: str = "test",
    *,
    quota_bytes: int | None = None,
    policy: dict[str, Any] | None = None,
) -> tuple[TenantRecord, str]:
    """Create a tenant in the replicas' shared state (with `policy` changes, if any) and one API
    key; (its record, the key's plaintext)."""
    state = RedisState.from_url(redis_url)
    try:
        tenant = await state.add_tenant(name, quota_bytes=quota_bytes)
        if policy:
            tenant = await state.update_tenant(name, TenantUpdate(policy_changes=policy))
        key = new_key(name, role, label)
        await state.add_key(key.record)
        return tenant, key.plaintext
    finally:
        await state.close()


def http(
    method: str,
    url: str,
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def token(base: str, api_key: str) -> str:
    status, body, _ = http(
        "POST",
        f"{base}/v1/token",
        data=json.dumps({"api_key": api_key}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 200, body
    value: str = json.loads(body)["token"]
    return value


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}
