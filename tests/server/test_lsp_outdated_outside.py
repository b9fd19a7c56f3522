"""A result whose inputs changed where the editor does not save Python is marked outdated too: a
data file a test reads saved in the editor, a module changed on disk by another program (a
`git checkout`, a formatter), a module deleted. Before, the lens kept "✓ passed (cached)" above
a test that now fails or cannot even be collected, until the next run."""

from __future__ import annotations

import asyncio

import pytest
from conftest import Env, open_doc, run_to_end, start_client, stop_client
from lsprotocol import types
from test_lsp_outdated import OUTDATED, lenses, settled
from workspace_procs import commit_all, write_files

pytestmark = pytest.mark.slow

DATA_FILES = {
    "tests/data/value.txt": "1\n",
    "tests/test_data.py": """
        from pathlib import Path


        def test_value():
            assert (Path(__file__).parent / "data/value.txt").read_text() == "1\\n"
        """,
}


async def test_changes_outside_the_editor_mark_results_outdated(lsp_env: Env) -> None:
    env = lsp_env
    write_files(env.root, DATA_FILES)
    commit_all(env.root, "data")
    client = await start_client(env, "visual_studio_code")
    try:
        data_uri, other_uri = (
            open_doc(client, env, "tests/test_data.py"),
            env.uri("tests/test_other.py"),
        )
        calc_uri = open_doc(client, env, "tests/test_calc.py")
        open_doc(client, env, "tests/test_other.py")
        for uri in (data_uri, other_uri, calc_uri):
            await run_to_end(client, "maestro.runFile", uri)
        found = await settled(client, data_uri, outdated=False)
        assert any(t.startswith("last: ✓ passed") for t in found), found

        # a data file the test reads, saved in the editor
        (env.root / "tests/data/value.txt").write_text("2\n")
        client.text_document_did_save(
            types.DidSaveTextDocumentParams(
                text_document=types.TextDocumentIdentifier(env.uri("tests/data/value.txt"))
            )
        )
        found = await settled(client, data_uri, outdated=True)
        assert any(t.startswith("last: ✓ passed") and t.endswith(OUTDATED) for t in found), found

        # a module changed on disk with no word to the server (another program wrote it)
        source = env.root / "pkg/other.py"
        source.write_text(source.read_text().replace('"hello"', '"bye"'))
        found = await settled(client, other_uri, outdated=True)
        assert any(t.startswith("last: ✓ passed") and t.endswith(OUTDATED) for t in found), found
        # a test file that reads neither keeps its result as it is
        await asyncio.sleep(1)
        assert not any(OUTDATED in t for t in await lenses(client, calc_uri))

        # a run: results of the current inputs, the marks go
        await run_to_end(client, "maestro.runFile", other_uri)
        found = await settled(client, other_uri, outdated=False)
        assert any(t.startswith("last: ✗ failed") for t in found), found

        # the module deleted: the test file that imports it can no longer be collected
        source.unlink()
        await settled(client, other_uri, outdated=True)
    finally:
        await stop_client(client)
