"""Running one test of a file keeps what is known of the file's other tests. Before, the result
of the one test replaced the file's: the other failing tests' diagnostics went away and the
file's lens said only the one test's outcome, though nothing had changed and they still fail."""

from __future__ import annotations

import asyncio

import pytest
from conftest import Env, notes, open_doc, run_to_end, start_client, stop_client
from lsprotocol import types
from test_lsp_outdated import OUTDATED, lenses
from workspace_procs import commit_all, write_files

pytestmark = pytest.mark.slow

FILES = {
    "tests/test_many.py": """
        def test_one():
            assert 1 == 2


        def test_two():
            assert 2 == 3


        def test_three():
            assert 3 == 3
        """,
}


def failing_lines(client: object, uri: str) -> list[int]:
    found = client.diagnostics.get(uri, [])  # type: ignore[attr-defined]
    return sorted(d.range.start.line for d in found)


async def test_running_one_test_keeps_the_other_tests_results(lsp_env: Env) -> None:
    env = lsp_env
    write_files(env.root, FILES)
    commit_all(env.root, "many")
    client = await start_client(env, "visual_studio_code")
    try:
        uri = open_doc(client, env, "tests/test_many.py")
        await run_to_end(client, "maestro.runFile", uri)
        await asyncio.sleep(0.5)
        both = failing_lines(client, uri)
        assert len(both) == 2, both
        assert "last: ✗ 2 failed, 1 passed" in await lenses(client, uri)

        done = await run_to_end(client, "maestro.runNode", "tests/test_many.py::test_one")
        assert done["failed"] == 1
        await asyncio.sleep(0.5)
        # test_two was not run: it still fails, as the run before said
        assert failing_lines(client, uri) == both
        assert "last: ✗ 2 failed, 1 passed" in await lenses(client, uri)
    finally:
        await stop_client(client)


async def test_one_test_run_after_an_edit_leaves_the_others_outdated(lsp_env: Env) -> None:
    """After a saved edit of a source file, one test of a file run from the editor: the file's
    other results are of the earlier inputs. Before, they came back as that run's results and
    the file's lens lost its outdated mark: iniconfig 2.3.1, after breaking iscommentline, Run on
    one test read "last: ✗ 4 failed, 50 passed" where pytest has 7 failed, 47 passed."""
    env = lsp_env
    client = await start_client(env, "neovim")
    try:
        uri = open_doc(client, env, "tests/test_calc.py")
        await run_to_end(client, "maestro.runFile", uri)
        assert "last: ✗ 1 failed, 2 passed" in await lenses(client, uri)

        source = env.root / "pkg/calc.py"
        source.write_text(source.read_text().replace("return a + b", "return a - b"))
        client.text_document_did_save(
            types.DidSaveTextDocumentParams(
                text_document=types.TextDocumentIdentifier(env.uri("pkg/calc.py"))
            )
        )
        for _ in range(100):
            if any(OUTDATED in t for t in await lenses(client, uri)):
                break
            await asyncio.sleep(0.2)

        node = "tests/test_calc.py::TestMore::test_div"
        done = await run_to_end(client, "maestro.runNode", node, uri)
        assert done["passed"] == 1, done
        sent = {
            t["id"]: t["outcome"]
            for batch in notes(client, "maestro/testResults")
            if batch["runId"] == done["runId"]
            for t in batch["tests"]
        }
        # test_add fails now (add subtracts): its pass of before is not this run's result
        assert sent == {node: "passed"}, sent
        shown = await lenses(client, uri)
        assert any(t.startswith("last: ") and t.endswith(OUTDATED) for t in shown), shown
        assert "✓ passed" in " ".join(shown), shown
        assert any(t.startswith("✓ passed") and OUTDATED in t for t in shown), shown  # test_add
        assert any(t.startswith("✓ passed") and OUTDATED not in t for t in shown), shown

        await run_to_end(client, "maestro.runFile", uri)
        shown = await lenses(client, uri)
        assert "last: ✗ 2 failed, 1 passed" in shown and not any(OUTDATED in t for t in shown)
    finally:
        await stop_client(client)
