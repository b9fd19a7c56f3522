"""The server's memo of daemon answers: concurrent askers share one question, re-asks carry the
etag, and nothing is shared that the daemon would answer differently; the editor's rows of a
confirmed answer are reused only while the results and the cache state are those they show."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from maestro.reports import ImpactedReport
from maestro.server.impacted import impacted_targets, memoised
from maestro.server.server import Workspace
from maestro.wire import ImpactedParams, StaleFile, StaleResult


class FakeLink:
    """Answers ``impacted`` like the daemon: rows, or `unchanged` for a matching etag."""

    def __init__(self) -> None:
        self.calls: list[ImpactedParams] = []
        self.generation = 1

    async def call(self, method: Any, params: ImpactedParams) -> ImpactedReport:
        self.calls.append(params)
        await asyncio.sleep(0.05)
        etag = f"g{self.generation}"
        if params.etag == etag:
            return ImpactedReport.same_as("/ws", etag)
        return ImpactedReport.model_validate(
            ImpactedReport.data("/ws", [], [], 1.0, etag=etag) | {"elapsed_ms": len(self.calls)}
        )


def workspace() -> tuple[Workspace, FakeLink]:
    link = FakeLink()
    return Workspace(Path("/ws"), link), link  # type: ignore[arg-type]


async def test_concurrent_askers_share_one_daemon_question() -> None:
    ws, link = workspace()
    params = ImpactedParams(paths=["pkg/core.py"], hops=0)
    first, second = await asyncio.gather(memoised(ws, params), memoised(ws, params))
    assert len(link.calls) == 1 and first is second
    assert not ws.impacted_inflight  # nothing left behind once answered


async def test_a_re_ask_sends_the_etag_and_keeps_the_held_answer() -> None:
    ws, link = workspace()
    params = ImpactedParams(paths=["pkg/core.py"], hops=0)
    held = await memoised(ws, params)
    assert await memoised(ws, params) is held
    assert link.calls[-1].etag == "g1"
    link.generation = 2  # the graph changed: a fresh answer
    assert (await memoised(ws, params)) is not held


async def test_different_buffer_texts_are_not_shared_while_in_flight() -> None:
    ws, link = workspace()
    one = ImpactedParams(buffers={"pyproject.toml": "a"}, hops=0)
    two = ImpactedParams(buffers={"pyproject.toml": "b"}, hops=0)
    await asyncio.gather(memoised(ws, one), memoised(ws, two))
    assert len(link.calls) == 2


async def test_a_cancelled_asker_leaves_no_stale_answer_behind() -> None:
    ws, link = workspace()
    params = ImpactedParams(paths=["pkg/core.py"], hops=0)
    asker = asyncio.ensure_future(memoised(ws, params))
    await asyncio.sleep(0.01)
    asker.cancel()
    await asyncio.sleep(0.1)  # the shared question still completes and is memoised
    assert not ws.impacted_inflight
    link.generation = 2
    fresh = await memoised(ws, params)
    assert fresh.etag == "g2" and not fresh.unchanged


class RowsLink(FakeLink):
    """One impacted test file, ``tests/test_core.py``, with the same etag until told."""

    async def call(self, method: Any, params: ImpactedParams) -> ImpactedReport:
        self.calls.append(params)
        etag = f"g{self.generation}"
        if params.etag == etag:
            return ImpactedReport.same_as("/ws", etag)
        row = {"target": "tests/test_core.py", "kind": "test", "changed": "pkg/core.py",
               "distance": 1, "why": "imports pkg.core", "reason": []}  # fmt: skip
        changes = [{"path": "pkg/core.py", "status": "modified"}]
        return ImpactedReport.model_validate(
            {"root": "/ws", "changes": changes, "impacted": [row], "elapsed_ms": 1.0, "etag": etag}
        )


class FakeServer:
    def buffers(self, ws: Workspace, uris: list[str] | None = None) -> dict[str, str]:
        return {}

    def uri_of(self, ws: Workspace, rel: str) -> str:
        return f"file:///ws/{rel}"


async def test_re_asked_rows_follow_results_and_cache_state() -> None:
    """A re-ask the daemon confirms reuses the editor's rows, until a result is recorded or the
    cache state arrives: then the rows say so."""
    link = RowsLink()
    ws = Workspace(Path("/ws"), link)  # type: ignore[arg-type]
    ls: Any = FakeServer()
    first = await impacted_targets(ls, ws)
    again = await impacted_targets(ls, ws)
    assert link.calls[-1].etag == "g1" and again["impacted"] is first["impacted"]
    assert again["impacted"][0]["last"] == {"failed": 0, "passed": 0, "tests": 0}

    ws.results.record_live(
        {"event": "test_result", "nodeid": "tests/test_core.py::test_a", "outcome": "failed"},
        "run-1",
    )
    ran = await impacted_targets(ls, ws)
    assert ran["impacted"][0]["last"] == {"failed": 1, "passed": 0, "tests": 1}

    ws.stale = StaleResult(stale=[StaleFile(target="tests/test_core.py", reason="failed")])
    stale = await impacted_targets(ls, ws)
    assert stale["impacted"][0]["cache"]["state"] == "stale"
    unknown = {"state": "unknown", "describe": "", "changed": []}
    assert (await impacted_targets(ls, ws, cache_state=False))["impacted"][0]["cache"] == unknown
