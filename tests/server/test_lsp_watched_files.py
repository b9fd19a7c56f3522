"""An editor reports files created, changed or deleted outside its buffers with
workspace/didChangeWatchedFiles (VS Code does for a file deleted in its explorer). The server
logged "Ignoring notification for unknown method 'workspace/didChangeWatchedFiles'" at every
such report; it now takes it (the daemon's own watcher reports the change to the graph)."""

from __future__ import annotations

import asyncio

import pytest
from conftest import Env, request, start_client, stop_client
from lsprotocol import types

pytestmark = pytest.mark.slow


async def test_a_deleted_file_reported_by_the_editor_logs_nothing(
    lsp_env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    env = lsp_env
    client = await start_client(env, "visual_studio_code")
    try:
        await request(client, "maestro/status", {})
        (env.root / "tests/test_other.py").unlink()
        client.workspace_did_change_watched_files(
            types.DidChangeWatchedFilesParams(
                changes=[
                    types.FileEvent(
                        uri=env.uri("tests/test_other.py"), type=types.FileChangeType.Deleted
                    )
                ]
            )
        )
        # a request after the notification: the server has read it when the answer comes
        await request(client, "maestro/status", {})
        await asyncio.sleep(0.5)
    finally:
        await stop_client(client)
    err = capfd.readouterr().err
    assert "workspace/didChangeWatchedFiles" not in err, err
