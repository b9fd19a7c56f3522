"""Length-prefixed msgpack frames: a 4-byte big-endian length, then one msgpack map.

The socket is a trust boundary (any local process of the same user may connect, and a buggy client
may send anything), so decoding is bounded and total: oversize lengths, truncated or invalid
msgpack, non-map payloads and "bombs" (a tiny header claiming 2**32 elements) raise ProtocolError,
never anything else. Ext types are rejected: nothing on the wire turns into a Python object other
than None, bool, int, float, str, bytes, list and dict.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, NoReturn

import msgpack

from maestro.errors import ProtocolError
from maestro.names import PRINTABLE_ERRORS

HEADER = struct.Struct(">I")
MAX_FRAME = 16 * 1024 * 1024
"""Default upper bound of one frame's body, in bytes: what the daemon accepts from a client."""
MAX_REPLY_FRAME = 512 * 1024 * 1024
"""Upper bound of a frame the daemon sends and its clients accept. A run's answer carries every
test's result (node id, the files it read, what it executed), so it grows with the suite: tens of
thousands of parametrized tests pass MAX_FRAME, and the run would have no answer."""
MAX_CONTAINER = 1_000_000
"""Most elements one msgpack array or map may declare (bounds memory before any byte is read)."""


def _no_ext(code: int, data: bytes) -> NoReturn:
    raise ProtocolError(f"msgpack ext type {code} is not allowed")


def encode_frame(obj: Mapping[str, Any], *, max_frame: int = MAX_FRAME) -> bytes:
    """Header + msgpack body of one map; ProtocolError if it cannot be sent (too big, bad type).

    A str that is not UTF-8 (a file name's undecodable bytes kept as lone surrogates, see
    maestro.names) is sent with those bytes as ``\\xNN`` escapes: the wire stays UTF-8, and a
    name on its way to or from the user never makes a frame unsendable."""
    try:
        try:
            body = msgpack.packb(dict(obj), use_bin_type=True, strict_types=False)
        except UnicodeEncodeError:
            # the rare frame only: escaping costs a bytes object per str on every frame
            import logging  # here: the CLI's fast path imports this module and never logs

            logging.getLogger(__name__).debug("frame holds a str that is not UTF-8: escaped")
            body = msgpack.packb(
                dict(obj), use_bin_type=True, strict_types=False, unicode_errors=PRINTABLE_ERRORS
            )
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"cannot encode frame: {exc}") from None
    if len(body) > max_frame:
        raise ProtocolError(
            f"frame of {len(body)} bytes exceeds the limit of {max_frame} bytes",
            hint="ask for less data per request (paging) or raise the frame limit",
        )
    return HEADER.pack(len(body)) + body


def decode_body(body: bytes, *, max_frame: int = MAX_FRAME) -> dict[str, Any]:
    """One frame body -> its map; ProtocolError for anything but exactly one msgpack map."""
    if not body:
        raise ProtocolError("empty frame")
    limit = min(max_frame, MAX_CONTAINER)
    unpacker = msgpack.Unpacker(
        raw=False,
        strict_map_key=True,
        use_list=True,
        max_buffer_size=max(len(body), 1),
        max_str_len=max_frame,
        max_bin_len=max_frame,
        max_array_len=limit,
        max_map_len=limit,
        max_ext_len=0,
        ext_hook=_no_ext,
    )
    try:
        unpacker.feed(body)
        obj = unpacker.unpack()
        leftover = unpacker.tell() != len(body)
    except ProtocolError:
        raise
    except msgpack.OutOfData:
        raise ProtocolError("truncated msgpack in frame") from None
    # The C unpacker raises ValueError/TypeError/StackError/FormatError/UnicodeDecodeError and a few
    # others on hostile input; all of them mean "not a valid frame".
    except Exception as exc:
        raise ProtocolError(
            f"invalid msgpack in frame: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    if leftover:
        raise ProtocolError("trailing bytes after the msgpack map in frame")
    if not isinstance(obj, dict):
        raise ProtocolError(f"frame must be a msgpack map, got {type(obj).__name__}")
    return obj


class FrameDecoder:
    """Incremental decoder: feed bytes as they arrive, get whole frames back.

    After a ProtocolError the stream has lost its framing, so the decoder stays failed: the only
    sane reaction is to report the error and close the connection.
    """

    def __init__(self, *, max_frame: int = MAX_FRAME) -> None:
        if not 0 < max_frame < 2**32:
            raise ValueError("max_frame must be in 1 .. 2**32-1")
        self.max_frame = max_frame
        self._buf = bytearray()
        self._failed: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a whole frame (non-zero at EOF means truncation)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        if self._failed is not None:
            raise ProtocolError("stream already failed: " + self._failed.message)
        self._buf += data
        frames: list[dict[str, Any]] = []
        try:
            while len(self._buf) >= HEADER.size:
                (length,) = HEADER.unpack_from(self._buf)
                if length > self.max_frame:
                    raise ProtocolError(
                        f"frame of {length} bytes exceeds the limit of {self.max_frame} bytes"
                    )
                end = HEADER.size + length
                if len(self._buf) < end:
                    break
                body = bytes(self._buf[HEADER.size : end])
                del self._buf[:end]
                frames.append(decode_body(body, max_frame=self.max_frame))
        except ProtocolError as exc:
            self._failed = exc
            self._buf.clear()
            raise
        return frames

    def eof(self) -> None:
        """Call at end of stream: ProtocolError if it stopped inside a frame."""
        if self._buf:
            raise ProtocolError(f"connection closed inside a frame ({len(self._buf)} bytes left)")
