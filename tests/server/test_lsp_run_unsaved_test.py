"""The "▶ Run" lens of a test the user has typed but not saved: pytest runs the saved file, which
does not have it. The run says to save the file first, instead of an error telling the user that
pytest refused the node id and that this is Maestro's fault."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Env, open_doc, run_to_end, start_client, stop_client
from lsprotocol import types

pytestmark = pytest.mark.slow

REL = "tests/test_calc.py"
NEW = "\n\ndef test_typed_not_saved():\n    assert 1 + 1 == 2\n"


def _lens_args(lenses: Any, name: str) -> list[Any]:
    for lens in lenses or []:
        args = lens.command.arguments if lens.command else None
        if lens.command and lens.command.command == "maestro.runNode" and name in str(args):
            return list(args)
    raise AssertionError(f"no run lens for {name}")


async def test_running_a_test_only_in_the_unsaved_buffer_says_to_save(lsp_env: Env) -> None:
    env = lsp_env
    client = await start_client(env, "visual_studio_code")
    try:
        uri = open_doc(client, env, REL)
        text = (env.root / REL).read_text()
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text + NEW)],
            )
        )
        lenses = await client.text_document_code_lens_async(
            types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri))
        )
        args = _lens_args(lenses, "test_typed_not_saved")
        ended = await run_to_end(client, "maestro.runNode", *args)
        assert ended["error"] is None, ended["error"]
        assert "save" in (ended["message"] or ""), ended
        assert REL in ended["message"], ended
        shown = [m.message for m in client.messages if "test_typed_not_saved" in m.message]
        assert shown and "save" in shown[0], client.messages
        # a test the saved file has still runs, unsaved edits or not
        saved = await run_to_end(client, "maestro.runNode", f"{REL}::test_add", uri)
        assert saved["error"] is None and saved["passed"] == 1, saved
    finally:
        await stop_client(client)
