"""The last `maestro/runProgress` of a run says how it ended: a cancelled run says it was
cancelled (after how many tests), a run pytest refused says it failed and why, a run with
nothing to run says so. Each used to end with "no tests", whatever had run."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import Env, command, finished, notes, run_to_end, start_client, stop_client

pytestmark = pytest.mark.slow


def last_progress(client: Any, run_id: str) -> str:
    messages = [p["message"] for p in notes(client, "maestro/runProgress") if p["runId"] == run_id]
    assert messages, f"no progress for {run_id}"
    return str(messages[-1])


async def test_the_last_progress_of_a_run_says_how_it_ended(lsp_env: Env) -> None:
    env = lsp_env
    client = await start_client(env, "neovim")
    try:
        # cancelled while its test sleeps: the end says cancelled, not "no tests"
        accepted = await command(client, "maestro.runFile", env.uri("tests/test_slow.py"))
        run_id = accepted["runId"]
        for _ in range(600):
            if any(p["runId"] == run_id for p in notes(client, "maestro/testExplorer/progress")):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        assert (await command(client, "maestro.cancel", run_id))["cancelled"] == [run_id]
        ended = await finished(client, run_id)
        assert ended["cancelled"], ended
        assert last_progress(client, run_id).startswith("cancelled"), last_progress(client, run_id)
        # a node pytest does not know: the run fails, and its end says so
        ended = await run_to_end(client, "maestro.runNode", "tests/test_calc.py::test_nothere")
        assert ended["error"] is not None, ended
        assert last_progress(client, ended["runId"]).startswith("failed: "), ended
        # nothing impacted (a clean working tree): its end is that message
        ended = await run_to_end(client, "maestro.runImpacted")
        assert ended["message"] == "no impacted tests", ended
        assert last_progress(client, ended["runId"]) == "no impacted tests"
    finally:
        await stop_client(client)
