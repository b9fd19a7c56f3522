"""Several files saved at once with run-on-save (a "save all", a revert of three files): each
save starts a run that supersedes the one before, and every run the editor was told of ends,
even one superseded while the server was still setting up its progress bar."""

from __future__ import annotations

import asyncio

import pytest
from conftest import Env, notes, start_client, stop_client
from lsprotocol import types

pytestmark = pytest.mark.slow

FILES = ["pkg/calc.py", "tests/test_calc.py", "pkg/__init__.py"]


async def test_every_run_started_by_saves_at_once_finishes(lsp_env: Env) -> None:
    env = lsp_env
    client = await start_client(env, "visual_studio_code", {"runOnSave": True})
    try:
        for rel in FILES:
            path = env.root / rel
            path.write_text(path.read_text() + "\n# edited\n")
            client.text_document_did_save(
                types.DidSaveTextDocumentParams(
                    text_document=types.TextDocumentIdentifier(env.uri(rel))
                )
            )
        started: set[str] = set()
        ended: set[str] = set()
        for _ in range(600):
            started = {p["runId"] for p in notes(client, "maestro/runStarted")}
            ended = {p["runId"] for p in notes(client, "maestro/runFinished")}
            if len(started) >= 2 and started <= ended:
                break
            await asyncio.sleep(0.1)
        assert len(started) >= 2, started
        assert started <= ended, f"never finished: {sorted(started - ended)}"
    finally:
        await stop_client(client)
