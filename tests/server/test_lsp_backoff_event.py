"""A backoff shorter than any poll still reaches the editor: the daemon pushes ``remote.backoff``
the moment the coordinator answers 429, and its end when it ends, and the language server turns
each into ``maestro/remoteBackoff`` at once. A real coordinator on loopback whose tenant burst
(1 request a second) refuses with advice under a second, a real daemon and server."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from conftest import Env, notes, rate_limited_remote, run_to_end
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.slow

OLD_POLL_S = 2.0
"""How often the server used to read the daemon's status: the latency this must beat."""
MAX_LATENCY_S = 0.3


def _episodes(refusals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(start, end) of each backoff the coordinator asked for: a refusal after the previous
    advice ran out starts one, a refusal during one may move its end later."""
    out: list[tuple[float, float]] = []
    for when, advice in sorted(refusals):
        if out and when < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], when + advice))
        else:
            out.append((when, when + advice))
    return out


async def _settled(
    refusals: list[tuple[float, float]], seen: list[tuple[float, dict[str, Any]]]
) -> None:
    """Until the last advice ran out, its end was told, and the burst window passed."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        over = not refusals or time.monotonic() > _episodes(refusals)[-1][1] + 1.2
        if over and (not seen or not seen[-1][1]["active"]):
            return
        await asyncio.sleep(0.05)


async def _arrivals(client: LanguageClient, seen: list[tuple[float, dict[str, Any]]]) -> None:
    """Stamp every maestro/remoteBackoff with when it arrived (10 ms resolution)."""
    while True:
        got = notes(client, "maestro/remoteBackoff")
        now = time.monotonic()
        seen.extend((now, n) for n in got[len(seen) :])
        await asyncio.sleep(0.01)


async def test_a_short_backoff_reaches_the_editor_at_once(lsp_env: Env, tmp_path: Path) -> None:
    refusals: list[tuple[float, float]] = []  # (when, advised seconds) of each 429 sent

    async def stamp(req: web.Request, resp: web.StreamResponse) -> None:
        # the sync engine's cache requests (the daemon's other clients back off on their own)
        cache = req.path.startswith("/alpha/")
        if cache and resp.status == 429 and isinstance(resp, web.Response) and resp.body:
            advice = json.loads(bytes(resp.body))["retryAfterMs"] / 1000  # type: ignore[arg-type]
            refusals.append((time.monotonic(), advice))

    policy = {"rate_per_s": 100, "burst": 1}
    async with rate_limited_remote(lsp_env, tmp_path / "coord", policy, stamp) as client:
        watcher: asyncio.Task[None] | None = None
        try:
            seen: list[tuple[float, dict[str, Any]]] = []
            watcher = asyncio.create_task(_arrivals(client, seen))
            # each run's team-cache reads and uploads go over the burst: 429s advising < 1 s;
            # two runs apart, so that there are at least two episodes
            for rel in ("tests/test_calc.py", "tests/test_other.py"):
                ended = await run_to_end(client, "maestro.runFile", lsp_env.uri(rel))
                assert ended["error"] is None, ended
                await _settled(refusals, seen)
            episodes = _episodes(refusals)
            assert len(episodes) >= 2, refusals
            assert all(until - began < OLD_POLL_S for began, until in episodes), episodes

            starts = [t for t, n in seen if n["active"]]
            ends = [t for t, n in seen if not n["active"]]
            for began, until in episodes:
                # told within a fraction of the old poll interval, each time
                told = [t - began for t in starts if t >= began]
                assert told and told[0] < MAX_LATENCY_S, (began, until, seen)
                ended_at = [t - until for t in ends if t >= began]
                assert ended_at and ended_at[0] < MAX_LATENCY_S, (began, until, seen)
            latencies = [min(t - b for t in starts if t >= b) for b, _ in episodes]
            print(f"{len(episodes)} episodes, start latencies (ms):",
                  [round(x * 1000) for x in latencies])  # fmt: skip
        finally:
            if watcher is not None:
                watcher.cancel()
