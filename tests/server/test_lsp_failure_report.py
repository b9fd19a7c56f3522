"""A failing test's whole report reaches the editor, as pytest prints it (the traceback and the
assertion diff, not one line), through a real server, daemon and pytest: in each run's
``maestro/testResults`` as the tests finish, in the test explorer's failure message (the VS Code
peek), and in the failure's diagnostic and hover for a client without the explorer (Neovim,
Emacs), where the diagnostic's first line stays the one-line message. Results served from the
cache after a restart carry it too, a secret printed in a failing assertion stays redacted on
every one of those paths, and a huge report is cut with a visible marker."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from conftest import (
    Env,
    kill_daemons,
    notes,
    open_doc,
    request,
    run_to_end,
    start_client,
    stop_client,
)
from lsprotocol import types
from pytest_lsp import LanguageClient
from workspace_procs import commit_all, write_files

pytestmark = pytest.mark.slow

GITHUB = "ghp_" + "Lq8" * 12  # a GitHub token's shape: found by the detectors
KNOWN = "opal-harbor-lantern-77"  # known from the environment as DEPLOY_TOKEN
DIFF = "At index 1 diff: 'beta' != 'delta'"  # pytest's explanation of the list comparison

REPORT_FILE = "tests/test_report.py"
REPORT = f"""
    import pytest


    def test_words():
        words = ["alpha", "beta", "gamma"]
        assert words == ["alpha", "delta", "gamma"]


    def test_token():
        token = "{GITHUB}"
        assert token == "{KNOWN}"


    def test_fine():
        assert True


    @pytest.mark.parametrize("word", ["{KNOWN}"])
    def test_word(word):
        assert word == "lantern"


    def down(n):
        if n == 0:
            raise ValueError("bottom of the stack")
        return down(n - 1)


    def test_deep():
        down(300)
    """
WORDS_LINE = 6  # 1-based line of test_words' assert


def report_of(results: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(t for t in results if t["id"] == f"{REPORT_FILE}::{name}")


def leaked(*found: Any) -> list[str]:
    text = json.dumps(found, default=str)
    return [s for s in (GITHUB, KNOWN) if s in text]


async def until(check: Any, timeout: float = 30) -> Any:
    for _ in range(int(timeout / 0.1)):
        if got := check():
            return got
        await asyncio.sleep(0.1)
    raise AssertionError("never happened")


async def hover_text(client: LanguageClient, uri: str, line1: int) -> str:
    hover = await asyncio.wait_for(
        client.text_document_hover_async(
            types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line1 - 1, character=8),
            )
        ),
        60,
    )
    assert hover is not None
    contents = hover.contents
    assert isinstance(contents, types.MarkupContent)
    return contents.value


def words_diagnostic(client: LanguageClient, uri: str) -> types.Diagnostic | None:
    found = [d for d in client.diagnostics.get(uri) or [] if d.message.startswith("test_words")]
    return found[0] if found else None


async def test_a_failure_s_whole_report_reaches_the_editor_redacted(lsp_env: Env) -> None:
    env = lsp_env
    (env.root / "tests/test_slow.py").unlink()
    write_files(env.root, {REPORT_FILE: REPORT})
    commit_all(env.root, "report")
    env.env["DEPLOY_TOKEN"] = KNOWN

    # Neovim, without the explorer: the run's results, its diagnostics and the hover
    client = await start_client(env, "neovim", explorer=False)
    try:
        uri = open_doc(client, env, REPORT_FILE)
        outcome = await run_to_end(client, "maestro.runAll")
        assert outcome["failed"] == 5, outcome
        results = [t for b in notes(client, "maestro/testResults") for t in b["tests"]]
        words = report_of(results, "test_words")
        assert words["outcome"] == "failed"
        assert DIFF in (words.get("details") or ""), words
        assert "def test_words():" in words["details"]  # the traceback shows the test's code
        assert report_of(results, "test_fine").get("details") is None
        token = report_of(results, "test_token")
        assert "[REDACTED:github-token:" in (token.get("details") or ""), token
        assert "[REDACTED:env-deploy-token:" in token["details"]
        # a parameter id holding a secret: one result, under the id the cache stores (redacted)
        words = [t["id"] for t in results if "::test_word[" in t["id"]]
        assert words == [f"{REPORT_FILE}::test_word[[REDACTED:env-deploy-token:fab6]]"], words
        # a huge report (300 frames) is cut in its middle, visibly; its end (what raised) stays
        deep = report_of(results, "test_deep")["details"] or ""
        assert len(deep) < 17_000 and "characters truncated] ..." in deep, len(deep)
        assert deep.rstrip().endswith(": ValueError") and "ValueError: bottom of the stack" in deep

        diag = await until(lambda: words_diagnostic(client, uri))
        first, _, rest = diag.message.partition("\n")
        assert first.startswith("test_words failed: AssertionError: assert ["), first
        assert len(first) < 200 and DIFF not in first
        assert DIFF in rest, diag.message
        hovered = await hover_text(client, uri, WORDS_LINE)
        assert DIFF in hovered, hovered
        # the diagnostic shows the end of a huge report, saying how much it leaves out
        deep_diag = next(d for d in client.diagnostics[uri] if d.message.startswith("test_deep"))
        assert "earlier lines of the report not shown]" in deep_diag.message
        assert "ValueError: bottom of the stack" in deep_diag.message
        assert len(deep_diag.message) < 7_000, len(deep_diag.message)
        assert leaked(client.maestro_notes, client.diagnostics, hovered) == []  # type: ignore[attr-defined]
    finally:
        await stop_client(client)
    kill_daemons(env.root)

    # VS Code after a restart: the stored results, served from the cache, carry the report into
    # the explorer's failure messages
    client = await start_client(env, "visual_studio_code")
    try:
        uri = open_doc(client, env, REPORT_FILE)
        await request_discover(client)

        def failed_words() -> dict[str, Any] | None:
            for p in notes(client, "maestro/testExplorer/progress"):
                if p.get("nodeid") == f"{REPORT_FILE}::test_words" and p["state"] == "failed":
                    return p  # type: ignore[no-any-return]
            return None

        progress = await until(failed_words)
        assert progress["cached"] is True
        message = progress["message"]
        assert message["text"].startswith("AssertionError: assert [")
        assert DIFF in (message.get("details") or ""), message
        # the explorer's client keeps its diagnostic to the line (the peek shows the report)
        diag = await until(lambda: words_diagnostic(client, uri))
        assert "\n" not in diag.message, diag.message
        assert DIFF in await hover_text(client, uri, WORDS_LINE)
        assert leaked(client.maestro_notes, client.diagnostics) == []  # type: ignore[attr-defined]
    finally:
        await stop_client(client)


async def request_discover(client: LanguageClient) -> None:
    await request(client, "maestro/testExplorer/discover", {})
