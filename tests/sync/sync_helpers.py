"""Real processes for the daemon-sync tests: a coordinator (`maestro coordinator serve`), and
workspaces, each with its own cache dir, state dir and daemon, driven through the `maestro` CLI.

Everything lives under a short /tmp directory (AF_UNIX socket paths are limited) and every
process is stopped by the fixture that started it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from project_python import project_python

MAESTRO = str(Path(sys.executable).parent / "maestro")
KEY_ENV = "MAESTRO_TEST_REMOTE_KEY"


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    env["MAESTRO_DAEMON_IDLE"] = "300"  # a daemon a crashed test leaves behind goes away
    return env


class Coordinator:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "coord"
        self.log = base / "coord.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.settings_env: dict[str, str] = {}  # MAESTRO_COORDINATOR_* for `serve`
        base.mkdir(parents=True, exist_ok=True)

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [MAESTRO, "coordinator", *args, "--data", str(self.data)],
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=60,
            env=_base_env(),
        )
        assert result.returncode == 0, result.stderr + result.stdout
        return result.stdout

    def key(self, tenant: str, role: str) -> str:
        out = self.cli("key", "create", tenant, "--role", role, "--label", role, "--json")
        key: str = json.loads(out.strip().splitlines()[-1])["api_key"]
        return key

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = ["--port", str(self.port), "--host", "127.0.0.1"]
        self.proc = subprocess.Popen(
            [MAESTRO, "coordinator", "serve", *args, "--data", str(self.data)],
            cwd=self.base,
            stdout=subprocess.PIPE,
            stderr=open(self.log, "ab"),  # noqa: SIM115
            env={**_base_env(), **self.settings_env},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, self.log.read_text()
        self.port = int(json.loads(line)["port"])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


FILES = {
    "pkg/__init__.py": "",
    "pkg/a.py": "def add(a, b):\n    return a + b\n",
    "pkg/b.py": "def mul(a, b):\n    return a * b\n",
    "tests/test_a.py": "from pkg.a import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
    "tests/test_b.py": (
        "from pkg.b import mul\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n\n\n"
        "def test_mul_zero():\n    print('zero')\n    assert mul(0, 3) == 0\n"
    ),
}


@dataclass
class Workspace:
    """A workspace directory with its own cache and state dirs (its own daemon)."""

    base: Path
    name: str
    key: str | None
    url: str
    tenant: str
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.base / self.name / "ws"

    def setup(
        self,
        files: dict[str, str] | None = None,
        read_timeout_s: float = 2.0,
        *,
        remote: bool = True,
        maestro_extra: str = "",
        remote_extra: str = "",
    ) -> None:
        remote_extra = remote_extra.replace("\n", "\n" + " " * 12)  # the table's indent
        remote_table = f"""
            [tool.maestro.remote]
            url = "{self.url}"
            tenant = "{self.tenant}"
            api_key_env = "{KEY_ENV}"
            read_timeout_s = {read_timeout_s}
            {remote_extra}
            """
        self.write(
            "pyproject.toml",
            f"""
            [project]
            name = "demo"
            version = "0"

            [tool.pytest.ini_options]
            testpaths = ["tests"]

            [tool.maestro]
            interpreter = {str(project_python())!r}
            {maestro_extra}
            """
            + (remote_table if remote else ""),
        )
        for rel, text in (files or FILES).items():
            self.write(rel, text)

    def write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))

    def set_url(self, url: str) -> None:
        path = self.root / "pyproject.toml"
        path.write_text(path.read_text().replace(self.url, url))
        self.url = url

    @property
    def env(self) -> dict[str, str]:
        env = _base_env()
        env.update(
            MAESTRO_CACHE_DIR=str(self.base / self.name / "c"),
            MAESTRO_STATE_DIR=str(self.base / self.name / "s"),
            MAESTRO_DAEMON="start",
            MAESTRO_SYNC_MAX_BACKOFF_S="1",
            **self.extra_env,
        )
        if self.key is not None:
            env[KEY_ENV] = self.key
        return env

    def maestro(
        self, *args: str, timeout: float = 300, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MAESTRO, *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**self.env, **env},
        )

    def test(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.maestro("test", *args, **env)

    def status(self) -> dict[str, Any]:
        out = self.maestro("status", "--json", timeout=60)
        assert out.returncode == 0, out.stderr + out.stdout
        data: dict[str, Any] = json.loads(out.stdout)
        return data

    def remote(self) -> dict[str, Any]:
        remote: dict[str, Any] = self.status()["daemon"]["remote"]
        return remote

    def wait_remote(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = 30
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remote = self.remote()
            if pred(remote):
                return remote
            if time.monotonic() > deadline:
                raise AssertionError(f"remote status never matched: {remote}")
            time.sleep(0.2)

    def stop_daemon(self) -> None:
        subprocess.run(
            [MAESTRO, "daemon", "stop"], cwd=self.root, capture_output=True, timeout=60,
            env=self.env,
        )  # fmt: skip


def plan_line(output: str) -> str:
    """'N test files: X cached (T tests), Y to run' ('1 test file: ...' for one)"""
    return next(
        line for line in output.splitlines() if " test files: " in line or " test file: " in line
    )


def cached_count(output: str) -> int:
    return int(plan_line(output).split(": ", 1)[1].split(" cached", 1)[0])


@dataclass
class Team:
    coord: Coordinator
    base: Path
    keys: dict[str, str]
    workspaces: list[Workspace] = field(default_factory=list)

    def workspace(self, name: str, role: str | None, tenant: str = "team") -> Workspace:
        key = self.keys[f"{tenant}:{role}"] if role else None
        ws = Workspace(self.base, name, key, self.coord.url, tenant)
        self.workspaces.append(ws)
        return ws
