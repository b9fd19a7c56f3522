"""Hover on a helper line many failing tests share (pytz's `_test_all`: 39 tests of a class and
its subclasses fail at one assert). Each test has its diagnostic there; the hover named one
test only, and not the first diagnostic's (it preferred a test the file defines over one a
subclass inherits). It now says how many tests failed at the line, names the first few in the
diagnostics' order and shows the first one's report."""

from __future__ import annotations

import asyncio

import pytest
from conftest import Env, open_doc, run_to_end, start_client, stop_client
from lsprotocol import types
from workspace_procs import commit_all, write_files

pytestmark = pytest.mark.slow

FILES = {
    "tests/test_shared.py": """
        import unittest


        def check(x):
            assert x == 1


        class Checks:
            def test_a(self):
                check(self.value)

            def test_c(self):
                check(self.value)


        class TestEarly(Checks, unittest.TestCase):
            value = 2


        class TestMid(Checks, unittest.TestCase):
            value = 3


        class TestLate(unittest.TestCase):
            def test_b(self):
                check(4)

            def test_d(self):
                check(5)
        """,
}


async def test_hover_on_a_line_shared_by_failing_tests_counts_and_names_them(
    lsp_env: Env,
) -> None:
    env = lsp_env
    write_files(env.root, FILES)
    commit_all(env.root, "shared helper")
    client = await start_client(env, "visual_studio_code")
    try:
        uri = open_doc(client, env, "tests/test_shared.py")
        done = await run_to_end(client, "maestro.runFile", uri)
        assert done["failed"] == 6, done
        await asyncio.sleep(0.5)
        diags = list(client.diagnostics.get(uri, []))
        assert len(diags) == 6 and {d.range.start.line for d in diags} == {4}, diags
        first = diags[0].data["nodeid"]  # type: ignore[index]
        assert first == "tests/test_shared.py::TestEarly::test_a", first
        hover = await asyncio.wait_for(
            client.text_document_hover_async(
                types.HoverParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=diags[0].range.start,
                )
            ),
            60,
        )
        assert hover is not None
        text = hover.contents.value  # type: ignore[union-attr]
        head = text.split("\n", 1)[0]
        assert head == (
            "**6 tests failed at this line**: TestEarly::test_a, TestEarly::test_c, "
            "TestMid::test_a, TestMid::test_c, TestLate::test_b and 1 more"
        ), text
        # the report shown is the first diagnostic's
        assert f"**{first}**" in text and "assert 2 == 1" in text, text
    finally:
        await stop_client(client)
