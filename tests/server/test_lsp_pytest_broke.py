"""A run in which pytest itself breaks down (a conftest hook raising: INTERNALERROR) tells the
editor what pytest said, not only that files did not finish; real server and daemon."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from conftest import Env, run_to_end, start_client
from lsprotocol import types

pytestmark = pytest.mark.slow


async def test_a_run_pytest_broke_down_in_shows_what_pytest_said(lsp_env: Env) -> None:
    (lsp_env.root / "tests/conftest.py").write_text(
        "def pytest_runtest_logreport(report):\n    raise RuntimeError('boom in a hook')\n"
    )
    client = await start_client(lsp_env, "visual_studio_code")
    try:
        ended = await run_to_end(client, "maestro.runFile", lsp_env.uri("tests/test_calc.py"))
        assert ended["notRunFiles"] == 1
        errors = [m.message for m in client.messages if m.type == types.MessageType.Error]
        assert any(
            "1 test files did not finish" in m and "RuntimeError: boom in a hook" in m
            for m in errors
        ), errors
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), 15)
        with contextlib.suppress(Exception):
            await client.stop()
