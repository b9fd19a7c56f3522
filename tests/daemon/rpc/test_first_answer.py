"""Background work a daemon's start sets off waits for its first answer (or a bound)."""

from __future__ import annotations

import asyncio
import time

from conftest import DaemonEnv

from maestro.daemon.app import DaemonApp
from maestro.daemon.lifecycle import DaemonPaths


def app_for(env: DaemonEnv) -> DaemonApp:
    return DaemonApp(DaemonPaths.for_root(env.root, create_socket_dir=True), idle_timeout_s=0)


def test_waiters_start_at_the_first_answer(daemon_env: DaemonEnv) -> None:
    app = app_for(daemon_env)

    async def scenario() -> list[str]:
        order: list[str] = []

        async def background() -> None:
            await app.first_answer(limit_s=30)
            order.append("background")

        task = asyncio.create_task(background())
        await asyncio.sleep(0.05)
        assert not task.done()  # no answer yet: still waiting
        order.append("answer")
        app.answered()
        await asyncio.wait_for(task, 5)
        await asyncio.wait_for(app.first_answer(limit_s=30), 1)  # later callers do not wait
        return order

    assert asyncio.run(scenario()) == ["answer", "background"]


def test_without_an_answer_waiters_start_after_the_bound(daemon_env: DaemonEnv) -> None:
    app = app_for(daemon_env)

    async def scenario() -> float:
        started = time.monotonic()
        await asyncio.wait_for(app.first_answer(limit_s=0.2), 5)
        return time.monotonic() - started

    assert asyncio.run(scenario()) >= 0.15
