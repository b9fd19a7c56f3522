"""The editor's `coordinatorUrl` setting end to end: a real language server (pytest-lsp) whose
workspace names a coordinator that is down; the editor points it at the team's real coordinator
on loopback, and the team sees the results: another workspace's run is served from them."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from project_python import project_python
from pytest_lsp import LanguageClient, client_capabilities
from pytest_lsp.client import make_test_lsp_client
from sync_helpers import Team, Workspace, plan_line

pytestmark = pytest.mark.slow

DEAD = "http://127.0.0.1:9"  # discard port: nothing answers


@asynccontextmanager
async def editor(ws: Workspace, options: dict[str, Any]) -> AsyncIterator[LanguageClient]:
    client = make_test_lsp_client()
    await client.start_io(
        sys.executable, "-P", "-m", "maestro.server", env=ws.env, cwd=str(ws.root)
    )
    try:
        await asyncio.wait_for(
            client.initialize_session(
                types.InitializeParams(
                    capabilities=client_capabilities("visual-studio-code"),
                    root_uri=ws.root.as_uri(),
                    workspace_folders=[types.WorkspaceFolder(uri=ws.root.as_uri(), name="ws")],
                    initialization_options=options,
                )
            ),
            30,
        )
        yield client
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), 15)
        with contextlib.suppress(Exception):
            await client.stop()


async def daemon_remote(client: LanguageClient, want: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = await client.protocol.send_request_async("maestro/status", {})
        daemon = _plain(status)["workspaces"][0]["daemon"]
        remote = (daemon or {}).get("remote") or {}
        if remote.get("url") == want:
            return dict(remote)
        assert time.monotonic() < deadline, f"the daemon never used {want}: {remote}"
        await asyncio.sleep(0.2)


def _plain(obj: Any) -> Any:
    if hasattr(obj, "_asdict"):
        return {k: _plain(v) for k, v in obj._asdict().items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


async def test_coordinator_url_setting_syncs_the_workspace_with_that_coordinator(
    team: Team,
) -> None:
    dev = team.workspace("dev", "read-write")
    dev.url = DEAD
    dev.setup(read_timeout_s=0.5)
    mate = team.workspace("mate", "read")
    mate.setup()
    assert 'url = "http://127.0.0.1:9"' in (dev.root / "pyproject.toml").read_text()

    options = {"interpreter": str(project_python()), "coordinatorUrl": team.coord.url + "/"}
    async with editor(dev, options) as client:
        await daemon_remote(client, team.coord.url)
        # the setting reached the daemon as a request, not through an inherited environment
        status = _plain(await client.protocol.send_request_async("maestro/status", {}))
        environ = Path(f"/proc/{status['workspaces'][0]['pid']}/environ").read_bytes()
        assert b"MAESTRO_COORDINATOR_URL=" not in environ
        # `maestro test` meanwhile goes through the same daemon, with the editor's coordinator
        run = await asyncio.to_thread(dev.test)
        assert run.returncode == 0, run.stdout + run.stderr
        remote = await asyncio.to_thread(
            dev.wait_remote, lambda r: r["queue_length"] == 0 and r["uploaded"] == 2
        )
        assert remote["url"] == team.coord.url and remote["last_error"] is None

    # a teammate's workspace, empty cache, the team's coordinator in its configuration: every
    # test file is served from what the editor-configured daemon uploaded
    shared = await asyncio.to_thread(mate.test)
    assert shared.returncode == 0, shared.stdout + shared.stderr
    assert plan_line(shared.stdout).startswith("2 test files: 2 cached"), shared.stdout
