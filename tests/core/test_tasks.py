"""cancel_and_wait: what every service's close relies on (the daemon's, the coordinator's)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from maestro.tasks import cancel_and_wait, run_every


async def test_a_running_task_is_cancelled_and_has_ended() -> None:
    stopped: list[str] = []

    async def loop() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            stopped.append("cleaned up")

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert task.done() and task.cancelled() and stopped == ["cleaned up"]
    await cancel_and_wait(None)  # nothing started: nothing to do
    await cancel_and_wait(task)  # already ended: fine again


async def test_a_failure_is_logged_and_the_close_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise RuntimeError("lost the connection")

    task = asyncio.create_task(broken(), name="flusher")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="maestro.tasks"):
        await cancel_and_wait(task)
    assert "background task flusher ended with an error" in caplog.text
    assert "lost the connection" in caplog.text


async def test_the_callers_own_cancellation_is_not_swallowed() -> None:
    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(60)  # slow to stop: its closer is cancelled meanwhile

    inner = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    closer = asyncio.create_task(cancel_and_wait(inner))
    await asyncio.sleep(0.01)
    closer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closer
    inner.cancel()
    await asyncio.gather(inner, return_exceptions=True)


async def test_run_every_goes_on_after_a_failed_round(caplog: pytest.LogCaptureFixture) -> None:
    rounds: list[int] = []

    def work() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 2:
            raise OSError("the coordinator went away")

    task = asyncio.create_task(run_every(0.05, work, "upload round", first_s=0.01))
    with caplog.at_level(logging.ERROR, logger="maestro.tasks"):
        for _ in range(100):
            if len(rounds) >= 3:
                break
            await asyncio.sleep(0.02)
    await cancel_and_wait(task)
    assert len(rounds) >= 3 and task.cancelled()
    assert "upload round failed" in caplog.text and "the coordinator went away" in caplog.text
