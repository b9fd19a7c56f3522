"""A rate-limit store that is down lets requests through: each failure is counted, and the
warning is written at most once every 10 s (not once per request)."""

from __future__ import annotations

import logging
import socket

import pytest
from limits.aio.storage import RedisStorage
from prometheus_client import CollectorRegistry

from maestro.coordinator.admission import FairnessMetrics
from maestro.coordinator.limits import RateLimits
from maestro.coordinator.tenancy import TenantPolicy


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_store_that_is_down_is_counted_every_time_and_warned_every_10_s(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    metrics = FairnessMetrics(CollectorRegistry())
    storage = RedisStorage(
        f"async+redis://127.0.0.1:{_closed_port()}", implementation="redispy", socket_timeout=2.0
    )
    limits = RateLimits(storage, mode="enforce", metrics=metrics, clock=lambda: now[0])
    policy = TenantPolicy(burst=1)
    caplog.set_level(logging.WARNING, logger="maestro.coordinator.limits")

    for _ in range(3):  # refused by nothing: the store is down, requests go through
        assert await limits.check("acme", None, policy) == []
        now[0] += 1
    now[0] += 10
    assert await limits.check("acme", None, policy) == []

    assert metrics.limiter_errors._value.get() == 4
    warned = [r for r in caplog.records if "rate limit store failed" in r.getMessage()]
    assert len(warned) == 2, [r.getMessage() for r in caplog.records]
    assert all(r.name == "maestro.coordinator.limits" for r in warned)
