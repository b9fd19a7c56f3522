"""The JSON-RPC converter of the server: pygls' own, minus two costs that grow with the payload.

Maestro's custom requests (``maestro/impactedTargets``, ``maestro/testExplorer/*``, ...) take and
return plain JSON values. pygls' default converter turns their params into nested namedtuples (a
new class per object) and unstructures their results through cattrs object by object: a hub answer
of 600 rows spent ~35 ms in cattrs per response, several times the daemon's work. Here custom
params stay dicts and custom results go to ``json.dumps`` as they are; any lsprotocol object
inside a result is still unstructured, through the encoder's ``default`` hook. Standard LSP
messages (code lenses, hovers, diagnostics) keep their typed lsprotocol (un)structuring.
"""

from __future__ import annotations

from typing import Any

import cattrs
from pygls.protocol import default_converter
from pygls.protocol.json_rpc import (
    JsonRPCNotification,
    JsonRPCRequestMessage,
    JsonRPCResponseMessage,
)


def _plain_message(obj: dict[str, Any], cls: type[Any]) -> Any:
    return cls(**obj)


def _response(message: JsonRPCResponseMessage) -> dict[str, Any]:
    return {"id": message.id, "jsonrpc": message.jsonrpc, "result": message.result}


def converter() -> cattrs.Converter:
    conv: cattrs.Converter = default_converter()  # type: ignore[no-untyped-call]
    conv.register_structure_hook(JsonRPCRequestMessage, _plain_message)
    conv.register_structure_hook(JsonRPCNotification, _plain_message)
    conv.register_unstructure_hook(JsonRPCResponseMessage, _response)
    return conv
