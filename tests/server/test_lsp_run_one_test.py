"""Running one test of a file keeps what is known of the file's other tests. Before, the result
of the one test replaced the file's: the other failing tests' diagnostics went away and the
file's lens said only the one test's outcome, though nothing had changed and they still fail."""

from __future__ import annotations

import asyncio

import pytest
from conftest import Env, open_doc, run_to_end, start_client, stop_client
from test_lsp_outdated import lenses
from workspace_procs import commit_all, write_files

pytestmark = pytest.mark.slow

FILES = {
    "tests/test_many.py": """
        def test_one():
            assert 1 == 2


        def test_two():
            assert 2 == 3


        def test_three():
            assert 3 == 3
        """,
}


def failing_lines(client: object, uri: str) -> list[int]:
    found = client.diagnostics.get(uri, [])  # type: ignore[attr-defined]
    return sorted(d.range.start.line for d in found)


async def test_running_one_test_keeps_the_other_tests_results(lsp_env: Env) -> None:
    env = lsp_env
    write_files(env.root, FILES)
    commit_all(env.root, "many")
    client = await start_client(env, "visual_studio_code")
    try:
        uri = open_doc(client, env, "tests/test_many.py")
        await run_to_end(client, "maestro.runFile", uri)
        await asyncio.sleep(0.5)
        both = failing_lines(client, uri)
        assert len(both) == 2, both
        assert "last: ✗ 2 failed, 1 passed" in await lenses(client, uri)

        done = await run_to_end(client, "maestro.runNode", "tests/test_many.py::test_one")
        assert done["failed"] == 1
        await asyncio.sleep(0.5)
        # test_two was not run: it still fails, as the run before said
        assert failing_lines(client, uri) == both
        assert "last: ✗ 2 failed, 1 passed" in await lenses(client, uri)
    finally:
        await stop_client(client)
