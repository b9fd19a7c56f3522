"""What a run sends an editor, through a real server and daemon: every test's result once, in
``maestro/testResults`` batches (cached ones included), and a ``maestro/runFinished`` that
carries the counts and the files but does not repeat the results. A client that declines the
batches (the VS Code extension: the explorer's notifications carry the results) gets none, and
every client learns the protocol's version from the server's capabilities."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from conftest import PART_FILES, Env, notes, run_to_end, start_client, stop_client
from workspace_procs import commit_all, write_files

from maestro.server import methods

pytestmark = pytest.mark.slow

MANY = 60  # parametrized tests in test_many.py: several batches' worth of results per run


def streamed(client: Any, run_id: str) -> list[dict[str, Any]]:
    """Every test result the run's ``maestro/testResults`` batches carried, in order."""
    return [
        test
        for batch in notes(client, "maestro/testResults")
        if batch["runId"] == run_id
        for test in batch["tests"]
    ]


def expected(cached_many: bool) -> dict[str, tuple[str, bool]]:
    """node id -> (outcome, cached) of a run of everything."""
    out = {
        "tests/test_calc.py::test_add": ("passed", False),
        "tests/test_calc.py::test_div_zero": ("failed", False),
        "tests/test_calc.py::TestMore::test_div": ("passed", False),
        "tests/test_other.py::test_hello": ("passed", cached_many),
        "tests/test_many.py::test_skipped": ("skipped", cached_many),
    }
    for n in range(MANY):
        out[f"tests/test_many.py::test_n[{n}]"] = ("passed", cached_many)
    return out


async def test_each_result_comes_once_and_run_finished_does_not_repeat_them(
    lsp_env: Env,
) -> None:
    (lsp_env.root / "tests/test_slow.py").unlink()
    write_files(
        lsp_env.root,
        {
            "tests/test_many.py": f"""
                import pytest


                @pytest.mark.parametrize("n", range({MANY}))
                def test_n(n):
                    assert n >= 0


                @pytest.mark.skip(reason="not today")
                def test_skipped():
                    pass
                """
        },
    )
    commit_all(lsp_env.root, "many")
    client = await start_client(lsp_env, "neovim", explorer=False)
    try:
        init = client.maestro_init  # type: ignore[attr-defined]
        assert init.capabilities.experimental == {"maestroProtocol": methods.PROTOCOL_VERSION}

        # a cold run: results of the tests as they finish; then a warm one: test_calc.py
        # re-runs (it failed), the other two files are served from the cache
        for run, cached_many in ((1, False), (2, True)):
            outcome = await run_to_end(client, "maestro.runAll")
            assert outcome["error"] is None, outcome
            got = streamed(client, outcome["runId"])
            ids = Counter(t["id"] for t in got)
            assert [i for i, n in ids.items() if n > 1] == [], f"run {run}: sent twice"
            want = expected(cached_many)
            assert {t["id"]: (t["outcome"], t["cached"]) for t in got} == want, f"run {run}"
            assert all(t["runId"] == outcome["runId"] for t in got)
            assert (outcome["passed"], outcome["failed"], outcome["skipped"]) == (MANY + 3, 1, 1)
            assert outcome["cachedFiles"] == (2 if cached_many else 0)
            # the end: counts and files, how many results were sent, not the results again
            assert outcome["results"] == len(want)
            files = {f["target"]: f for f in outcome["files"]}
            assert {t: (f["cached"], f["tests"]) for t, f in files.items()} == {
                "tests/test_calc.py": (False, 3),
                "tests/test_other.py": (cached_many, 1),
                "tests/test_many.py": (cached_many, MANY + 1),
            }
            assert "test_n[7]" not in json.dumps(outcome)
    finally:
        await stop_client(client)

    # a client that declines the batches gets none, and the same end
    client = await start_client(
        lsp_env, "visual_studio_code", experimental={"maestroTestResults": False}
    )
    try:
        outcome = await run_to_end(client, "maestro.runAll")
        assert outcome["cachedFiles"] == 2 and outcome["failed"] == 1
        assert notes(client, "maestro/testResults") == []
        assert "results" not in outcome
        # its results came through the explorer's notifications, each test once
        states = Counter(
            p["nodeid"]
            for p in notes(client, "maestro/testExplorer/progress")
            if p["runId"] == outcome["runId"] and p["state"] not in ("enqueued", "started")
        )
        assert set(states) == set(expected(True)) and set(states.values()) == {1}
    finally:
        await stop_client(client)


async def test_a_test_run_again_in_a_second_session_is_sent_once(lsp_env: Env) -> None:
    """A file run in part with a failure is run again whole up to it, in a second pytest session:
    the test that ran in both sessions, with the same outcome, is still sent once."""
    env = lsp_env
    write_files(env.root, PART_FILES)
    commit_all(env.root, "a file whose tests partly read pkg/lib.py")
    client = await start_client(env, "neovim", explorer=False)
    try:
        uri = env.uri("tests/test_part.py")
        assert (await run_to_end(client, "maestro.runFile", uri))["passed"] == 3
        # a first run may judge the file whole: the next one records each test's own reads
        (env.root / "tests/test_part.py").write_text(
            (env.root / "tests/test_part.py").read_text().replace("assert True", "assert 1")
        )
        assert (await run_to_end(client, "maestro.runFile", uri))["passed"] == 3
        (env.root / "pkg/lib.py").write_text("def value():\n    return 2\n")
        ended = await run_to_end(client, "maestro.runImpacted", env.uri("pkg/lib.py"))
        assert (ended["passed"], ended["failed"]) == (1, 2), ended
        got = streamed(client, ended["runId"])
        assert sorted(t["id"] for t in got) == [
            "tests/test_part.py::test_other",
            "tests/test_part.py::test_uses_value",
            "tests/test_part.py::test_uses_value_too",
        ], got
        assert {t["id"]: t["outcome"] for t in got} == {
            "tests/test_part.py::test_other": "passed",
            "tests/test_part.py::test_uses_value": "failed",
            "tests/test_part.py::test_uses_value_too": "failed",
        }
        assert ended["results"] == 3
    finally:
        await stop_client(client)
