"""The wire contract: envelopes validate strictly where it matters, errors keep their type."""

from __future__ import annotations

import pytest

from maestro import wire
from maestro.errors import (
    CacheError,
    DaemonError,
    IntegrityError,
    InternalError,
    ProtocolError,
    ProtocolMismatchError,
    RequestCancelledError,
)


@pytest.mark.parametrize(
    "exc", [IntegrityError("bad blob", hint="run verify"), ProtocolMismatchError("v2 vs v1")]
)
def test_errors_round_trip_by_code(exc: Exception) -> None:
    info = wire.error_info(exc)
    back = wire.error_from_info(wire.ErrorInfo.model_validate(info.model_dump()))
    assert type(back) is type(exc)
    assert str(back) == str(exc)


def test_unknown_and_unexpected_errors() -> None:
    info = wire.error_info(KeyError("k"), log_path="/x/daemon.log")
    assert info.code == InternalError.code
    assert info.hint == "see the daemon log: /x/daemon.log"
    future = wire.error_from_info(wire.ErrorInfo(code="from_the_future", message="m"))
    assert isinstance(future, DaemonError)
    assert future.code == "from_the_future"
    assert isinstance(
        wire.error_from_info(wire.ErrorInfo(code="cache_error", message="m")), CacheError
    )
    assert RequestCancelledError.code == "cancelled"


def test_response_carries_exactly_one_outcome() -> None:
    with pytest.raises(ProtocolError):
        wire.parse_frame({"type": "response", "id": 1})
    with pytest.raises(ProtocolError):
        wire.parse_frame(
            {"type": "response", "id": 1, "result": {}, "error": {"code": "c", "message": "m"}}
        )
    ok = wire.parse_frame({"type": "response", "id": 1, "result": {}})
    assert isinstance(ok, wire.Response)


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "request", "id": 0, "method": "ping"},
        {"type": "request", "id": 2**63, "method": "ping"},
        {"type": "request", "id": "1", "method": "ping"},
        {"type": "request", "id": 1, "method": ""},
        {"type": "request", "id": 1, "method": "ping", "params": []},
        {"type": "cancel"},
        {"type": "nope"},
        {},
    ],
)
def test_invalid_envelopes(frame: dict[str, object]) -> None:
    with pytest.raises(ProtocolError, match="invalid frame"):
        wire.parse_frame(frame)


def test_unknown_fields_are_ignored_for_additive_changes() -> None:
    frame = wire.parse_frame({"type": "hello", "protocol": 1, "maestro_version": "9", "new": True})
    assert isinstance(frame, wire.Hello)
    assert wire.dump_frame(frame) == {
        "type": "hello",
        "protocol": 1,
        "maestro_version": "9",
        "client": "",
    }


def test_builtin_methods_are_declared() -> None:
    assert {"ping", "status", "shutdown", "subscribe", "debug.sleep"} <= set(wire.METHODS)
    assert wire.METHODS["debug.sleep"].streams
    assert wire.EVENTS["debug.tick"] is wire.TickPayload
