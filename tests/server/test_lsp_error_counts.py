"""The file lens and the hover count errors in pytest's words: "2 errors", as pytest's summary
says them. Before, a conftest fixture raising for two tests gave the lens
"last: ✗ 2 error, 1 passed" (user trial on pytz in the editor: "4 error, 192 passed")."""

from __future__ import annotations

import asyncio

import pytest
from conftest import Env, open_doc, run_to_end, start_client, stop_client
from test_lsp_outdated import lenses
from workspace_procs import commit_all, write_files

pytestmark = pytest.mark.slow

FILES = {
    "tests/conftest.py": """
        import pytest


        @pytest.fixture(autouse=True)
        def _off(request):
            if "off" in request.node.name:
                raise RuntimeError("off in this checkout")
        """,
    "tests/test_errs.py": """
        def test_off_one():
            pass


        def test_off_two():
            pass


        def test_on():
            pass
        """,
}


async def test_the_lens_says_errors_as_pytest_counts_them(lsp_env: Env) -> None:
    env = lsp_env
    write_files(env.root, FILES)
    commit_all(env.root, "errs")
    client = await start_client(env, "visual_studio_code")
    try:
        uri = open_doc(client, env, "tests/test_errs.py")
        done = await run_to_end(client, "maestro.runFile", uri)
        assert done["errors"] == 2 and done["passed"] == 1, done
        await asyncio.sleep(0.5)
        assert "last: ✗ 2 errors, 1 passed" in await lenses(client, uri)
        done = await run_to_end(client, "maestro.runNode", "tests/test_errs.py::test_off_one")
        await asyncio.sleep(0.5)
        assert "last: ✗ 2 errors, 1 passed" in await lenses(client, uri)
    finally:
        await stop_client(client)
