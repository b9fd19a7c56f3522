"""Deleting a file a test reads, then asking the editor for the impacted tests (of that file's
URI, or of the working tree): the deleted path is inside the workspace, and the test that read
it runs (and fails, as pytest says), instead of the run being refused as "outside the
workspace"."""

from __future__ import annotations

import pytest
from conftest import Env, request, run_to_end, start_client, stop_client
from workspace_procs import commit_all, write_files

pytestmark = pytest.mark.slow

FILES = {
    "tests/data/case.txt": "hello\n",
    "tests/test_reads_data.py": """
        from pathlib import Path


        def test_reads_the_case():
            assert (Path(__file__).parent / "data/case.txt").read_text() == "hello\\n"
        """,
}


async def test_impacted_of_a_deleted_file_runs_its_readers(lsp_env: Env) -> None:
    env = lsp_env
    write_files(env.root, FILES)
    commit_all(env.root, "a test reading a data file")
    client = await start_client(env, "neovim")
    try:
        first = await run_to_end(client, "maestro.runFile", env.uri("tests/test_reads_data.py"))
        assert first["passed"] == 1, first
        (env.root / "tests/data/case.txt").unlink()
        uri = env.uri("tests/data/case.txt")
        impacted = await request(
            client, "maestro/impactedTargets", {"textDocument": {"uri": uri}, "testsOnly": True}
        )
        assert [r["target"] for r in impacted["impacted"]] == ["tests/test_reads_data.py"]
        for args in ((uri,), ()):  # the deleted file's URI, then the git working tree
            ended = await run_to_end(client, "maestro.runImpacted", *args)
            assert ended["error"] is None, ended["error"]
            assert ended["failed"] == 1, ended
    finally:
        await stop_client(client)
