"""`maestro/explain` right after a `git checkout` of a branch with a failing test: the run just
showed ✗ for it, and the explanation must agree. Before, the working tree equal to HEAD made the
test "not impacted", so the answer was "skipped (not impacted)" beside the fresh failure, though
any run of it (or of all tests) re-runs it because it failed last time."""

from __future__ import annotations

import subprocess

import pytest
from conftest import Env, request, run_to_end, start_client, stop_client
from workspace_procs import commit_all, write_files

pytestmark = pytest.mark.slow

FAILING = {
    "tests/test_b_added.py": """
        def test_added():
            assert 1 + 1 == 3
        """,
}


async def test_explain_after_a_checkout_agrees_with_the_failure_just_shown(lsp_env: Env) -> None:
    env = lsp_env  # a git repository, all committed
    git = ["git", "-C", str(env.root)]
    subprocess.run([*git, "checkout", "-q", "-b", "b"], check=True)
    write_files(env.root, FAILING)
    commit_all(env.root, "b: a failing test")
    subprocess.run([*git, "checkout", "-q", "-"], check=True)
    client = await start_client(env, "visual_studio_code")
    try:
        subprocess.run([*git, "checkout", "-q", "b"], check=True)  # the tree equals HEAD again
        ended = await run_to_end(client, "maestro.runFile", env.uri("tests/test_b_added.py"))
        assert ended["failed"] == 1, ended
        node = "tests/test_b_added.py::test_added"
        explained = await request(client, "maestro/explain", {"target": node})
        assert explained["last"] and explained["last"][0]["outcome"] == "failed", explained
        assert explained["selected"] is False  # no change since HEAD: `run impacted` skips it
        assert explained["decision"] == "re-run", (explained["decision"], explained["reasons"])
        assert "skipped" not in explained["text"], explained["text"]
        assert "failed" in explained["text"], explained["text"]
    finally:
        await stop_client(client)
