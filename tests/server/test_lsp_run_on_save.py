"""Run-on-save through a real server and daemon: off by default (a save runs nothing); on, a
save runs the tests the saved file impacts, and a newer save cancels the run still going."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from conftest import Env, finished, notes, start_client
from lsprotocol import types
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.slow


def save(client: LanguageClient, env: Env, rel: str, text: str) -> None:
    (env.root / rel).write_text(text)
    client.text_document_did_save(
        types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(env.uri(rel)))
    )


async def started(client: LanguageClient, count: int, timeout: float = 20) -> list[dict[str, str]]:
    for _ in range(int(timeout / 0.05)):
        found = notes(client, "maestro/runStarted")
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} runs never started: {notes(client, 'maestro/runStarted')}")


async def test_run_on_save(lsp_env: Env) -> None:
    env = lsp_env
    (env.root / "tests/test_other.py").write_text(
        "import time\n\nimport pkg.other\n\n\ndef test_hello():\n"
        "    time.sleep(4)\n    assert pkg.other.hello() == 'hello'\n"
    )
    client = await start_client(env, "neovim")
    try:
        save(client, env, "pkg/other.py", 'def hello():\n    return "hello"  # 1\n')
        await asyncio.sleep(1.5)
        assert notes(client, "maestro/runStarted") == []  # off by default

        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"maestro": {"runOnSave": True}})
        )
        save(client, env, "pkg/other.py", 'def hello():\n    return "hello"  # 2\n')
        (first,) = await started(client, 1)
        assert first["kind"] == "save"
        await asyncio.sleep(2.0)  # pytest is in test_hello's sleep now
        save(client, env, "pkg/other.py", 'def hello():\n    return "hello"  # 3\n')
        second = (await started(client, 2))[1]
        assert second["superseded"] == [first["runId"]]
        ended = await finished(client, first["runId"], 20)
        assert ended["cancelled"] is True
        outcome = await finished(client, second["runId"], 60)
        assert outcome["cancelled"] is False and outcome["passed"] == 1
        assert [f["target"] for f in outcome["files"]] == ["tests/test_other.py"]
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), 15)
        with contextlib.suppress(Exception):
            await client.stop()
