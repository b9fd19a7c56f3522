"""A real daemon with file names that are not valid UTF-8 in its workspace: it keeps answering.

Such a name ('notes_\\xff.txt') is reported as a diagnostic and left out of the graph; the watcher
(watchfiles raises on an event for it) must not lose the edits made around it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import DaemonEnv, started, targets
from project_python import project_python

from maestro import wire
from maestro.daemon.transport.client import DaemonClient, SyncDaemonClient

T = TypeVar("T")
MAESTRO = str(Path(sys.executable).with_name("maestro"))
BAD = b"data/notes_\xff.txt"
SHOWN = "data/notes_\\xff.txt"

FILES = {
    "pyproject.toml": (
        f'[project]\nname = "ws"\n\n[tool.maestro]\ninterpreter = "{project_python()}"\n\n'
        '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
    ),
    "data/ok.txt": "ok\n",
    "src/pkg/__init__.py": "",
    "src/pkg/core.py": "def one():\n    return 1\n",
    "src/pkg/api.py": "from pkg.core import one\n\ndef api():\n    return one()\n",
    "tests/conftest.py": (
        "import os, sys\nsys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'src'))\n"
    ),
    "tests/test_core.py": "from pkg.core import one\n\ndef test_one():\n    assert one() == 1\n",
    "tests/test_api.py": "from pkg.api import api\n\ndef test_api():\n    assert api() == 1\n",
    "tests/test_extra.py": "def test_two():\n    assert 2 == 2\n",
}


def run(coro: Coroutine[Any, Any, T], timeout: float = 90.0) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


def create_bad(root: Path) -> None:
    path = os.path.join(os.fsencode(root), BAD)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with open(path, "wb") as f:
            f.write(b"x\n")
    except OSError as exc:
        pytest.skip(f"this file system refuses non-UTF-8 names: {exc}")


@pytest.fixture
def ws(daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch) -> DaemonEnv:
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(daemon_env.base / "cache"))
    daemon_env.write_old(FILES)
    return daemon_env


def cli(env: DaemonEnv, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, served by the running daemon (never computing in process)."""
    return subprocess.run(
        [MAESTRO, *args],
        cwd=env.root,
        capture_output=True,
        text=True,
        env={**os.environ, "MAESTRO_DAEMON": "start"},
        timeout=120,
    )


def daemon_log(env: DaemonEnv) -> str:
    return env.paths.log.read_text(encoding="utf-8", errors="replace")


def test_daemon_keeps_answering_after_such_a_file_appears(ws: DaemonEnv) -> None:
    started(ws)

    async def main() -> None:
        client = await DaemonClient.connect(ws.root, start=False)
        core = wire.ImpactedParams(paths=["src/pkg/core.py"])
        try:
            await client.subscribe(["graph_changed"])
            assert targets(await client.call(wire.IMPACTED, core)) == [
                "tests/test_api.py",
                "tests/test_core.py",
            ]
            # the watcher is up once it reports an edit
            api = ws.root / "src/pkg/api.py"
            api.write_text(api.read_text() + "\n")
            while "src/pkg/api.py" not in (await client.next_event(timeout=15)).payload["paths"]:
                pass
            create_bad(ws.root)
            await asyncio.sleep(0.3)
            # an edit right after: watchfiles has failed on the name by now
            (ws.root / "tests/test_extra.py").write_text("from pkg.core import one\n")
            deadline = time.monotonic() + 15
            found: list[str] = []
            while time.monotonic() < deadline and "tests/test_extra.py" not in found:
                found = targets(await client.call(wire.IMPACTED, core))
                await asyncio.sleep(0.05)
            assert found == ["tests/test_api.py", "tests/test_core.py", "tests/test_extra.py"]
            # the file is reported, printably
            stats = await client.call(wire.GRAPH_STATS, wire.GraphStatsParams())
            [diag] = [d for d in stats.diagnostics if d.path == SHOWN]
            assert "not valid UTF-8" in diag.message and "rename" in diag.message
            # later requests: the name itself on the wire (escaped), other methods, new edits
            named = wire.ImpactedParams(paths=[os.fsdecode(BAD)])
            assert (await client.call(wire.IMPACTED, named)).impacted == []
            assert (await client.call(wire.STATUS, wire.Empty())).pid > 0
            why = await client.call(
                wire.WHY, wire.WhyParams(target="tests/test_extra.py", path="src/pkg/core.py")
            )
            assert why.depends
            (ws.root / "tests/test_new.py").write_text("from pkg.api import api\n")
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and "tests/test_new.py" not in found:
                found = targets(await client.call(wire.IMPACTED, core))
                await asyncio.sleep(0.05)
            assert "tests/test_new.py" in found
        finally:
            await client.close()

    run(main())
    text = daemon_log(ws)
    assert "Logging error" not in text and "Traceback" not in text, text


def test_daemon_started_with_such_files_serves_the_cli(ws: DaemonEnv) -> None:
    for args in (["init", "-q", "-b", "main"], ["add", "-A"]):
        subprocess.run(["git", "-C", str(ws.root), *args], check=True, capture_output=True)
    subprocess.run(
        ["git", "-C", str(ws.root), "-c", "user.email=t@example.invalid", "-c", "user.name=t",
         "commit", "-qm", "init"],
        check=True, capture_output=True,
    )  # fmt: skip
    create_bad(ws.root)  # untracked
    started(ws)
    with SyncDaemonClient(ws.root, start=False) as client:
        report = client.call(wire.IMPACTED, wire.ImpactedParams(paths=["src/pkg/core.py"]))
        assert targets(report) == ["tests/test_api.py", "tests/test_core.py"]
        assert client.call(wire.IMPACTED, wire.ImpactedParams()).changes == []  # git: none
        stats = client.call(wire.GRAPH_STATS, wire.GraphStatsParams())
        assert SHOWN in {d.path for d in stats.diagnostics}
    (ws.root / "src/pkg/core.py").write_text("def one():\n    return 1  # edited\n")
    proc = cli(ws, "impacted", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["changes"] == [{"path": "src/pkg/core.py", "status": "modified"}]
    assert sorted(i["target"] for i in data["impacted"]) == [
        "tests/test_api.py",
        "tests/test_core.py",
    ]
    proc = cli(ws, "impacted", os.fsdecode(BAD))
    assert proc.returncode == 0, proc.stderr
    assert SHOWN in proc.stderr and "No changes." in proc.stdout
    proc = cli(ws, "test")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout
    assert "computing in process" not in proc.stderr  # served by the daemon
    text = daemon_log(ws)
    assert "Logging error" not in text and "Traceback" not in text, text
