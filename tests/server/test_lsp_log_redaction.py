"""The editor's server log is an egress like the daemon's: a real `maestro lsp --log-file` whose
workspace path holds a GitHub token and a value known from the environment logs both redacted
(the server logs the workspace it starts a daemon for), and so does the daemon it starts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from project_python import project_python
from pytest_lsp import client_capabilities
from pytest_lsp.client import make_test_lsp_client
from workspace_procs import no_daemon_left, pyproject, write_files

MAESTRO = str(Path(sys.executable).parent / "maestro")
GITHUB = "ghp_" + "Lq8" * 12  # 36 characters after the prefix: a GitHub token's shape
KNOWN = "opal-harbor-lantern-77"  # the developer's shell holds it as DEPLOY_TOKEN


async def test_the_lsp_and_daemon_logs_hold_no_secret_of_the_workspace_path() -> None:
    base = Path(tempfile.mkdtemp(prefix="mlsr", dir="/tmp"))
    root = (base / f"ws-{GITHUB}-{KNOWN}").resolve()
    write_files(
        root,
        {"pyproject.toml": pyproject("logdemo"), "tests/test_a.py": "def test_a():\n    pass\n"},
    )
    log = base / "lsp.log"
    env = {
        **os.environ,
        "MAESTRO_STATE_DIR": str(base / "st"),
        "MAESTRO_CACHE_DIR": str(base / "ca"),
        "MAESTRO_DAEMON_START_TIMEOUT": "60",
        "DEPLOY_TOKEN": KNOWN,
    }
    env.pop("XDG_RUNTIME_DIR", None)
    client = make_test_lsp_client()
    try:
        await client.start_io(
            MAESTRO, "lsp", "--log-file", str(log), env=env, cwd=str(root)
        )  # fmt: skip
        await asyncio.wait_for(
            client.initialize_session(
                types.InitializeParams(
                    capabilities=client_capabilities("visual_studio_code"),
                    root_uri=root.as_uri(),
                    workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="ws")],
                    initialization_options={"interpreter": str(project_python())},
                )
            ),
            30,
        )
        deadline = time.monotonic() + 90
        while "spawned daemon pid" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "the server never logged its daemon"
            await asyncio.sleep(0.2)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), 15)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.stop(), 15)
        try:
            no_daemon_left(root)
            daemon_logs = sorted((base / "st").rglob("daemon.log"))
            logs = {p.name: p.read_text(errors="replace") for p in [log, *daemon_logs]}
        finally:
            shutil.rmtree(base, ignore_errors=True)
    assert set(logs) == {"lsp.log", "daemon.log"}, set(logs)
    for name, text in logs.items():
        assert GITHUB not in text and KNOWN not in text, name
        # the check is not vacuous: the path was logged, redacted
        assert "[REDACTED:github-token:" in text and "[REDACTED:env-deploy-token:" in text, (
            name,
            text[-2000:],
        )
