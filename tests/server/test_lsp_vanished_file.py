"""A failing test file that vanishes from disk without the editor saying so (a `git checkout`
of another branch, a `rm` in a terminal): its failure leaves the editor's problems list, instead
of staying there for a file that no longer exists, run after run."""

from __future__ import annotations

import asyncio

import pytest
from conftest import Env, run_to_end, start_client, stop_client
from workspace_procs import write_files

pytestmark = pytest.mark.slow

GONE = "tests/test_gone.py"
FILES = {
    GONE: """
        def test_fails():
            assert 1 == 2
        """,
}


async def until(check: object, timeout: float = 30) -> bool:
    for _ in range(int(timeout / 0.1)):
        if check():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.1)
    return False


async def test_a_vanished_test_files_failure_leaves_the_problems_list(lsp_env: Env) -> None:
    env = lsp_env
    write_files(env.root, FILES)
    client = await start_client(env, "visual_studio_code")
    try:
        uri = env.uri(GONE)
        ended = await run_to_end(client, "maestro.runFile", uri)
        assert ended["failed"] == 1, ended
        assert await until(lambda: client.diagnostics.get(uri)), "no diagnostic for the failure"
        (env.root / GONE).unlink()
        cleared = await until(lambda: not client.diagnostics.get(uri))
        assert cleared, f"still shown for a deleted file: {client.diagnostics.get(uri)}"
        # a later run of another file does not bring it back
        other = await run_to_end(client, "maestro.runFile", env.uri("tests/test_calc.py"))
        assert other["error"] is None, other
        assert not client.diagnostics.get(uri)
    finally:
        await stop_client(client)
