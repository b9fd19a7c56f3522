"""An editor asks for a document's lenses once and keeps the answer until the server asks it to
ask again (``workspace/codeLens/refresh``). A lens answer computed, or lost, while the workspace
daemon was still starting must not stay for good: the server asks for a refresh as soon as its
link to the daemon connects.

The slow start is real: the test holds the daemon lock, as a daemon does from its first moment
until it listens, so the server waits for a daemon that is "starting" until the lock is let go.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from conftest import Env, open_doc, start_client, stop_client
from lsprotocol import types

from maestro.daemon.lifecycle import DaemonLock, DaemonPaths

pytestmark = pytest.mark.slow

TESTS = "tests/test_calc.py"


async def test_lenses_refresh_once_the_daemon_link_connects(
    lsp_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = lsp_env
    monkeypatch.setenv("MAESTRO_STATE_DIR", env.env["MAESTRO_STATE_DIR"])
    lock = DaemonLock(DaemonPaths.for_root(env.root).lock)
    assert lock.acquire()
    client = await start_client(env, "visual_studio_code")
    notes: list[Any] = client.maestro_notes  # type: ignore[attr-defined]
    try:
        uri = open_doc(client, env, TESTS)
        asked = asyncio.ensure_future(
            client.text_document_code_lens_async(
                types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
            )
        )
        await asyncio.sleep(1.5)  # the server is waiting for the daemon to listen
        assert "codeLens/refresh" not in notes
        lock.release()

        deadline = time.monotonic() + 60
        while "codeLens/refresh" not in notes:
            assert time.monotonic() < deadline, "no lens refresh after the daemon came up"
            await asyncio.sleep(0.1)
        found = await asyncio.wait_for(asked, 60)
        assert "▶ Run file" in [lens.command.title for lens in found or [] if lens.command]
    finally:
        lock.release()
        await stop_client(client)
