"""The server's message writer: what it frames must be what a client reads back."""

from __future__ import annotations

import json
import re

from lsprotocol import types
from pygls.protocol.json_rpc import JsonRPCResponseMessage

from maestro.server.server import MaestroServer


class Sink:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        pass


def framed(message: object) -> tuple[int, bytes]:
    server = MaestroServer()
    sink = Sink()
    server.protocol.set_writer(sink)
    server.protocol._send_data(message)
    header, _, body = sink.data.partition(b"\r\n\r\n")
    found = re.search(rb"Content-Length: (\d+)", header)
    assert found, header
    return int(found.group(1)), body


def test_content_length_counts_bytes_of_non_ascii_text() -> None:
    result = {"why": "imports ünïcode.módulo (line 3) -> 测试", "rows": [{"n": 1}] * 3}
    length, body = framed(JsonRPCResponseMessage(id=7, result=result, jsonrpc="2.0"))
    assert length == len(body)
    assert json.loads(body) == {"id": 7, "jsonrpc": "2.0", "result": result}


def test_lsprotocol_objects_inside_results_are_unstructured() -> None:
    lens = types.CodeLens(
        range=types.Range(types.Position(1, 0), types.Position(1, 4)),
        command=types.Command("▶ run", "maestro.runTests", arguments=["tests/test_x.py"]),
    )
    length, body = framed(JsonRPCResponseMessage(id=1, result={"lenses": [lens]}, jsonrpc="2.0"))
    assert length == len(body)
    sent = json.loads(body)["result"]["lenses"][0]
    assert sent["range"]["start"] == {"line": 1, "character": 0}
    assert sent["command"]["title"] == "▶ run"


def test_values_orjson_cannot_take_still_go_out() -> None:
    result = {"big": 2**70}
    length, body = framed(JsonRPCResponseMessage(id=2, result=result, jsonrpc="2.0"))
    assert length == len(body)
    assert json.loads(body)["result"] == result
