"""A workspace folder that is the home folder (or /) and no project: what Neovim's recipe sends
when a lone file is opened from $HOME (its root falls back to the current directory). The
server starts no daemon for it and says why once; a project below it still gets its own."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FILES, Env, request, start_client
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from workspace_procs import daemon_processes, no_daemon_left, write_files

pytestmark = pytest.mark.slow


@pytest.fixture
def home_env() -> Iterator[Env]:
    base = Path(tempfile.mkdtemp(prefix="mhome", dir="/tmp"))
    env = Env(base)
    home = (base / "home").resolve()
    write_files(home, {"scratch.py": "def test_scratch():\n    assert True\n"})
    write_files(home / "proj", FILES)
    env.root = home  # the workspace folder the client sends
    env.env["HOME"] = str(home)
    try:
        yield env
    finally:
        no_daemon_left(home / "proj")
        no_daemon_left(home)
        shutil.rmtree(base, ignore_errors=True)


async def lenses(client: object, uri: str) -> list[str]:
    found = await asyncio.wait_for(
        client.text_document_code_lens_async(  # type: ignore[attr-defined]
            types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
        ),
        60,
    )
    return [lens.command.title for lens in found or [] if lens.command]


async def test_home_folder_without_a_project_gets_no_daemon(home_env: Env) -> None:
    env = home_env
    client = await start_client(env, "neovim")
    try:
        scratch = (env.root / "scratch.py").as_uri()
        assert await lenses(client, scratch) == []
        status = await request(client, "maestro/status", {})
        assert status["workspaces"] == []
        with pytest.raises(JsonRpcException) as refused:
            await request(client, "maestro/impactedTargets", {})
        assert refused.value.code == -32001
        await asyncio.sleep(1.0)  # a daemon spawned in the background would show by now
        assert daemon_processes(env.root) == []
        warnings = [m.message for m in client.messages if "is not a project" in m.message]
        assert len(warnings) == 1 and str(env.root) in warnings[0], client.messages

        # a project below the home folder is found from its file, as with no folder at all
        test_uri = (env.root / "proj/tests/test_calc.py").as_uri()
        assert "▶ Run file" in await lenses(client, test_uri)
        status = await request(client, "maestro/status", {})
        assert [w["root"] for w in status["workspaces"]] == [str(env.root / "proj")]
        assert daemon_processes(env.root) == []
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), 15)
        with contextlib.suppress(Exception):
            await client.stop()
