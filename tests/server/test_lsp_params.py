"""Parametrized tests through a real server and daemon: one diagnostic per failing assert with
the failing parameter ids listed (not one per parameter set), honest counts (total = test nodes
selected), real durations, the per-function lenses switched off (VS Code's default), and
`maestro/explain` of one parameter set (unknown when the function has no such set)."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap

from conftest import Env, notes, open_doc, request, run_to_end, start_client
from lsprotocol import types

PARAM_TEST = """
import time

import pytest


@pytest.mark.parametrize("n", range(30))
def test_many(n):
    assert n < 5


@pytest.mark.parametrize("n", [1, 2])
def test_slowish(n):
    time.sleep(0.3)
"""


async def test_parametrized_failures_are_grouped(lsp_env: Env) -> None:
    env = lsp_env
    (env.root / "tests/test_param.py").write_text(textwrap.dedent(PARAM_TEST).lstrip())
    client = await start_client(env, "visual_studio_code")
    try:
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(
                settings={"maestro": {"codeLens": {"testFunctions": False}}}
            )
        )
        uri = open_doc(client, env, "tests/test_param.py")
        outcome = await run_to_end(client, "maestro.runFile", uri)
        assert outcome["passed"] == 7 and outcome["failed"] == 25

        progress = [
            p for p in notes(client, "maestro/runProgress") if p["runId"] == outcome["runId"]
        ]
        assert progress[-1]["total"] == 32 and progress[-1]["done"] == 32
        assert all(p["total"] in (None, 32) for p in progress)

        diags = client.diagnostics[uri]
        assert len(diags) == 1, [d.message for d in diags]
        (diag,) = diags
        assert diag.range.start.line == 7  # `assert n < 5`
        assert "test_many (25 parameter sets: [5], [6]," in diag.message
        assert "and 15 more" in diag.message
        assert isinstance(diag.data, dict) and len(diag.data["nodeids"]) == 25

        explorer = [
            p
            for p in notes(client, "maestro/testExplorer/progress")
            if p["runId"] == outcome["runId"] and p["state"] in ("passed", "failed")
        ]
        many = [p for p in explorer if p["id"] == "tests/test_param.py::test_many"]
        assert len(many) == 30 and {p["nodeid"] for p in many} >= {
            "tests/test_param.py::test_many[0]",
            "tests/test_param.py::test_many[29]",
        }
        slow = [p for p in explorer if p["id"] == "tests/test_param.py::test_slowish"]
        assert all(p["durationMs"] >= 300 for p in slow), slow

        # again: only the failing parameter sets re-run; the explorer still gets every result
        again = await run_to_end(client, "maestro.runFile", uri)
        states = {
            p["nodeid"]: p["state"]
            for p in notes(client, "maestro/testExplorer/progress")
            if p["runId"] == again["runId"] and "nodeid" in p
        }
        assert len(states) == 32, states
        assert states["tests/test_param.py::test_many[0]"] == "passed"

        found = await client.text_document_code_lens_async(
            types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        titles = [lens.command.title for lens in found or [] if lens.command]
        assert "▶ Run file" in titles and "▶ Run" not in titles

        # explain one parameter set: its own result; one that does not exist: unknown
        one = await request(
            client, "maestro/explain", {"target": "tests/test_param.py::test_many[3]"}
        )
        assert [r["id"] for r in one["last"]] == ["tests/test_param.py::test_many[3]"], one
        assert one["last"][0]["outcome"] == "passed" and one["decision"] != "unknown"
        gone = await request(
            client, "maestro/explain", {"target": "tests/test_param.py::test_many[99]"}
        )
        assert gone["decision"] == "unknown" and gone["last"] == [], gone
        assert "no parameter set [99]" in gone["text"], gone
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), 15)
        with contextlib.suppress(Exception):
            await client.stop()


async def test_a_module_level_skip_counts_in_the_progress_total(lsp_env: Env) -> None:
    """pytest reports a module-level skip while collecting, before the items are known: the
    count must not pass the total (it said 1/0, and structlog's run 856/855)."""
    env = lsp_env
    skipped = "import pytest\n\npytest.skip('no twisted', allow_module_level=True)\n"
    (env.root / "tests/test_optional.py").write_text(skipped)
    client = await start_client(env, "visual_studio_code")
    try:
        uri = open_doc(client, env, "tests/test_optional.py")
        outcome = await run_to_end(client, "maestro.runFile", uri)
        assert outcome["skipped"] == 1
        progress = [
            p for p in notes(client, "maestro/runProgress") if p["runId"] == outcome["runId"]
        ]
        assert (progress[-1]["done"], progress[-1]["total"]) == (1, 1)
        assert all(p["total"] is None or p["done"] <= p["total"] for p in progress)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), 15)
        with contextlib.suppress(Exception):
            await client.stop()
