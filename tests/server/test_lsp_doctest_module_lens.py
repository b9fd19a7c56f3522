"""A source module pytest also collects for its doctests (`--doctest-modules`, as zipp and many
libraries run): the editor showed it only as a test file ("▶ Run file", its doctests' result) and
never "▶ N impacted test files", so every module of such a project lost the lens that runs what an
edit of it affects. It now has both; a doctest module no other test file imports keeps only its
test lenses."""

from __future__ import annotations

import asyncio

import pytest
from conftest import Env, open_doc, run_to_end, start_client, stop_client
from lsprotocol import types
from pytest_lsp import LanguageClient
from workspace_procs import commit_all, write_files

pytestmark = pytest.mark.slow

FILES = {
    "pyproject.toml": """
        [project]
        name = "doctests"
        version = "0"

        [tool.pytest.ini_options]
        addopts = "--doctest-modules"
        """,
    "pkg/__init__.py": "",
    "pkg/calc.py": '''
        def add(a, b):
            """
            >>> add(1, 2)
            3
            """
            return a + b
        ''',
    "pkg/alone.py": '''
        def one():
            """
            >>> one()
            1
            """
            return 1
        ''',
    "tests/test_calc.py": """
        from pkg.calc import add


        def test_add():
            assert add(2, 2) == 4
        """,
}


async def titles(client: LanguageClient, uri: str) -> list[tuple[int, str]]:
    found = await asyncio.wait_for(
        client.text_document_code_lens_async(
            types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
        ),
        60,
    )
    return [(lens.range.start.line, lens.command.title) for lens in found or [] if lens.command]


async def test_a_doctest_module_has_the_impacted_lens_too(lsp_env: Env) -> None:
    env = lsp_env
    for rel in ("tests/test_slow.py", "tests/test_other.py", "pkg/other.py"):
        (env.root / rel).unlink(missing_ok=True)
    write_files(env.root, FILES)
    commit_all(env.root, "doctest modules")
    client = await start_client(env, "neovim")
    try:
        ended = await run_to_end(client, "maestro.runAll")
        assert ended["failed"] == 0 and ended["passed"] >= 3, ended
        calc = open_doc(client, env, "pkg/calc.py")
        shown = await titles(client, calc)
        assert (0, "▶ Run file") in shown, shown  # its doctests
        assert (0, "▶ 2 impacted test files") in shown, shown  # itself and tests/test_calc.py
        alone = open_doc(client, env, "pkg/alone.py")
        shown = await titles(client, alone)
        assert (0, "▶ Run file") in shown, shown
        assert not any("impacted" in t for _, t in shown), shown
        accepted = await run_to_end(client, "maestro.runImpacted", calc)
        assert sorted(f["target"] for f in accepted["files"]) == [
            "pkg/calc.py",
            "tests/test_calc.py",
        ], accepted
    finally:
        await stop_client(client)
