"""regopy (rego-cpp) behind a small typed surface: compile a module set once, query it often.

Two things regopy does that this module hides:

- rego-cpp prints compile errors to file descriptor 1. In the LSP server that descriptor is the
  protocol channel and in the CLI it is ``--json`` output, so compilation runs with fd 1 pointed
  at a temporary file (under a lock: descriptors are process-wide).
- ``Interpreter.query_bundle`` parses every answer with ``json`` and raises on answers that are
  errors; the low-level calls give the text, parsed here with orjson, and errors become typed.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from maestro.errors import PolicyEvalError, PolicySyntaxError

_FD_LOCK = threading.Lock()
# (error 8:bad.rego|31|2 (errormsg 24:Invalid boolean operator) ...
_ERROR = re.compile(r"\(error (?:\d+:(?P<file>[^|\s]*))?\|(?P<offset>\d+)\|(?P<length>\d+)")
_MESSAGE = re.compile(r"\(errormsg \d+:(?P<msg>[^)\n]*)")


@dataclass(frozen=True, slots=True)
class Location:
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


def locate(sources: Mapping[str, str], file: str, offset: int) -> Location:
    """Line and column (1-based) of a byte offset in one of ``sources``."""
    text = sources.get(file, "")
    data = text.encode()[:offset].decode(errors="replace")
    line = data.count("\n") + 1
    column = len(data) - (data.rfind("\n") + 1) + 1
    return Location(file, line, column)


@contextlib.contextmanager
def _stdout_captured() -> Iterator[list[str]]:
    captured: list[str] = []
    with _FD_LOCK, tempfile.TemporaryFile() as sink:
        saved = os.dup(1)
        try:
            os.dup2(sink.fileno(), 1)
            yield captured
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode(errors="replace"))


class Compiled:
    """One compiled module set with one entry point per query. Not thread-safe by itself (an
    interpreter holds one input at a time): callers hold :attr:`lock` around :meth:`query`."""

    def __init__(
        self, modules: Mapping[str, str], data: Mapping[str, Any], queries: Mapping[str, str]
    ) -> None:
        from regopy import Interpreter, RegoError

        self.lock = threading.Lock()
        self._interp = Interpreter()
        self._bundles: dict[str, Any] = {}
        with _stdout_captured() as out:
            try:
                for name, text in modules.items():
                    self._interp.add_module(name, text)
                self._interp.add_data_json(orjson.dumps(dict(data)).decode())
                for key, query in queries.items():
                    self._bundles[key] = self._interp.build(query)
            except RegoError as exc:
                raise _syntax_error(str(exc), modules) from None
        if out and "Errors:" in out[0] and not self._bundles:
            raise PolicySyntaxError(out[0].strip(), where="policy")

    def query(self, key: str, value: Any) -> Any:
        """The entry point's value for ``value`` as input (None when undefined). The input is
        built as terms from Python values (regopy's ``set_input``): several times faster than
        handing rego-cpp JSON text, which it runs through its Rego parser."""
        from regopy.rego_shared import (
            rego_bundle_query,
            rego_free_output,
            rego_output_ok,
            rego_output_string,
        )

        _set_input(self._interp._impl, value)
        out = rego_bundle_query(self._interp._impl, self._bundles[key]._impl)
        try:
            ok = rego_output_ok(out)
            text = rego_output_string(out)
        finally:
            rego_free_output(out)
        if text == "undefined":
            return None
        if not ok or text.startswith("(error"):
            found = _MESSAGE.search(text)
            raise PolicyEvalError(found.group("msg") if found else text[:200], where=key)
        answer = orjson.loads(text)
        expressions = answer.get("expressions") if isinstance(answer, dict) else None
        return expressions[0] if expressions else None


def _set_input(interp: Any, value: Any) -> None:
    """``Interpreter.set_input`` without its per-node Python wrappers: the C calls straight,
    strings passed as bytes (no ctypes buffer each) and dispatch on the exact type. Half the
    cost of a decision's input on a small input; the interpreter copies the input, so the
    built one is freed at once."""
    from regopy.rego_shared import rego

    make = rego.regoInputString, rego.regoInputInt, rego.regoInputFloat
    boolean, null, item = rego.regoInputBoolean, rego.regoInputNull, rego.regoInputObjectItem
    obj, arr = rego.regoInputObject, rego.regoInputArray
    string, integer, real = make
    handle = rego.regoNewInput()
    failed = 0

    def add(v: Any) -> None:
        nonlocal failed
        kind = type(v)
        if kind is str:
            failed |= string(handle, v.encode())
        elif kind is bool:
            failed |= boolean(handle, v)
        elif kind is int:
            failed |= integer(handle, v)
        elif kind is float:
            failed |= real(handle, v)
        elif v is None:
            failed |= null(handle)
        elif kind is dict:
            for k, x in v.items():
                failed |= string(handle, str(k).encode())
                add(x)
                failed |= item(handle)
            failed |= obj(handle, len(v))
        elif kind is list or kind is tuple:
            for x in v:
                add(x)
            failed |= arr(handle, len(v))
        else:
            raise PolicyEvalError(f"cannot pass a {kind.__name__} to Rego", where="input")

    try:
        add(value)
        if failed or rego.regoSetInput(interp, handle):
            raise PolicyEvalError("rego-cpp refused the input", where="input")
    finally:
        rego.regoFreeInput(handle)


def _syntax_error(text: str, modules: Mapping[str, str]) -> PolicySyntaxError:
    found = _ERROR.search(text)
    message = _MESSAGE.search(text)
    what = message.group("msg").strip() if message else "the policy does not compile"
    if found is None or not found.group("file"):
        return PolicySyntaxError(what, where="policy", hint="run `maestro policy check`")
    loc = locate(modules, found.group("file"), int(found.group("offset")))
    return PolicySyntaxError(
        what, where=str(loc), hint="fix the module; the last good policy stays in force"
    )
