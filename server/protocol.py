"""The JSON-RPC converter of the server: pygls' own, minus two costs that grow with the payload.

Maestro's custom requests (``maestro/impactedTargets``, ``maestro/testExplorer/*``, ...) take and
return the typed shapes of ``methods.py``. pygls' default converter would turn their params into
nested namedtuples (a new class per object) and unstructure their results through cattrs object
by object, several times the daemon's work for a hub answer. Here custom params reach
``methods.serve`` as dicts, which validates them into their models, and custom results (typed
dicts) go to the encoder as they are; a pydantic or lsprotocol object inside one is converted
through the encoder's ``default`` hook. Standard LSP
messages (code lenses, hovers, diagnostics) keep their typed lsprotocol (un)structuring.

``MaestroProtocol`` writes every message with orjson: a hub answer is a large JSON document, and
orjson writes it several times faster than the standard library's encoder. It also tells the
idle collector (``collector``) when messages arrive, so full collections wait for a pause.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import cattrs
import orjson
from lsprotocol import types
from pydantic import BaseModel
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInternalError,
    JsonRpcInvalidParams,
    JsonRpcParseError,
)
from pygls.protocol import LanguageServerProtocol, default_converter
from pygls.protocol.json_rpc import (
    JsonRPCNotification,
    JsonRPCProtocol,
    JsonRPCRequestMessage,
    JsonRPCResponseMessage,
)

from maestro.server.collector import IdleCollector
from maestro.server.methods import PROTOCOL_CAPABILITY, PROTOCOL_VERSION, Refused, dump

log = logging.getLogger(__name__)

_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS


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


@dataclass(frozen=True)
class _Unreadable:
    """A request whose params did not fit its LSP type: answered with InvalidParams (pygls
    would log it and never answer, leaving the client waiting)."""

    id: Any
    method: str
    why: str = "params do not fit the request's LSP type (see the LSP spec)"
    jsonrpc: str = JsonRPCProtocol.VERSION


@dataclass(frozen=True)
class _Dropped:
    """A notification whose params did not fit its LSP type: nothing to answer, already logged."""

    jsonrpc: str = JsonRPCProtocol.VERSION


def _camel(problem: str) -> str:
    """cattrs names fields as Python does: text_document -> textDocument, as on the wire."""
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), problem)


def _bad_command_arguments(data: dict[str, Any]) -> str | None:
    """executeCommand arguments that are not a list: the LSP type would take a string as the
    sequence of its characters (a run of "t" for "tests/test_a.py")."""
    if data.get("method") != types.WORKSPACE_EXECUTE_COMMAND:
        return None
    params = data.get("params")
    arguments = params.get("arguments") if isinstance(params, dict) else None
    if arguments is None or isinstance(arguments, list):
        return None
    command = params.get("command") if isinstance(params, dict) else None
    return f"{command}: arguments should be a list, got {type(arguments).__name__}"


class MaestroProtocol(LanguageServerProtocol):
    """pygls' protocol with an orjson writer (same messages, compact separators, UTF-8 bytes:
    the Content-Length counts bytes, as LSP's base protocol says)."""

    _server_capabilities: types.ServerCapabilities | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._writes: set[asyncio.Future[Any]] = set()
        self.collector = IdleCollector()

    @property
    def server_capabilities(self) -> types.ServerCapabilities | None:
        return self._server_capabilities

    @server_capabilities.setter
    def server_capabilities(self, value: types.ServerCapabilities | None) -> None:
        # built by pygls once the initialize handler returned: the protocol's version goes in
        # its experimental part, which pygls leaves empty
        if value is not None:
            experimental = value.experimental if isinstance(value.experimental, dict) else {}
            value.experimental = {**experimental, PROTOCOL_CAPABILITY: PROTOCOL_VERSION}
        self._server_capabilities = value

    def _serialize_message(self, data: Any) -> Any:
        if isinstance(data, BaseModel):  # a daemon model inside an answer (methods.py)
            return dump(data)
        if type(data) is JsonRPCNotification and isinstance(data.params, dict | list):
            # Maestro's own notifications carry plain JSON (TypedDicts): orjson writes them as
            # they are, and comes back here only for an object inside. Through the converter,
            # a run's thousands of results cost a call per value.
            return {"method": data.method, "jsonrpc": data.jsonrpc, "params": data.params}
        return super()._serialize_message(data)

    def structure_message(self, data: dict[str, Any]) -> Any:
        why = _bad_command_arguments(data)
        if why is not None and "id" in data:
            return _Unreadable(data["id"], data["method"], why)
        method = data.get("method")
        message_type = self.get_message_type(method) if isinstance(method, str) else None
        if "jsonrpc" in data and "error" not in data and message_type is not None:
            # a standard message whose params do not fit its LSP type: answered (a request) or
            # dropped (a notification) with one log line naming the field, not pygls' traceback
            try:
                return self._converter.structure(data, message_type)
            except cattrs.ClassValidationError as exc:
                problems = "; ".join(_camel(p) for p in cattrs.transform_error(exc))
                log.info("%s: params do not fit: %s", method, problems)
                if "id" in data:
                    return _Unreadable(data["id"], str(method), f"invalid params: {problems}")
                return _Dropped()
        try:
            return super().structure_message(data)
        except JsonRpcException:
            if "id" in data and isinstance(method, str):
                return _Unreadable(data["id"], method)
            raise

    def _is_open(self, uri: str) -> bool:
        workspace = self._workspace
        return workspace is None or unquote(uri) in workspace.text_documents

    def _send_handler_result(self, future: Future[Any], *, msg_id: Any) -> None:
        # A refusal (bad params, a Maestro error with its hint) is an answer, not a server fault:
        # one log line, not pygls' traceback in the editor's log for every bad request.
        if not future.cancelled() and isinstance(
            future.exception(), JsonRpcInvalidParams | Refused
        ):
            exc = future.exception()
            assert isinstance(exc, JsonRpcException)
            self._request_futures.pop(msg_id, None)
            log.info("request %s refused: %s", msg_id, exc.message.splitlines()[0])
            self._send_response(msg_id, error=exc.to_response_error())
            return
        super()._send_handler_result(future, msg_id=msg_id)

    def answer_parse_error(self, error: Exception) -> None:
        """Body that is not JSON: the reply JSON-RPC asks for (ParseError, id null)."""
        error_body = {"code": JsonRpcParseError.CODE, "message": f"not JSON: {error}"}
        self._send_data({"jsonrpc": JsonRPCProtocol.VERSION, "id": None, "error": error_body})

    def handle_message(self, message: Any) -> None:
        if isinstance(message, _Dropped):
            return
        if isinstance(message, _Unreadable):
            error = JsonRpcInvalidParams(f"{message.method}: {message.why}")
            self._send_response(message.id, error=error.to_response_error())
            return
        if isinstance(message, types.DidChangeTextDocumentNotification) and not self._is_open(
            message.params.text_document.uri
        ):
            # a client out of step; pygls would fail on it and pop an error up in the editor
            log.warning(
                "didChange for %s, which is not open: ignored", message.params.text_document.uri
            )
            return
        if not self.collector.running:
            self.collector.start()
        self.collector.touch()
        super().handle_message(message)

    def _send_data(self, data: Any) -> None:
        if not data:
            return
        if self.writer is None:
            log.error("unable to send data: no transport")
            return
        try:
            body = orjson.dumps(data, default=self._serialize_message, option=_ORJSON_OPTIONS)
        except TypeError:  # a value orjson cannot take (e.g. an int beyond 64 bits)
            super()._send_data(data)
            return
        try:
            if self._include_headers:
                header = (
                    f"Content-Length: {len(body)}\r\n"
                    f"Content-Type: {self.CONTENT_TYPE}; charset={self.CHARSET}\r\n\r\n"
                )
                body = header.encode("ascii") + body
            res = self.writer.write(body)
            if inspect.isawaitable(res):  # an async transport: keep the write alive until done
                task = asyncio.ensure_future(res)
                self._writes.add(task)
                task.add_done_callback(self._writes.discard)
        except BrokenPipeError:
            log.exception("error sending data: broken pipe")
            raise
        except Exception as error:
            log.exception("error sending data")
            self._server._report_server_error(error, JsonRpcInternalError)
