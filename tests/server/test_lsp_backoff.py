"""The team coordinator asks the daemon to back off (429 + Retry-After): the editor is told once
per episode (a Warning with the end time and the rule) and through ``maestro/remoteBackoff``
(start and end). A real coordinator on loopback enforcing a tenant rate, a real server and
daemon."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Env, notes, rate_limited_remote, run_to_end
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
    async with rate_limited_remote(
        lsp_env, tmp_path / "coord", {"rate_per_s": 0.25, "burst": 1}
    ) as client:
        # a run reads the team cache for every file and uploads its results: over the
        # tenant's burst, the coordinator answers 429 with its retry advice
        ended = await run_to_end(client, "maestro.runFile", lsp_env.uri("tests/test_calc.py"))
        assert ended["error"] is None, ended  # the run itself worked from the local cache
        started = await _note(client, lambda n: n["active"], timeout=20)
        assert started["root"] == str(lsp_env.root) and started["until"] > time.time() - 30
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
