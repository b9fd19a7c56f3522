"""restore(): a stored-result question whose asker was cancelled (the editor cancels a lens
request it replaced) counts as not asked, so the next lens request asks again instead of waiting
on an answer that never came and showing no stored result for the rest of the session."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

from maestro.server.restore import restore
from maestro.server.server import MaestroServer, Workspace
from maestro.wire import CACHED_RESULTS, CachedResultsResult, MethodSpec

REL = "tests/test_calc.py"


class SlowFirstLink:
    """A daemon link whose first ``cached_results`` answer never comes."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    async def call(self, method: MethodSpec[Any, Any], params: Any) -> CachedResultsResult:
        assert method is CACHED_RESULTS
        self.asked.append(list(params.paths))
        if len(self.asked) == 1:
            await asyncio.Event().wait()
        return CachedResultsResult(files=[])


async def test_a_cancelled_asker_leaves_the_file_to_be_asked_again(tmp_path: Path) -> None:
    link = SlowFirstLink()
    ws = Workspace(tmp_path, cast(Any, link))
    ls = cast(MaestroServer, object())

    first = asyncio.ensure_future(restore(ls, ws, [REL]))
    await asyncio.sleep(0.05)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)

    assert await asyncio.wait_for(restore(ls, ws, [REL]), 5) == []
    assert link.asked == [[REL], [REL]]


class GatedLink:
    """A daemon link whose ``cached_results`` answers (nothing stored) once let through."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.asked = 0

    async def call(self, method: MethodSpec[Any, Any], params: Any) -> CachedResultsResult:
        self.asked += 1
        await self.gate.wait()
        return CachedResultsResult(files=[])


async def test_a_cancelled_waiter_leaves_the_answer_to_the_others(tmp_path: Path) -> None:
    """The file opened asks (didOpen), a lens request waits for that answer and is cancelled:
    the later lens requests of the file get their answer, not a cancellation (VS Code shows no
    lens for a cancelled answer and does not ask again)."""
    link = GatedLink()
    ws = Workspace(tmp_path, cast(Any, link))
    ls = cast(MaestroServer, object())

    opened = asyncio.ensure_future(restore(ls, ws, [REL]))
    await asyncio.sleep(0.05)
    lens = asyncio.ensure_future(restore(ls, ws, [REL]))
    await asyncio.sleep(0.05)
    lens.cancel()
    await asyncio.gather(lens, return_exceptions=True)
    link.gate.set()
    assert await asyncio.wait_for(opened, 5) == []

    assert await asyncio.wait_for(restore(ls, ws, [REL]), 5) == []
    assert link.asked == 1
