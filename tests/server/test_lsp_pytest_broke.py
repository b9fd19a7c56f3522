"""A run in which pytest itself breaks down (a conftest hook raising: INTERNALERROR) tells the
editor what pytest said, not only that files did not finish; real server and daemon."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from conftest import Env, notes, run_to_end, start_client
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
            "1 test file did not finish" in m and "RuntimeError: boom in a hook" in m
            for m in errors
        ), errors
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), 15)
        with contextlib.suppress(Exception):
            await client.stop()


async def test_a_run_whose_pytest_died_says_which_files_did_not_finish(lsp_env: Env) -> None:
    (lsp_env.root / "tests/test_dies.py").write_text(
        "import os\nimport signal\n\n\ndef test_first():\n    pass\n\n\n"
        "def test_kills_its_pytest():\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    client = await start_client(lsp_env, "visual_studio_code")
    try:
        ended = await run_to_end(client, "maestro.runFile", lsp_env.uri("tests/test_dies.py"))
        assert ended["notRunFiles"] == 1, ended
        (token,) = [t for t in client.progress_reports if ended["runId"] in str(t)]
        end = client.progress_reports[token][-1]
        assert isinstance(end, types.WorkDoneProgressEnd)
        # the counts alone read as a finished run: the end says what did not run
        assert end.message is not None
        assert end.message.endswith("; 1 test file did not finish (not cached)"), end.message
        last = notes(client, "maestro/runProgress")[-1]
        assert last["message"] == end.message
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), 15)
        with contextlib.suppress(Exception):
            await client.stop()
