"""Results survive a restart: after a run, a new server (and a new daemon) shows the stored
result of a test file's current inputs as soon as the file is opened (lenses, diagnostics, the
test explorer), marked cached with when and where it ran; once an input changed, nothing."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from conftest import (
    FAIL_TEST_LINE,
    RAISE_LINE,
    Env,
    kill_daemons,
    notes,
    open_doc,
    run_to_end,
    start_client,
)
from lsprotocol import types
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.slow


async def stop(client: LanguageClient) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.shutdown_session(), 15)
    with contextlib.suppress(Exception):
        await client.stop()


async def titles(client: LanguageClient, uri: str) -> list[str]:
    found = await asyncio.wait_for(
        client.text_document_code_lens_async(
            types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
        ),
        60,
    )
    return [lens.command.title for lens in found or [] if lens.command]


async def until(check: object, timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.1)):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError("never happened")


async def test_stored_results_after_a_restart(lsp_env: Env) -> None:
    env = lsp_env
    client = await start_client(env, "visual_studio_code")
    try:
        outcome = await run_to_end(client, "maestro.runFile", env.uri("tests/test_calc.py"))
        assert outcome["passed"] == 2 and outcome["failed"] == 1
    finally:
        await stop(client)
    kill_daemons(env.root)

    # A fresh server and daemon: opening the file shows the stored result.
    client = await start_client(env, "visual_studio_code")
    try:
        uri = open_doc(client, env, "tests/test_calc.py")
        found = await titles(client, uri)
        assert any(t.startswith("last: ✗ 1 failed, 2 passed (cached, ran") for t in found), found
        assert any(t.startswith("✓ passed") and "(cached, ran just now here)" in t for t in found)
        await until(lambda: client.diagnostics.get(uri))
        diag = client.diagnostics[uri][0]
        assert "test_div_zero failed" in diag.message and "cached result, ran" in diag.message
        # at the failing assert (line 9), with the raising line in pkg/calc.py as related
        assert diag.range.start.line == FAIL_TEST_LINE - 1
        assert diag.related_information
        assert diag.related_information[0].location.range.start.line == RAISE_LINE - 1
        await until(lambda: notes(client, "maestro/testExplorer/end"))
        ended = notes(client, "maestro/testExplorer/end")
        assert ended[0]["summary"]["label"] == "stored results"
        progress = [p for p in notes(client, "maestro/testExplorer/progress") if p["cached"]]
        assert {p["state"] for p in progress} == {"passed", "failed"}
    finally:
        await stop(client)
    kill_daemons(env.root)

    # An input of test_calc.py changed: no stored result matches, no result is shown.
    calc = env.root / "pkg" / "calc.py"
    calc.write_text(calc.read_text().replace("return a + b", "return b + a"))
    client = await start_client(env, "visual_studio_code")
    try:
        uri = open_doc(client, env, "tests/test_calc.py")
        found = await titles(client, uri)
        assert "▶ Run file" in found
        assert not any("passed" in t or "failed" in t for t in found), found
        await asyncio.sleep(1.0)
        assert not client.diagnostics.get(uri)
    finally:
        await stop(client)
