"""End to end through a real stdio LSP client (pytest-lsp) under the VS Code and Neovim client
capability profiles: the server, a real daemon, real pytest runs."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from conftest import (
    FAIL_TEST_LINE,
    RAISE_LINE,
    Env,
    change_doc,
    command,
    finished,
    notes,
    open_doc,
    request,
    run_to_end,
)
from lsprotocol import types
from pytest_lsp import LanguageClient


def env_of(client: LanguageClient) -> Env:
    env: Env = client.maestro_env  # type: ignore[attr-defined]
    return env


async def lenses(client: LanguageClient, uri: str) -> list[types.CodeLens]:
    found = await asyncio.wait_for(
        client.text_document_code_lens_async(
            types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
        ),
        60,
    )
    return list(found or [])


async def test_impacted_saved_and_unsaved_edits(lsp: LanguageClient) -> None:
    env = env_of(lsp)
    # Saved edit: the file itself is the change (paths); its dependents are impacted.
    (env.root / "pkg/other.py").write_text('def hello():\n    return "hello"  # saved\n')
    result = await request(
        lsp,
        "maestro/impactedTargets",
        {"textDocument": {"uri": env.uri("pkg/other.py")}, "reasons": True},
    )
    assert result["source"] == "paths"
    targets = {r["target"]: r for r in result["impacted"]}
    assert set(targets) == {"tests/test_other.py"}
    row = targets["tests/test_other.py"]
    assert row["changed"] == "pkg/other.py"
    assert row["reason"][0]["detail"] == "pkg.other" and "pkg.other" in row["why"]
    assert row["cache"]["state"] in ("stale", "unknown", "cached")

    # Unsaved edit: a new import in an open buffer makes test_other depend on pkg.calc too.
    uri = open_doc(lsp, env, "tests/test_other.py")
    text = (env.root / "tests/test_other.py").read_text()
    change_doc(lsp, uri, "import pkg.calc\n" + text)
    result = await request(lsp, "maestro/impactedTargets", {"textDocument": {"uri": uri}})
    assert result["source"] == "buffers"
    assert [r["target"] for r in result["impacted"]] == ["tests/test_other.py"]
    assert result["impacted"][0]["unsaved"] is True
    assert result["impacted"][0]["cache"]["state"] == "unsaved"

    # Working tree (no document): git sees the saved edit; the unsaved buffer is merged in.
    result = await request(lsp, "maestro/impactedTargets", {})
    assert result["source"] == "workingTree"
    assert {c["path"] for c in result["changes"]} >= {"pkg/other.py", "tests/test_other.py"}


async def test_code_lens_on_test_and_source_files(lsp: LanguageClient) -> None:
    env = env_of(lsp)
    uri = open_doc(lsp, env, "tests/test_calc.py")
    found = await lenses(lsp, uri)
    by_line: dict[int, list[str]] = {}
    for lens in found:
        assert lens.command is not None
        assert lens.command.command.startswith("maestro.")
        by_line.setdefault(lens.range.start.line, []).append(lens.command.title)
    assert "▶ Run file" in by_line[0]
    assert "▶ Run" in by_line[3]  # def test_add
    assert "▶ Run" in by_line[7]  # def test_div_zero
    assert "▶ Run" in by_line[12]  # def test_div (in class TestMore)
    node_cmds = [
        ln.command for ln in found if ln.command and ln.command.command == "maestro.runNode"
    ]
    assert "tests/test_calc.py::TestMore::test_div" in [
        c.arguments[0] for c in node_cmds if c.arguments
    ]

    src = open_doc(lsp, env, "pkg/calc.py")
    found = await lenses(lsp, src)
    assert len(found) == 1 and found[0].command is not None
    # one test file, test_calc.py, with four tests: the lens counts files and says so
    assert found[0].command.title == "▶ 1 impacted test file"
    assert found[0].command.command == "maestro.runImpacted"


async def test_run_with_progress_and_diagnostics(lsp: LanguageClient) -> None:
    env = env_of(lsp)
    uri = open_doc(lsp, env, "tests/test_calc.py")
    results = asyncio.ensure_future(lsp.wait_for_notification("maestro/testResults"))
    outcome = await run_to_end(lsp, "maestro.runImpacted", env.uri("pkg/calc.py"))
    assert outcome["cancelled"] is False and outcome["error"] is None
    assert outcome["passed"] == 2 and outcome["failed"] == 1
    await asyncio.wait_for(results, 10)
    # honest counts: 3 test nodes selected in test_calc.py, all done
    progress = notes(lsp, "maestro/runProgress")
    assert progress[-1]["runId"] == outcome["runId"]
    assert (progress[-1]["done"], progress[-1]["total"]) == (3, 3)

    # Progress: begin, at least one report, end.
    reports = lsp.progress_reports[f"maestro/{outcome['runId']}"]
    assert isinstance(reports[0], types.WorkDoneProgressBegin) and reports[0].cancellable
    assert any(isinstance(r, types.WorkDoneProgressReport) for r in reports)
    assert isinstance(reports[-1], types.WorkDoneProgressEnd)
    assert "1 failed" in (reports[-1].message or "")

    # Diagnostic at the failing line of the test, related information at the raising line.
    diags = lsp.diagnostics[uri]
    assert len(diags) == 1
    diag = diags[0]
    assert diag.range.start.line == FAIL_TEST_LINE - 1
    assert "ZeroDivisionError" in diag.message
    assert diag.related_information
    related = diag.related_information[0].location
    assert related.uri == env.uri("pkg/calc.py")
    assert related.range.start.line == RAISE_LINE - 1

    # Lenses now show results; a second run is served from the cache (failures re-run).
    found = await lenses(lsp, uri)
    titles = [ln.command.title for ln in found if ln.command]
    assert any(t.startswith("✗ failed") for t in titles)
    assert any(t.startswith("✓ passed") for t in titles)
    again = await run_to_end(lsp, "maestro.runFile", env.uri("tests/test_other.py"))
    again = await run_to_end(lsp, "maestro.runFile", env.uri("tests/test_other.py"))
    assert again["cachedFiles"] == 1 and again["passed"] == 1

    # Fix the bug: the next run clears the diagnostic.
    (env.root / "tests/test_calc.py").write_text(
        (env.root / "tests/test_calc.py").read_text().replace("div(1, 0) == 0", "add(0, 0) == 0")
    )
    fixed = await run_to_end(lsp, "maestro.runNode", "tests/test_calc.py::test_div_zero", uri)
    assert fixed.get("failed") == 0 and fixed.get("passed") == 1, fixed
    assert not lsp.diagnostics[uri]


async def test_cancel_a_run(lsp: LanguageClient) -> None:
    env = env_of(lsp)
    started = await command(lsp, "maestro.runFile", env.uri("tests/test_slow.py"), timeout=5)
    running = asyncio.ensure_future(finished(lsp, started["runId"]))
    token = None
    for _ in range(600):
        await asyncio.sleep(0.05)
        for tok, reports in lsp.progress_reports.items():
            if any(
                isinstance(r, types.WorkDoneProgressReport) and "to run" in (r.message or "")
                for r in reports
            ):
                token = tok
        if token:
            break
    assert token is not None, "the run never reported its plan"
    await asyncio.sleep(1.0)  # pytest is running test_slow now
    lsp.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
    outcome = await asyncio.wait_for(running, 20)
    assert outcome["cancelled"] is True
    assert isinstance(lsp.progress_reports[token][-1], types.WorkDoneProgressEnd)
    # The daemon survived the cancellation and serves the next run; maestro.cancel works too.
    started = await command(lsp, "maestro.runFile", env.uri("tests/test_slow.py"), timeout=5)
    await asyncio.sleep(3.0)
    cancelled = await command(lsp, "maestro.cancel", started["runId"])
    assert cancelled["cancelled"] == [started["runId"]]
    outcome = await finished(lsp, started["runId"], 20)
    assert outcome["cancelled"] is True


# well within eglot's 10 s request timeout; the run itself takes 11 s
ANSWERS_AT_ONCE_S = 4.0


@pytest.mark.slow
async def test_long_run_answers_at_once_and_supersedes(lsp: LanguageClient) -> None:
    """A run longer than eglot's 10 s request timeout: the command answers at once (well within
    it, on a loaded host too), the run goes on and ends with maestro/runFinished; running the same
    file again cancels it."""
    env = env_of(lsp)
    (env.root / "tests/test_slow.py").write_text(
        "import time\n\n\ndef test_slow():\n    time.sleep(11)\n"
    )
    t0 = time.monotonic()
    first = await command(lsp, "maestro.runFile", env.uri("tests/test_slow.py"), timeout=5)
    assert time.monotonic() - t0 < ANSWERS_AT_ONCE_S
    assert first["kind"] == "file" and first["superseded"] == []
    await asyncio.sleep(2.0)
    t0 = time.monotonic()
    second = await command(lsp, "maestro.runFile", env.uri("tests/test_slow.py"), timeout=5)
    assert time.monotonic() - t0 < ANSWERS_AT_ONCE_S
    assert second["superseded"] == [first["runId"]]
    ended = await finished(lsp, first["runId"], 20)
    assert ended["cancelled"] is True and ended["message"] == f"superseded by {second['runId']}"
    outcome = await finished(lsp, second["runId"], 90)
    assert time.monotonic() - t0 > 10.0
    assert outcome["cancelled"] is False and outcome["passed"] == 1
    assert [p["runId"] for p in notes(lsp, "maestro/runStarted")][-1] == second["runId"]
    assert second["runId"] in [p["runId"] for p in notes(lsp, "maestro/runProgress")]


async def test_cache_stats_and_explain(lsp: LanguageClient) -> None:
    env = env_of(lsp)
    await run_to_end(lsp, "maestro.runFile", env.uri("tests/test_other.py"))
    stats = await request(lsp, "maestro/cacheStats", {})
    assert stats["actions"] >= 1 and "hitRate" in stats and "hit_rate" not in stats
    assert (await command(lsp, "maestro.cacheStats"))["actions"] == stats["actions"]

    explained = await request(lsp, "maestro/explain", {"target": "tests/test_other.py::test_hello"})
    assert explained["decision"] == "cached"
    assert explained["selected"] is False
    assert explained["last"] and explained["last"][0]["outcome"] == "passed"

    # a real change to the code the test executed (a comment-only edit changes no fingerprint)
    (env.root / "pkg/other.py").write_text('def hello():\n    word = "hello"\n    return word\n')
    # The daemon's `stale` only sees a save once its watcher delivered it (~tens of ms).
    await asyncio.sleep(1.0)
    explained = await request(
        lsp, "maestro/explain", {"target": "tests/test_other.py", "path": "pkg/other.py"}
    )
    assert explained["selected"] is True
    assert explained["decision"] == "re-run", (explained["cache"], explained["reasons"])
    assert "pkg/other.py" in explained["cache"]["changedInputs"]
    assert explained["why"]["depends"] is True
    assert "pkg.other" in explained["text"]

    # the test file itself is the change: said once, not "X changed; X changed"
    test_file = env.root / "tests/test_other.py"
    test_file.write_text(test_file.read_text() + "\n\ndef test_more():\n    pass\n")
    await asyncio.sleep(1.0)
    explained = await request(
        lsp, "maestro/explain", {"target": "tests/test_other.py", "path": "tests/test_other.py"}
    )
    assert explained["reasons"][0] == "selected: tests/test_other.py changed", explained["reasons"]


async def test_daemon_killed_mid_session(lsp: LanguageClient) -> None:
    env = env_of(lsp)
    status = await request(lsp, "maestro/status", {})
    ws = status["workspaces"][0]
    assert ws["state"] == "connected" and ws["daemon"]["root"] == str(env.root)
    pid = ws["daemon"]["pid"]
    os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(0.1)
    result = await request(
        lsp, "maestro/impactedTargets", {"textDocument": {"uri": env.uri("pkg/calc.py")}}
    )
    assert [r["target"] for r in result["impacted"]] == ["tests/test_calc.py"]
    status = await request(lsp, "maestro/status", {})
    assert status["workspaces"][0]["daemon"]["pid"] != pid
    assert status["workspaces"][0]["restarts"] >= 1


async def test_hover_and_test_explorer(lsp: LanguageClient) -> None:
    env = env_of(lsp)
    uri = open_doc(lsp, env, "tests/test_calc.py")
    begin = asyncio.ensure_future(lsp.wait_for_notification("maestro/testExplorer/end"))
    started = await request(
        lsp, "maestro/testExplorer/run", {"include": ["tests/test_calc.py::test_add"]}
    )
    assert started["runId"]
    await asyncio.wait_for(begin, 60)
    discovered = await request(lsp, "maestro/testExplorer/discover", {})
    ids = {f["id"] for f in discovered["files"]}
    assert ids == {"tests/test_calc.py", "tests/test_other.py", "tests/test_slow.py"}
    calc = next(f for f in discovered["files"] if f["id"] == "tests/test_calc.py")
    assert [c["id"] for c in calc["children"]][:2] == [
        "tests/test_calc.py::test_add",
        "tests/test_calc.py::test_div_zero",
    ]
    hover = await lsp.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=3, character=6),
        )
    )
    assert hover is not None
    assert isinstance(hover.contents, types.MarkupContent)
    assert "passed" in hover.contents.value
    hover = await lsp.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=0, character=3),
        )
    )
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert "**1** test file depend" in hover.contents.value


async def test_lens_right_after_a_write_before_did_save(lsp: LanguageClient) -> None:
    """Neovim asks for lenses right after `:w`, before its didSave: the saved buffer is not an
    unsaved edit (it said "0 impacted tests (unsaved edit)")."""
    env = env_of(lsp)
    src = open_doc(lsp, env, "pkg/calc.py")
    text = (env.root / "pkg/calc.py").read_text() + "\n\ndef mul(a, b):\n    return a * b\n"
    change_doc(lsp, src, text)
    found = await lenses(lsp, src)
    assert found[0].command is not None and "(unsaved edit)" in found[0].command.title
    (env.root / "pkg/calc.py").write_text(text)  # written, didSave not sent yet
    found = await lenses(lsp, src)
    assert found[0].command is not None
    assert found[0].command.title == "▶ 1 impacted test file", found[0].command.title
