"""Editor settings, each proven through a real language server and the daemon it starts:
`daemonAutostart`, `codeLens.enabled`, `codeLens.impactedOnSource` and `diagnostics` switched off
and on, `debounceMs` delaying the lens refresh an edit asks for, `requestTimeoutS` bounding the
wait for the daemon (changed while connected, too). `speculation`, `coordinatorUrl`, `runOnSave`
and `codeLens.testFunctions` have tests of their own."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from conftest import Env, change_doc, open_doc, request, run_to_end, start_client, stop_client
from lsprotocol import types
from pytest_lsp import LanguageClient
from workspace_procs import daemon_processes

pytestmark = pytest.mark.slow

SOURCE = "pkg/calc.py"
TESTS = "tests/test_calc.py"


def configure(client: LanguageClient, settings: dict[str, Any]) -> None:
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"maestro": settings})
    )


async def titles(client: LanguageClient, env: Env, rel: str) -> list[str]:
    found = await asyncio.wait_for(
        client.text_document_code_lens_async(
            types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=env.uri(rel)))
        ),
        60,
    )
    return [lens.command.title for lens in found or [] if lens.command]


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what}")
        await asyncio.sleep(0.2)


async def test_daemon_autostart_off_starts_no_daemon_until_it_is_turned_on(
    lsp_env: Env,
) -> None:
    env = lsp_env
    client = await start_client(env, "visual_studio_code", {"daemonAutostart": False})
    try:
        open_doc(client, env, TESTS)
        open_doc(client, env, SOURCE)
        assert await titles(client, env, SOURCE) == []  # no daemon to count the impacted tests
        await titles(client, env, TESTS)
        await asyncio.sleep(1.0)  # a daemon started in the background would be up by now
        status = await request(client, "maestro/status", {})
        assert status["settings"]["daemonAutostart"] is False
        assert all(w["pid"] is None for w in status["workspaces"]), status["workspaces"]
        assert daemon_processes(env.root) == []

        configure(client, {"daemonAutostart": True})

        async def counted() -> bool:
            return any("impacted test" in t for t in await titles(client, env, SOURCE))

        await until(counted, "the impacted-tests lens once the daemon may start")
        assert daemon_processes(env.root)
    finally:
        await stop_client(client)


async def test_lenses_and_diagnostics_switched_off_and_back_on(lsp_env: Env) -> None:
    env = lsp_env
    client = await start_client(env, "visual_studio_code")
    try:
        test_uri = open_doc(client, env, TESTS)
        open_doc(client, env, SOURCE)

        async def source_lens() -> bool:
            return any("impacted test" in t for t in await titles(client, env, SOURCE))

        await until(source_lens, "the impacted-tests lens on the source file")
        assert await titles(client, env, TESTS)

        configure(client, {"codeLens": {"enabled": False}})

        async def no_lens() -> bool:
            return not await titles(client, env, TESTS) and not await titles(client, env, SOURCE)

        await until(no_lens, "no lens at all with codeLens.enabled off")

        configure(client, {"codeLens": {"enabled": True, "impactedOnSource": False}})

        async def test_lenses_only() -> bool:
            on_tests = await titles(client, env, TESTS)
            return bool(on_tests) and not await titles(client, env, SOURCE)

        await until(test_lenses_only, "test-file lenses without the source lens")

        configure(client, {"diagnostics": False})
        outcome = await run_to_end(client, "maestro.runFile", test_uri)
        assert outcome["failed"] == 1, outcome
        await asyncio.sleep(0.5)
        assert not client.diagnostics.get(test_uri), client.diagnostics.get(test_uri)

        configure(client, {"diagnostics": True})
        again = await run_to_end(client, "maestro.runFile", test_uri)
        assert again["failed"] == 1, again

        async def published() -> bool:
            return bool(client.diagnostics.get(test_uri))

        await until(published, "the failure as a diagnostic once diagnostics are on", 10)
    finally:
        await stop_client(client)


async def test_the_interpreter_setting_runs_the_tests(lsp_env: Env) -> None:
    """The editor's interpreter reaches the daemon and runs pytest: a wrapper that notes each
    start and then is the same Python."""
    env = lsp_env
    starts = env.base / "starts.log"
    wrapper = env.base / "python-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {starts}\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    client = await start_client(env, "visual_studio_code", {"interpreter": str(wrapper)})
    try:
        status = await request(client, "maestro/status", {})
        assert status["settings"]["interpreter"] == str(wrapper)
        outcome = await run_to_end(client, "maestro.runFile", open_doc(client, env, TESTS))
        assert (outcome["passed"], outcome["failed"]) == (2, 1), outcome
        assert starts.exists() and "pytest" in starts.read_text(), (
            starts.read_text() if starts.exists() else "the wrapper never ran"
        )
    finally:
        await stop_client(client)


async def test_a_client_without_the_test_explorer_gets_none_of_its_notifications(
    lsp_env: Env,
) -> None:
    """What VS Code's `maestro.testExplorer: false` sends: no `maestroTestExplorer` capability."""
    env = lsp_env
    client = await start_client(env, "visual_studio_code", explorer=False)
    try:
        assert (await request(client, "maestro/status", {}))["testExplorer"] is False
        outcome = await run_to_end(client, "maestro.runFile", open_doc(client, env, TESTS))
        assert outcome["failed"] == 1, outcome
        seen = {n[0] for n in client.maestro_notes if isinstance(n, tuple)}  # type: ignore[attr-defined]
        assert "maestro/runFinished" in seen
        assert not {m for m in seen if m.startswith("maestro/testExplorer/")}, seen
    finally:
        await stop_client(client)


async def test_debounce_ms_delays_the_lens_refresh_an_edit_asks_for(lsp_env: Env) -> None:
    env = lsp_env
    client = await start_client(env, "visual_studio_code", {"debounceMs": 60_000})
    notes: list[Any] = client.maestro_notes  # type: ignore[attr-defined]
    try:
        uri = open_doc(client, env, SOURCE)
        assert any("impacted test" in t for t in await titles(client, env, SOURCE))
        await asyncio.sleep(1.0)  # the refreshes of the open and of the daemon's start
        notes.clear()
        change_doc(client, uri, (env.root / SOURCE).read_text() + "\n# typing\n")
        await asyncio.sleep(3.0)
        assert "codeLens/refresh" not in notes  # a minute's debounce: not yet

        configure(client, {"debounceMs": 100})
        await asyncio.sleep(1.0)  # a settings change refreshes at once
        notes.clear()
        change_doc(client, uri, (env.root / SOURCE).read_text() + "\n# typing more\n", 3)

        async def refreshed() -> bool:
            return "codeLens/refresh" in notes

        await until(refreshed, "a lens refresh 100 ms after the edit", timeout=10)
    finally:
        await stop_client(client)


async def test_request_timeout_s_bounds_the_wait_for_the_daemon(lsp_env: Env) -> None:
    env = lsp_env
    client = await start_client(env, "visual_studio_code", {"requestTimeoutS": 0.000001})
    try:
        open_doc(client, env, SOURCE)
        await titles(client, env, SOURCE)
        status = await request(client, "maestro/status", {})
        (workspace,) = status["workspaces"]
        assert workspace["daemon"] is None and workspace["lastError"], workspace

        configure(client, {"requestTimeoutS": 60})

        async def answered() -> bool:
            (ws,) = (await request(client, "maestro/status", {}))["workspaces"]
            return ws["daemon"] is not None

        await until(answered, "the daemon's status within the default timeout")
    finally:
        await stop_client(client)
