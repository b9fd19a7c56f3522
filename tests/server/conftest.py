"""Fixtures for the LSP end-to-end tests: a real workspace (git repo, failing test, slow test), a
real `python -P -m maestro.server` over stdio (cwd = the workspace), a real daemon it starts.

State and cache dirs live directly under /tmp (AF_UNIX paths are short); every daemon of the
workspace is killed in teardown, and the test fails if one survives.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from lsprotocol import types
from project_python import project_python
from pytest_lsp import LanguageClient, client_capabilities
from pytest_lsp.client import make_test_lsp_client
from workspace_procs import (
    CALC_FAIL_LINE,
    CALC_FILES,
    CALC_RAISE_LINE,
    OTHER_FILES,
    commit_all,
    kill_daemons,  # noqa: F401 (the tests here import it from conftest)
    no_daemon_left,
    pyproject,
    write_files,
)

from maestro.server.util import plain

if TYPE_CHECKING:
    from aiohttp import web

FILES = {
    "pyproject.toml": pyproject("lspdemo"),
    **CALC_FILES,
    **OTHER_FILES,
    "tests/test_slow.py": """
        import time


        def test_slow():
            time.sleep(60)
        """,
}

# test_calc.py lines (1-based): test_div_zero's assert is line 9; div raises at pkg/calc.py:7.
FAIL_TEST_LINE = CALC_FAIL_LINE
RAISE_LINE = CALC_RAISE_LINE


# A file whose tests read pkg/lib.py in part: a change to it runs the file in part, and a failure
# there makes the daemon run the file again whole up to it, in a second pytest session
PART_FILES = {
    "pkg/lib.py": "def value():\n    return 1\n",
    "tests/test_part.py": """
        import pkg.lib


        def test_uses_value():
            assert pkg.lib.value() == 1


        def test_other():
            assert True


        def test_uses_value_too():
            assert pkg.lib.value() + 1 == 2
        """,
}


def write_workspace(root: Path) -> None:
    write_files(root, FILES)
    commit_all(root, "init")


class Env:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = (base / "ws").resolve()
        self.env = {
            **os.environ,
            "MAESTRO_STATE_DIR": str(base / "st"),
            "MAESTRO_CACHE_DIR": str(base / "ca"),
            "MAESTRO_DAEMON_START_TIMEOUT": "60",
            "MAESTRO_WATCH_STEP_MS": "20",
        }
        self.env.pop("XDG_RUNTIME_DIR", None)
        self.env.pop("MAESTRO_DAEMON_IDLE", None)

    def uri(self, rel: str) -> str:
        return (self.root / rel).as_uri()


@pytest.fixture
def lsp_env() -> Iterator[Env]:
    base = Path(tempfile.mkdtemp(prefix="mlsp", dir="/tmp"))
    env = Env(base)
    env.root.mkdir()
    write_workspace(env.root)
    try:
        yield env
    finally:
        no_daemon_left(env.root)
        shutil.rmtree(base, ignore_errors=True)


def capabilities(
    profile: str, explorer: bool = True, experimental: dict[str, Any] | None = None
) -> types.ClientCapabilities:
    caps = client_capabilities(profile)
    declared = {"maestroTestExplorer": True} if explorer else {}
    if declared or experimental:
        caps.experimental = {**declared, **(experimental or {})}
    return caps


async def start_client(
    env: Env,
    profile: str,
    options: dict[str, Any] | None = None,
    explorer: bool = True,
    experimental: dict[str, Any] | None = None,
) -> LanguageClient:
    """A server started in the workspace and initialized; ``options`` go over the default
    initialization options; ``explorer``: the client declares the test-explorer protocol;
    ``experimental``: more client capabilities. The server's answer is ``client.maestro_init``."""
    client = make_test_lsp_client()
    client.maestro_notes = []  # type: ignore[attr-defined]

    @client.feature(types.WORKSPACE_CODE_LENS_REFRESH)
    def code_lens_refresh(params: Any) -> None:
        client.maestro_notes.append("codeLens/refresh")  # type: ignore[attr-defined]

    for method in (
        "maestro/testResults", "maestro/runStarted", "maestro/runProgress",
        "maestro/runFinished", "maestro/statusChanged", "maestro/policyIncident",
        "maestro/remoteBackoff",
        "maestro/testExplorer/begin",
        "maestro/testExplorer/progress", "maestro/testExplorer/end",
        "maestro/testExplorer/didChange",
    ):  # fmt: skip

        @client.feature(method)
        def note(params: Any, method: str = method) -> None:
            client.maestro_notes.append((method, plain(params)))  # type: ignore[attr-defined]

    await client.start_io(
        sys.executable, "-P", "-m", "maestro.server", env=env.env, cwd=str(env.root)
    )
    client.maestro_init = await asyncio.wait_for(  # type: ignore[attr-defined]
        client.initialize_session(
            types.InitializeParams(
                capabilities=capabilities(profile, explorer, experimental),
                root_uri=env.root.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=env.root.as_uri(), name="ws")],
                initialization_options={
                    "interpreter": str(project_python()),
                    "debounceMs": 50,
                    **(options or {}),
                },
            )
        ),
        30,
    )
    return client


@pytest.fixture(params=["visual_studio_code", "neovim"])
async def lsp(request: pytest.FixtureRequest, lsp_env: Env) -> AsyncIterator[LanguageClient]:
    client = await start_client(lsp_env, request.param)
    client.maestro_env = lsp_env  # type: ignore[attr-defined]
    try:
        yield client
    finally:
        await stop_client(client)


async def stop_client(client: LanguageClient) -> None:
    """Shut the session down politely, then stop the server whatever that did."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.shutdown_session(), 15)
    with contextlib.suppress(Exception):
        await client.stop()


@contextlib.asynccontextmanager
async def rate_limited_remote(
    env: Env,
    data_dir: Path,
    tenant_policy: dict[str, Any],
    on_response: Callable[[web.Request, web.StreamResponse], Awaitable[None]] | None = None,
) -> AsyncIterator[LanguageClient]:
    """A real coordinator on loopback enforcing `tenant_policy` on tenant alpha, configured as
    the workspace's remote (its key in the server's environment), and a neovim client of the
    workspace that has answered maestro/status; both stopped on exit. `on_response` sees every
    response the coordinator prepares."""
    from aiohttp.test_utils import TestServer

    from maestro.coordinator.app import RUNNER_KWARGS, create_app
    from maestro.coordinator.auth import create_key
    from maestro.coordinator.models import Role
    from maestro.coordinator.settings import Settings
    from maestro.coordinator.store import Store

    settings = Settings(
        data_dir=data_dir, token_ttl_s=300, io_threads=2, rate_limits="enforce",
        tenants={"alpha": tenant_policy},
    )  # fmt: skip
    with Store(settings.data_dir / "store") as store:
        store.add_tenant("alpha")
        app = create_app(settings, store=store)
        if on_response is not None:
            app.on_response_prepare.append(on_response)
        server = TestServer(app)
        await server.start_server(**RUNNER_KWARGS)
        client: LanguageClient | None = None
        try:
            base = str(server.make_url("")).rstrip("/")
            with (env.root / "pyproject.toml").open("a") as f:
                f.write(
                    f'\n[tool.maestro.remote]\nurl = "{base}"\ntenant = "alpha"\n'
                    'api-key-env = "MAESTRO_TEST_REMOTE_KEY"\n'
                )
            key = create_key(store, "alpha", Role.READ_WRITE)
            env.env["MAESTRO_TEST_REMOTE_KEY"] = key.plaintext
            client = await start_client(env, "neovim")
            await request(client, "maestro/status", {})
            yield client
        finally:
            if client is not None:
                await stop_client(client)
            await server.close()


async def request(client: LanguageClient, method: str, params: Any, timeout: float = 60) -> Any:
    result = await asyncio.wait_for(client.protocol.send_request_async(method, params), timeout)
    return plain(result)


async def command(client: LanguageClient, name: str, *args: Any, timeout: float = 120) -> Any:
    result = await asyncio.wait_for(
        client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=name, arguments=list(args))
        ),
        timeout,
    )
    return plain(result)


def notes(client: LanguageClient, method: str) -> list[Any]:
    """The params of every ``method`` notification the client received, in order."""
    found: list[Any] = client.maestro_notes  # type: ignore[attr-defined]
    return [n[1] for n in found if isinstance(n, tuple) and n[0] == method]


async def finished(client: LanguageClient, run_id: str, timeout: float = 120) -> Any:
    """The ``maestro/runFinished`` of a run, once it arrived."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for params in notes(client, "maestro/runFinished"):
            if params["runId"] == run_id:
                return params
        await asyncio.sleep(0.05)
    raise AssertionError(f"{run_id} did not finish within {timeout} s")


async def run_to_end(client: LanguageClient, name: str, *args: Any, timeout: float = 120) -> Any:
    """Start a run command (it answers at once with the run id) and wait for its end."""
    accepted = await command(client, name, *args, timeout=10)
    return await finished(client, accepted["runId"], timeout)


def open_doc(client: LanguageClient, env: Env, rel: str) -> str:
    uri = env.uri(rel)
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=(env.root / rel).read_text()
            )
        )
    )
    return uri


def change_doc(client: LanguageClient, uri: str, text: str, version: int = 2) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )
