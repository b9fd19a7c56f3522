"""Maestro's numeric tuning variables (the daemon's idle time, its start timeout, the watcher's
step, the flags poll, the upload backoff) are read one way: unset or empty means the default, a
value below the floor is raised to it, and a value that is not a number is ignored with a
warning rather than crashing the daemon or the CLI."""

from __future__ import annotations

import logging

import pytest

from maestro.daemon.lifecycle import DEFAULT_IDLE_S, idle_timeout_from_env
from maestro.daemon.services.flags import poll_interval_s
from maestro.envvars import tuning


def test_unset_or_empty_is_the_default() -> None:
    assert tuning("MAESTRO_X_S", 30.0, environ={}) == 30.0
    assert tuning("MAESTRO_X_S", 30.0, environ={"MAESTRO_X_S": ""}) == 30.0


def test_the_value_is_of_the_default_type_and_at_least_the_floor() -> None:
    assert tuning("N", 30, environ={"N": "20"}) == 20
    assert type(tuning("N", 30, environ={"N": "20"})) is int
    assert tuning("S", 30.0, environ={"S": "2.5"}) == 2.5
    assert tuning("S", 30.0, minimum=0.5, environ={"S": "0.1"}) == 0.5
    assert tuning("S", 30.0, minimum=0.0, environ={"S": "-3"}) == 0.0
    assert tuning("S", 30.0, environ={"S": "-3"}) == -3.0


def test_a_value_that_is_not_a_number_is_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        assert tuning("MAESTRO_WATCH_STEP_MS", 30, environ={"MAESTRO_WATCH_STEP_MS": "1.5"}) == 30
        assert tuning("S", 30.0, minimum=0.2, environ={"S": "soon"}) == 30.0
    assert [r.getMessage() for r in caplog.records] == [
        "ignoring MAESTRO_WATCH_STEP_MS='1.5' (not a number)",
        "ignoring S='soon' (not a number)",
    ]


def test_the_daemon_reads_its_variables_through_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAESTRO_DAEMON_IDLE", "-1")
    assert idle_timeout_from_env() == 0.0
    monkeypatch.setenv("MAESTRO_DAEMON_IDLE", "three hours")
    assert idle_timeout_from_env() == DEFAULT_IDLE_S
    monkeypatch.setenv("MAESTRO_FLAGS_POLL_S", "0.01")
    assert poll_interval_s() == 0.2
