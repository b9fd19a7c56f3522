"""Run impacted tests from a deleted conftest after its tests already ran again without it (the
daemon's speculation does that seconds after the deletion). The lens on the conftest had said
"▶ 1 impacted test file"; Run impacted then answered "no impacted tests" and ran nothing (the
tests' new records no longer name the deleted file), while the editor still showed the errors
the conftest's fixture had caused. The test files that used it now stay its impacted ones: the
lens counts them and Run impacted serves their current results."""

from __future__ import annotations

import pytest
from conftest import Env, run_to_end, start_client, stop_client
from lsprotocol import types
from workspace_procs import commit_all, write_files

pytestmark = pytest.mark.slow

FILES = {
    "tests/zones/conftest.py": """
        import pytest


        @pytest.fixture(autouse=True)
        def _no_pickles(request):
            if "pickle" in request.node.name:
                raise RuntimeError("pickling is off in this checkout")
        """,
    "tests/zones/test_zones.py": """
        def test_pickle():
            assert True


        def test_zone():
            assert True
        """,
}


async def lens_titles(client: object, uri: str) -> list[str]:
    lenses = await client.text_document_code_lens_async(  # type: ignore[attr-defined]
        types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    return [lens.command.title for lens in lenses or [] if lens.command]


async def test_run_impacted_from_a_deleted_conftest_whose_tests_ran_again(lsp_env: Env) -> None:
    env = lsp_env
    write_files(env.root, FILES)
    commit_all(env.root, "a conftest whose fixture errors")
    client = await start_client(env, "visual_studio_code")
    conftest = env.uri("tests/zones/conftest.py")
    try:
        first = await run_to_end(client, "maestro.runFile", env.uri("tests/zones/test_zones.py"))
        assert first["errors"] == 1 and first["passed"] == 1, first
        (env.root / "tests/zones/conftest.py").unlink()
        assert await lens_titles(client, conftest) == ["▶ 1 impacted test file"]
        # the tests run again without it (as the daemon's speculation does)
        again = await run_to_end(client, "maestro.runFile", env.uri("tests/zones/test_zones.py"))
        assert again["passed"] == 2, again
        assert await lens_titles(client, conftest) == ["▶ 1 impacted test file"]
        ended = await run_to_end(client, "maestro.runImpacted", conftest)
        assert ended["error"] is None, ended["error"]
        assert ended["passed"] == 2 and ended["cachedFiles"] == 1, ended
    finally:
        await stop_client(client)
