"""A run's progress counts each test once. When a file ran in part and a test failed, the daemon
re-runs the file up to that test in a second pytest session (as pytest runs it): the tests of
both sessions are the same tests, and the editor's "done/total" must end at 100%."""

from __future__ import annotations

import pytest
from conftest import PART_FILES, Env, notes, run_to_end, start_client, stop_client
from lsprotocol import types
from workspace_procs import commit_all, write_files

pytestmark = pytest.mark.slow


async def test_a_file_confirmed_whole_counts_its_tests_once(lsp_env: Env) -> None:
    env = lsp_env
    write_files(env.root, PART_FILES)
    commit_all(env.root, "a file whose tests partly read pkg/lib.py")
    client = await start_client(env, "visual_studio_code")
    try:
        uri = env.uri("tests/test_part.py")
        first = await run_to_end(client, "maestro.runFile", uri)
        assert first["passed"] == 3, first
        # a first run may judge the file whole: the next one records each test's own reads
        (env.root / "tests/test_part.py").write_text(
            (env.root / "tests/test_part.py").read_text().replace("assert True", "assert 1")
        )
        second = await run_to_end(client, "maestro.runFile", uri)
        assert second["passed"] == 3, second
        (env.root / "pkg/lib.py").write_text("def value():\n    return 2\n")
        ended = await run_to_end(client, "maestro.runImpacted", env.uri("pkg/lib.py"))
        assert (ended["passed"], ended["failed"]) == (1, 2), ended
        counts = [
            (p["done"], p["total"])
            for p in notes(client, "maestro/runProgress")
            if p["runId"] == ended["runId"] and p.get("total")
        ]
        # three tests in all: never more, and the last count is all of them (it was 3/5: the
        # file's second session counted its tests again)
        assert counts and all(total <= 3 for _, total in counts), counts
        assert counts[-1] == (3, 3), counts
        assert (ended["done"], ended["total"]) == (3, 3), ended
        (token,) = [t for t in client.progress_reports if ended["runId"] in str(t)]
        percent = [
            r.percentage
            for r in client.progress_reports[token]
            if isinstance(r, types.WorkDoneProgressReport) and r.percentage is not None
        ]
        assert percent[-1] == 100, percent
        # the file ran in part, then whole up to its failure: what `maestro test` prints of
        # that confirmation reaches the Maestro output
        (describe,) = [f["describe"] for f in ended["files"]]
        assert describe.startswith("2 of 3 tests"), describe
        logged = [m.message for m in client.log_messages]
        assert any(
            m.startswith(f"{ended['runId']}: ") and "when run without the other tests" in m
            for m in logged
        ), logged
    finally:
        await stop_client(client)
