"""`maestro/explain` of a test pytest collected but the file's text does not show (made by a
metaclass or a loop from data files, as Python-Markdown's legacy tests are): its results know
it, so explain answers for it instead of saying the file has no such test."""

from __future__ import annotations

import pytest
from conftest import Env, request, run_to_end, start_client, stop_client
from workspace_procs import commit_all, write_files

pytestmark = pytest.mark.slow

FILES = {
    "tests/test_generated.py": """
        class TestData:
            pass


        for _name in ("alpha", "beta"):
            def _check(self, name=_name):
                assert name != "beta"

            setattr(TestData, f"test_{_name}", _check)
        """,
}


async def test_explain_a_generated_test(lsp_env: Env) -> None:
    env = lsp_env
    write_files(env.root, FILES)
    commit_all(env.root, "tests made by a loop")
    client = await start_client(env, "neovim")
    try:
        ended = await run_to_end(client, "maestro.runFile", env.uri("tests/test_generated.py"))
        assert (ended["passed"], ended["failed"]) == (1, 1), ended
        node = "tests/test_generated.py::TestData::test_beta"
        explained = await request(client, "maestro/explain", {"target": node})
        assert "has no test" not in explained["text"], explained["text"]
        assert explained["decision"] != "unknown", explained
        assert [t["outcome"] for t in explained["last"]] == ["failed"], explained["last"]
        # a name pytest never collected is still refused
        absent = await request(
            client, "maestro/explain", {"target": "tests/test_generated.py::TestData::test_gamma"}
        )
        assert absent["decision"] == "unknown"
        assert "has no test TestData::test_gamma" in absent["text"], absent["text"]
    finally:
        await stop_client(client)
