"""`lsp.enabled` off for a workspace: the language server (a real `maestro.server` process over
stdio) serves nothing there and starts no daemon."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import client_capabilities
from pytest_lsp.client import make_test_lsp_client

MAESTRO = str(Path(sys.executable).parent / "maestro")


@pytest.fixture
def base() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mlf", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def test_lsp_enabled_off_serves_nothing_and_starts_no_daemon(base: Path) -> None:
    root = (base / "ws").resolve()
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\nversion = '0'\n")
    (root / "tests" / "test_a.py").write_text("def test_a():\n    assert True\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    env.update(MAESTRO_STATE_DIR=str(base / "st"), MAESTRO_CACHE_DIR=str(base / "ca"))
    off = subprocess.run(
        [MAESTRO, "flags", "set", "lsp.enabled", "false", "--reason", "vendored tree"],
        cwd=root, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert off.returncode == 0, off.stderr

    client = make_test_lsp_client()
    await client.start_io(sys.executable, "-P", "-m", "maestro.server", env=env, cwd=str(root))
    try:
        await asyncio.wait_for(
            client.initialize_session(
                types.InitializeParams(
                    capabilities=client_capabilities("visual_studio_code"),
                    root_uri=root.as_uri(),
                    workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="ws")],
                )
            ),
            30,
        )
        uri = (root / "tests" / "test_a.py").as_uri()
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(uri, "python", 1, (root / "tests" / "test_a.py").read_text())
            )
        )
        lenses = await asyncio.wait_for(
            client.text_document_code_lens_async(
                types.CodeLensParams(types.TextDocumentIdentifier(uri))
            ),
            30,
        )
        assert not lenses
        with pytest.raises(Exception, match="switched off"):
            await asyncio.wait_for(
                client.protocol.send_request_async("maestro/impactedTargets", {"root": str(root)}),
                30,
            )
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), 15)
        with contextlib.suppress(Exception):
            await client.stop()
    status = subprocess.run(
        [MAESTRO, "daemon", "status"], cwd=root, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert "not running" in (status.stdout + status.stderr).lower(), status.stdout + status.stderr
