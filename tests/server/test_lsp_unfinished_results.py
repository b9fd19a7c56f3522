"""A file whose pytest died before its tests finished: the editor must not be told that the
tests which never ran this time passed (their last results are from before the edit)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Env, notes, run_to_end, start_client, stop_client
from workspace_procs import commit_all, write_files

pytestmark = pytest.mark.slow

BEFORE = """
def test_first():
    pass


def test_second():
    pass
"""

AFTER = """
import os
import signal


def test_first():
    os.kill(os.getpid(), signal.SIGKILL)


def test_second():
    pass
"""


def streamed(client: Any, run_id: str) -> dict[str, dict[str, Any]]:
    return {
        test["id"]: test
        for batch in notes(client, "maestro/testResults")
        if batch["runId"] == run_id
        for test in batch["tests"]
    }


async def test_tests_that_did_not_run_are_not_reported_with_their_old_pass(
    lsp_env: Env,
) -> None:
    write_files(lsp_env.root, {"tests/test_dies.py": BEFORE})
    commit_all(lsp_env.root, "dies")
    client = await start_client(lsp_env, "neovim", explorer=False)
    try:
        uri = lsp_env.uri("tests/test_dies.py")
        first = await run_to_end(client, "maestro.runFile", uri)
        assert first["passed"] == 2, first
        write_files(lsp_env.root, {"tests/test_dies.py": AFTER})
        ended = await run_to_end(client, "maestro.runFile", uri)
        assert ended["notRunFiles"] == 1, ended
        got = streamed(client, ended["runId"])
        stale = {i: t["outcome"] for i, t in got.items() if t["outcome"] == "passed"}
        assert stale == {}, got
    finally:
        await stop_client(client)
