"""`maestro.runImpacted` through a real server and daemon. On a saved edit the impacted files
run in the full run's order, so their results are stored and the same question asked again is
answered from the cache, as `maestro test --impacted` is. On an unsaved edit pytest runs what is
on disk, and the run's end says so."""

from __future__ import annotations

import pytest
from conftest import Env, change_doc, open_doc, run_to_end, start_client, stop_client
from lsprotocol import types
from workspace_procs import commit_all, write_files

pytestmark = pytest.mark.slow

# tests/test_a_far.py reaches pkg/core.py through pkg/mid.py (distance 2), tests/test_b_near.py
# imports it (distance 1): the impacted rows list test_b_near first, pytest collects test_a_far
# first.
FILES = {
    "pkg/core.py": "def base():\n    return 1\n",
    "pkg/mid.py": "from pkg.core import base\n\n\ndef twice():\n    return 2 * base()\n",
    "tests/test_a_far.py": "from pkg.mid import twice\n\n\ndef test_twice():\n"
    "    assert twice() == 2\n",
    "tests/test_b_near.py": "from pkg.core import base\n\n\ndef test_base():\n"
    "    assert base() == 1\n",
}


async def test_impacted_run_results_are_cached(lsp_env: Env) -> None:
    env = lsp_env
    write_files(env.root, FILES)
    commit_all(env.root, "far and near")
    client = await start_client(env, "neovim")
    try:
        (env.root / "pkg/core.py").write_text("def base():\n    return 1  # saved edit\n")
        first = await run_to_end(client, "maestro.runImpacted", env.uri("pkg/core.py"))
        assert (first["passed"], first["ranFiles"]) == (2, 2), first
        assert [f["target"] for f in first["files"]] == [
            "tests/test_a_far.py",
            "tests/test_b_near.py",
        ]
        # nothing changed since: both files come from the cache (test_a_far ran again before,
        # its result withheld because it had run after test_b_near)
        again = await run_to_end(client, "maestro.runImpacted", env.uri("pkg/core.py"))
        assert (again["passed"], again["ranFiles"], again["cachedFiles"]) == (2, 0, 2), again
    finally:
        await stop_client(client)


async def test_a_run_with_unsaved_edits_says_it_ran_the_saved_files(lsp_env: Env) -> None:
    env = lsp_env
    write_files(env.root, FILES)
    commit_all(env.root, "far and near")
    client = await start_client(env, "neovim")
    try:
        uri = open_doc(client, env, "pkg/core.py")
        change_doc(client, uri, "def base():\n    return 2\n")  # breaks both tests, not saved
        outcome = await run_to_end(client, "maestro.runImpacted", uri)
        assert (outcome["passed"], outcome["failed"]) == (2, 0), outcome
        note = "ran the saved files: pkg/core.py has unsaved changes"
        assert outcome["message"] == note
        (token,) = [t for t in client.progress_reports if outcome["runId"] in str(t)]
        end = client.progress_reports[token][-1]
        assert isinstance(end, types.WorkDoneProgressEnd)
        assert end.message == f"2 passed; {note}"
    finally:
        await stop_client(client)
