"""The cache's hits and "time saved" count what runs served, through a real server and daemon:
asking the editor's questions about the cache (the cache-state column, explain) serves nothing
and counts nothing."""

from __future__ import annotations

import pytest
from conftest import Env, request, run_to_end, start_client, stop_client
from workspace_procs import commit_all, write_files

pytestmark = pytest.mark.slow

FILES = {
    "pkg/core.py": "def base():\n    return 1\n",
    "tests/test_core.py": "from pkg.core import base\n\n\ndef test_base():\n"
    "    assert base() == 1\n",
}


async def test_questions_about_the_cache_count_no_hits(lsp_env: Env) -> None:
    env = lsp_env
    write_files(env.root, FILES)
    commit_all(env.root, "core")
    client = await start_client(env, "neovim", {"speculation": False})
    root = {"root": str(env.root)}
    try:
        await run_to_end(client, "maestro.runFile", env.uri("tests/test_core.py"))
        served = await run_to_end(client, "maestro.runFile", env.uri("tests/test_core.py"))
        assert served["cachedFiles"] == 1
        before = await request(client, "maestro/cacheStats", root)
        for _ in range(3):
            explained = await request(
                client, "maestro/explain", {"target": "tests/test_core.py::test_base"}
            )
            assert explained["cache"]["state"] == "cached", explained
        after = await request(client, "maestro/cacheStats", root)
        # each explain asks the daemon which files are stale: that served nothing
        assert (after["hits"], after["misses"]) == (before["hits"], before["misses"])
        assert after["wallSecondsSaved"] == before["wallSecondsSaved"]
        again = await run_to_end(client, "maestro.runFile", env.uri("tests/test_core.py"))
        assert again["cachedFiles"] == 1
        counted = await request(client, "maestro/cacheStats", root)
        assert counted["hits"] == before["hits"] + 1
    finally:
        await stop_client(client)
