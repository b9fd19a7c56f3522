"""Frame decoder: exact round trips, and nothing but ProtocolError on hostile bytes."""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maestro.daemon.transport.framing import MAX_FRAME, FrameDecoder, decode_body, encode_frame
from maestro.errors import ProtocolError

json_leaf = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20)
values = st.recursive(
    json_leaf | st.binary(max_size=20) | st.floats(allow_nan=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
maps = st.dictionaries(st.text(max_size=10), values, max_size=6)

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Structured inputs are costly to generate; fewer examples still cover every chunking shape.
STRUCTURED = settings(FUZZ, max_examples=100)


def feed_all(decoder: FrameDecoder, data: bytes, cuts: list[int]) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    start = 0
    for cut in [*sorted({min(c, len(data)) for c in cuts}), len(data)]:
        frames += decoder.feed(data[start:cut])
        start = cut
    return frames


@STRUCTURED
@given(st.lists(maps, max_size=5), st.lists(st.integers(0, 2000), max_size=8))
def test_round_trip_whatever_the_chunking(objs: list[dict[str, Any]], cuts: list[int]) -> None:
    data = b"".join(encode_frame(obj) for obj in objs)
    decoder = FrameDecoder()
    assert feed_all(decoder, data, cuts) == objs
    assert decoder.buffered == 0
    decoder.eof()


@FUZZ
@given(st.binary(max_size=4096), st.lists(st.integers(0, 4096), max_size=6))
def test_random_bytes_only_raise_protocol_error(data: bytes, cuts: list[int]) -> None:
    decoder = FrameDecoder(max_frame=1 << 20)
    try:
        feed_all(decoder, data, cuts)
        decoder.eof()
    except ProtocolError:
        pass


@FUZZ
@given(st.binary(min_size=1, max_size=512))
def test_random_bodies_only_raise_protocol_error(body: bytes) -> None:
    try:
        obj = decode_body(body)
    except ProtocolError:
        return
    assert isinstance(obj, dict)


@STRUCTURED
@given(maps, st.data())
def test_truncated_valid_frames(obj: dict[str, Any], data: st.DataObject) -> None:
    frame = encode_frame(obj)
    cut = data.draw(st.integers(1, len(frame) - 1))
    decoder = FrameDecoder()
    assert decoder.feed(frame[:cut]) == []
    with pytest.raises(ProtocolError, match="inside a frame"):
        decoder.eof()


@STRUCTURED
@given(maps, st.data())
def test_corrupted_valid_frames(obj: dict[str, Any], data: st.DataObject) -> None:
    frame = bytearray(encode_frame(obj))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(frame) - 1))
        frame[pos] = data.draw(st.integers(0, 255))
    try:
        for got in FrameDecoder(max_frame=1 << 20).feed(bytes(frame)):
            assert isinstance(got, dict)
    except ProtocolError:
        pass


@FUZZ
@given(st.integers(MAX_FRAME + 1, 2**32 - 1))
def test_huge_lengths_are_rejected_from_the_header(length: int) -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        decoder.feed(struct.pack(">I", length))
    with pytest.raises(ProtocolError, match="already failed"):
        decoder.feed(b"more")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\xdd\xff\xff\xff\xff", id="array32-bomb"),
        pytest.param(b"\xdf\xff\xff\xff\xff", id="map32-bomb"),
        pytest.param(b"\xdb\xff\xff\xff\xff", id="str32-bomb"),
        pytest.param(b"\xc6\xff\xff\xff\xff", id="bin32-bomb"),
        pytest.param(b"\x91" * 100_000 + b"\xc0", id="deep-nesting"),
        pytest.param(b"\x81\x91\x01\x01", id="array-key"),
        pytest.param(b"\x81\x01\x01", id="int-key"),
        pytest.param(b"\x81\xa1\xff\x01", id="bad-utf8"),
        pytest.param(b"\xd6\xff\x00\x00\x00\x00", id="timestamp-ext"),
        pytest.param(b"\xc7\x00\x05", id="empty-ext"),
        pytest.param(b"\xc1", id="reserved-byte"),
        pytest.param(b"\x80\x80", id="trailing-data"),
        pytest.param(b"\x01", id="not-a-map"),
        pytest.param(b"", id="empty"),
    ],
)
def test_hostile_bodies(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_body(body)
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(struct.pack(">I", len(body)) + body)


def test_bomb_fails_before_allocating() -> None:
    """A 5-byte header claiming 2**32-1 elements must not make the decoder allocate for them."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError):
            decode_body(b"\x81\xa1a\xdd\xff\xff\xff\xff")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024


def test_encode_rejects_oversize_and_unencodable() -> None:
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        encode_frame({"blob": b"x" * 2000}, max_frame=1000)
    with pytest.raises(ProtocolError, match="cannot encode"):
        encode_frame({"obj": object()})


def test_bytes_and_str_stay_distinct() -> None:
    obj = {"s": "text", "b": b"\x00\xff"}
    assert FrameDecoder().feed(encode_frame(obj)) == [obj]
    assert msgpack.unpackb(encode_frame(obj)[4:], raw=False) == obj
