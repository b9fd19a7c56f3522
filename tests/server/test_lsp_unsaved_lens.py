"""A test file edited but not saved: its result lenses are of the saved text, and say so. A test
changed in the buffer to fail no longer reads a bare "✓ passed" above it; undoing the edit takes
the mark away."""

from __future__ import annotations

import asyncio

import pytest
from conftest import Env, open_doc, run_to_end, start_client, stop_client
from lsprotocol import types
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.slow

REL = "tests/test_calc.py"
MARK = "(unsaved edit)"


async def lenses(client: LanguageClient, uri: str) -> list[tuple[int, str]]:
    found = await asyncio.wait_for(
        client.text_document_code_lens_async(
            types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
        ),
        60,
    )
    return [(lens.range.start.line, lens.command.title) for lens in found or [] if lens.command]


def change(client: LanguageClient, uri: str, version: int, text: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


async def test_result_lenses_of_an_unsaved_test_file_say_so(lsp_env: Env) -> None:
    env = lsp_env
    client = await start_client(env, "visual_studio_code")
    try:
        ended = await run_to_end(client, "maestro.runFile", env.uri(REL))
        assert ended["passed"] >= 1, ended
        uri = open_doc(client, env, REL)
        saved = (env.root / REL).read_text()
        results = [t for _, t in await lenses(client, uri) if t.startswith(("✓", "last: "))]
        assert results and not any(MARK in t for t in results), results
        change(client, uri, 2, saved.replace("== 3", "== 4"))
        results = [t for _, t in await lenses(client, uri) if t.startswith(("✓", "last: "))]
        assert results and all(MARK in t for t in results), results
        change(client, uri, 3, saved)
        results = [t for _, t in await lenses(client, uri) if t.startswith(("✓", "last: "))]
        assert results and not any(MARK in t for t in results), results
    finally:
        await stop_client(client)
