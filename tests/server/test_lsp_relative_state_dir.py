"""A relative MAESTRO_STATE_DIR / MAESTRO_CACHE_DIR (relative to where the editor started the
server) names the same directories for the daemon the server starts, which runs elsewhere."""

from __future__ import annotations

import os

import pytest
from conftest import Env, request, start_client, stop_client

pytestmark = pytest.mark.slow


async def test_relative_state_and_cache_dirs(lsp_env: Env) -> None:
    env = lsp_env
    env.env["MAESTRO_STATE_DIR"] = os.path.relpath(env.base / "st", env.root)
    env.env["MAESTRO_CACHE_DIR"] = os.path.relpath(env.base / "ca", env.root)
    env.env["MAESTRO_DAEMON_START_TIMEOUT"] = "15"
    client = await start_client(env, "neovim")
    try:
        status = await request(client, "maestro/status", {}, timeout=40)
        (ws,) = status["workspaces"]
        # it said "the daemon did not answer on ../st/workspaces/ws-.../daemon.sock within 15s"
        assert (ws["state"], ws["lastError"]) == ("connected", None), ws
        stats = await request(client, "maestro/cacheStats", {"root": str(env.root)})
        assert stats["path"] == str(env.base / "ca" / "lmdb")
    finally:
        await stop_client(client)
