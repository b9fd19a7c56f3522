"""Hover on the line where a test failed, for a test the file names by an alias of a class
(`TestMachine = Machine.TestCase`, Hypothesis' documented set-up for stateful tests). Before,
the diagnostic was there (pyrsistent's hypothesis_vector_test.py: "PVectorBuilderTests::runTest
failed: AssertionError ...") but the hover said nothing: it looked for the test among the test
functions and classes the file defines, and an alias defines none."""

from __future__ import annotations

import asyncio

import pytest
from conftest import Env, open_doc, run_to_end, start_client, stop_client
from lsprotocol import types
from workspace_procs import commit_all, write_files

pytestmark = pytest.mark.slow

FILES = {
    "tests/test_alias.py": """
        import unittest


        def check(x):
            assert x == 1


        class Machine:
            class TestCase(unittest.TestCase):
                def runTest(self):
                    check(2)


        MachineTests = Machine.TestCase
        """,
}


async def test_hover_on_a_failure_of_an_aliased_test_class_shows_its_report(
    lsp_env: Env,
) -> None:
    env = lsp_env
    write_files(env.root, FILES)
    commit_all(env.root, "alias")
    client = await start_client(env, "visual_studio_code")
    try:
        uri = open_doc(client, env, "tests/test_alias.py")
        done = await run_to_end(client, "maestro.runFile", uri)
        assert done["failed"] == 1, done
        await asyncio.sleep(0.5)
        (diag,) = client.diagnostics.get(uri, [])
        assert diag.range.start.line == 4, diag  # `assert x == 1` in check()
        hover = await asyncio.wait_for(
            client.text_document_hover_async(
                types.HoverParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=diag.range.start,
                )
            ),
            60,
        )
        assert hover is not None
        text = hover.contents.value  # type: ignore[union-attr]
        assert "**tests/test_alias.py::MachineTests::runTest**" in text, text
        assert "Last result: **1 failed**" in text and "assert 2 == 1" in text, text
    finally:
        await stop_client(client)


async def test_an_aliased_test_class_has_its_run_lens_and_last_result(lsp_env: Env) -> None:
    """The alias got no lens of its own: only the file's lens counted its test."""
    env = lsp_env
    write_files(env.root, FILES)
    commit_all(env.root, "alias")
    client = await start_client(env, "visual_studio_code")
    try:
        uri = open_doc(client, env, "tests/test_alias.py")
        done = await run_to_end(client, "maestro.runFile", uri)
        assert done["failed"] == 1, done
        lenses = await asyncio.wait_for(
            client.text_document_code_lens_async(
                types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
            ),
            60,
        )
        at_alias = [
            (lens.command.title, list(lens.command.arguments or []))
            for lens in lenses or []
            if lens.command and lens.range.start.line == 13  # MachineTests = Machine.TestCase
        ]
        assert at_alias[0] == ("▶ Run", ["tests/test_alias.py::MachineTests", uri]), at_alias
        assert at_alias[1][0].startswith("✗ failed"), at_alias
        rerun = await run_to_end(client, "maestro.runNode", *at_alias[0][1])
        assert rerun["failed"] == 1, rerun
    finally:
        await stop_client(client)
