"""The team coordinator asks the daemon to back off (429 + Retry-After): the editor is told once
per episode (a Warning with the end time and the rule) and through ``maestro/remoteBackoff``
(start and end). A real coordinator on loopback enforcing a tenant rate, a real server and
daemon."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Env, notes, request, run_to_end, start_client
from lsprotocol import types
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.slow

WAIT = re.compile(r"team cache asked us to wait until \d\d:\d\d:\d\d \(rule ([^)]+)\)")


async def _note(
    client: LanguageClient, match: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [n for n in notes(client, "maestro/remoteBackoff") if match(n)]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(
        f"no matching maestro/remoteBackoff: {notes(client, 'maestro/remoteBackoff')}"
    )


async def test_backoff_shown_once_then_ended(lsp_env: Env, tmp_path: Path) -> None:
    from aiohttp.test_utils import TestServer

    from maestro.coordinator.app import RUNNER_KWARGS, create_app
    from maestro.coordinator.auth import create_key
    from maestro.coordinator.models import Role
    from maestro.coordinator.settings import Settings
    from maestro.coordinator.store import Store

    env = lsp_env
    settings = Settings(
        data_dir=tmp_path / "coord", token_ttl_s=300, io_threads=2, rate_limits="enforce",
        tenants={"alpha": {"rate_per_s": 0.25, "burst": 1}},
    )  # fmt: skip
    with Store(settings.data_dir / "store") as store:
        store.add_tenant("alpha")
        server = TestServer(create_app(settings, store=store))
        await server.start_server(**RUNNER_KWARGS)
        client: LanguageClient | None = None
        try:
            base = str(server.make_url("")).rstrip("/")
            with (env.root / "pyproject.toml").open("a") as f:
                f.write(
                    f'\n[tool.maestro.remote]\nurl = "{base}"\ntenant = "alpha"\n'
                    'api-key-env = "MAESTRO_TEST_BACKOFF_KEY"\n'
                )
            env.env["MAESTRO_TEST_BACKOFF_KEY"] = create_key(
                store, "alpha", Role.READ_WRITE
            ).plaintext
            client = await start_client(env, "neovim")
            await request(client, "maestro/status", {})
            # a run reads the team cache for every file and uploads its results: over the
            # tenant's burst, the coordinator answers 429 with its retry advice
            ended = await run_to_end(client, "maestro.runFile", env.uri("tests/test_calc.py"))
            assert ended["error"] is None, ended  # the run itself worked from the local cache
            started = await _note(client, lambda n: n["active"], timeout=20)
            assert started["root"] == str(env.root) and started["until"] > time.time() - 30
            assert started["rule"], started
            warned = [
                m.message for m in client.messages
                if m.type == types.MessageType.Warning and WAIT.search(m.message)
            ]  # fmt: skip
            assert len(warned) == 1, warned
            assert WAIT.search(warned[0]).group(1) == started["rule"]  # type: ignore[union-attr]
            assert warned[0].endswith("working from the local cache")
            assert started["message"] == warned[0]
            # the episode ends when the advised time passed and no new refusal came
            await _note(client, lambda n: not n["active"], timeout=60)
            # a later end time of the same episode updated the bar without a second warning
            assert len([m for m in client.messages if WAIT.search(m.message)]) == 1
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.shutdown_session(), 15)
                with contextlib.suppress(Exception):
                    await client.stop()
            await server.close()
