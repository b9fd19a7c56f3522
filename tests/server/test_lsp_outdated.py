"""A result of other inputs is marked: after a run, a saved edit of a test file or of a source
file it imports marks that file's last result (its lenses, and the hover on its tests, which
said "Last result: 1 passed" under a lens saying outdated) outdated, a save that changes nothing
does not, and the next result clears the mark."""

from __future__ import annotations

import asyncio

import pytest
from conftest import Env, open_doc, run_to_end, start_client, stop_client
from lsprotocol import types
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.slow

OUTDATED = "(outdated: edited since)"
TEST_HELLO_LINE = 3  # tests/test_other.py's `def test_hello():` (0-based)


def save(client: LanguageClient, env: Env, rel: str, text: str | None = None) -> None:
    if text is not None:
        (env.root / rel).write_text(text)
    client.text_document_did_save(
        types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(env.uri(rel)))
    )


async def lenses(client: LanguageClient, uri: str) -> list[str]:
    found = await asyncio.wait_for(
        client.text_document_code_lens_async(
            types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
        ),
        60,
    )
    return [lens.command.title for lens in found or [] if lens.command]


async def hover(client: LanguageClient, uri: str, line: int) -> str:
    found = await asyncio.wait_for(
        client.text_document_hover_async(
            types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=5),
            )
        ),
        60,
    )
    assert found is not None and isinstance(found.contents, types.MarkupContent), found
    return found.contents.value


async def settled(
    client: LanguageClient, uri: str, outdated: bool, timeout: float = 20
) -> list[str]:
    """The file's lenses once they say (or no longer say) outdated."""
    found: list[str] = []
    for _ in range(int(timeout / 0.2)):
        found = await lenses(client, uri)
        if any(OUTDATED in t for t in found) == outdated:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"outdated={outdated} never: {found}")


async def test_saved_edits_mark_last_results_outdated(lsp_env: Env) -> None:
    env = lsp_env
    client = await start_client(env, "neovim")
    try:
        calc, other = "tests/test_calc.py", "tests/test_other.py"
        calc_uri, other_uri = open_doc(client, env, calc), open_doc(client, env, other)
        open_doc(client, env, "pkg/other.py")
        for uri in (calc_uri, other_uri):
            await run_to_end(client, "maestro.runFile", uri)
        found = await settled(client, other_uri, outdated=False)
        assert any(t.startswith("last: ✓ passed") for t in found), found

        # a save that changes nothing: the results stand
        save(client, env, other)
        save(client, env, "pkg/other.py")
        await asyncio.sleep(2)
        assert not any(OUTDATED in t for t in await lenses(client, other_uri))

        # a source file test_other.py imports, edited and saved: its result is outdated, the
        # result of test_calc.py (which does not import it) is not
        source = env.root / "pkg/other.py"
        save(client, env, "pkg/other.py", source.read_text() + "\n\ndef bye():\n    return 1\n")
        found = await settled(client, other_uri, outdated=True)
        assert any(t.startswith("last: ✓ passed") and t.endswith(OUTDATED) for t in found), found
        assert not any(OUTDATED in t for t in await lenses(client, calc_uri))
        shown = await hover(client, other_uri, TEST_HELLO_LINE)
        assert "Last result: **1 passed**" in shown and OUTDATED in shown, shown

        # a run: a result of the current inputs, the mark is gone
        await run_to_end(client, "maestro.runFile", other_uri)
        await settled(client, other_uri, outdated=False)
        assert OUTDATED not in await hover(client, other_uri, TEST_HELLO_LINE)

        # the test file itself, edited and saved
        text = (env.root / calc).read_text()
        save(client, env, calc, text + "\n\ndef test_more():\n    assert True\n")
        found = await settled(client, calc_uri, outdated=True)
        assert any(t.startswith("last: ✗ 1 failed") and t.endswith(OUTDATED) for t in found)
    finally:
        await stop_client(client)
