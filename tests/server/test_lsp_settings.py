"""Editor settings through a real language server and the daemon it starts: `speculation` turns
the daemon's speculation on and off (a save then runs the impacted tests by itself), and a bad
value is refused with a message naming the key while the server keeps working."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Env, request, run_to_end
from lsprotocol import types
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.slow


def configure(client: LanguageClient, settings: dict[str, Any]) -> None:
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"maestro": settings})
    )


async def daemon_status(client: LanguageClient) -> dict[str, Any]:
    status = await request(client, "maestro/status", {})
    daemon: dict[str, Any] = status["workspaces"][0]["daemon"] or {}
    return daemon


async def until(
    client: LanguageClient, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        daemon = await daemon_status(client)
        if daemon and check(daemon):
            return daemon
        if time.monotonic() > deadline:
            env: Env = client.maestro_env  # type: ignore[attr-defined]
            logs = "".join(p.read_text()[-3000:] for p in (env.base / "st").rglob("daemon.log"))
            raise AssertionError(f"never saw {what}: {daemon.get('speculation')}\n{logs}")
        await asyncio.sleep(0.2)


async def test_speculation_setting_turns_the_daemons_speculation_on_and_off(
    lsp: LanguageClient,
) -> None:
    env: Env = lsp.maestro_env  # type: ignore[attr-defined]
    daemon = await until(lsp, lambda d: d.get("speculation") is not None, "the daemon")
    assert daemon["speculation"]["enabled"] is False  # the workspace does not enable it

    configure(lsp, {"speculation": True})
    await until(lsp, lambda d: d["speculation"]["enabled"], "speculation on")
    await run_to_end(lsp, "maestro.runFile", env.uri("tests/test_calc.py"))  # results to supersede
    calc = env.root / "pkg" / "calc.py"
    calc.write_text(calc.read_text() + "\n\nX = 1\n")  # a save: test_calc.py is impacted
    await until(lsp, lambda d: d["speculation"]["runs"] >= 1, "a speculative run")

    configure(lsp, {"speculation": False})
    daemon = await until(lsp, lambda d: not d["speculation"]["enabled"], "speculation off")
    assert daemon["speculation"]["state"] == "off"


async def test_bad_setting_is_refused_with_the_key_and_the_rest_keeps_working(
    lsp: LanguageClient,
) -> None:
    configure(lsp, {"debounceMs": 250})
    shown = asyncio.ensure_future(lsp.wait_for_notification(types.WINDOW_SHOW_MESSAGE))
    configure(lsp, {"debounceMs": "soon", "speculation": True})
    params = await asyncio.wait_for(shown, 30)
    assert params.type == types.MessageType.Error
    assert "maestro.debounceMs" in params.message and "docs/lsp.md" in params.message
    status = await request(lsp, "maestro/status", {})
    # nothing of the bad payload was applied
    assert status["settings"]["debounceMs"] == 250 and status["settings"]["speculation"] is None
