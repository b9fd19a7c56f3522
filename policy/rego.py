"""regopy (rego-cpp) behind a small typed surface: compile a module set once, query it often.

Two things regopy does that this module hides:

- rego-cpp prints compile errors to file descriptor 1. In the LSP server that descriptor is the
  protocol channel and in the CLI it is ``--json`` output, so compilation runs with fd 1 pointed
  at a temporary file (under a lock: descriptors are process-wide).
- ``Interpreter.query_bundle`` parses every answer with ``json`` and raises on answers that are
  errors; the low-level calls give the text, parsed here with orjson, and errors become typed.
- regopy loads rego-cpp with ``ctypes.CDLL``, which releases the GIL around every C call. A
  decision makes a few dozen of them (one per input node), and while another thread runs Python
  each release costs a wait of up to the interpreter's switch interval (5 ms) to get the GIL
  back. The per-decision calls here go through a ``PyDLL`` handle on the same library, which
  keeps the GIL for the whole decision (a few hundred microseconds, no callbacks into Python).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
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
        # queries naming a rule (data.a.b) are entry points of one bundle: rego-cpp compiles
        # the modules once instead of once per query (5-10x less time opening a policy)
        self._entries = {k: e for k, q in queries.items() if (e := _entrypoint(q)) is not None}
        self._bundle: Any = None
        with _stdout_captured() as out:
            try:
                for name, text in modules.items():
                    self._interp.add_module(name, text)
                self._interp.add_data_json(orjson.dumps(dict(data)).decode())
                if self._entries:
                    names = list(dict.fromkeys(e.decode() for e in self._entries.values()))
                    self._bundle = self._interp.build(None, names)
                for key, query in queries.items():
                    if key not in self._entries:
                        self._bundles[key] = self._interp.build(query)
            except RegoError as exc:
                raise _syntax_error(str(exc), modules) from None
        if out and "Errors:" in out[0] and not self._bundles and self._bundle is None:
            raise PolicySyntaxError(out[0].strip(), where="policy")

    def query(self, key: str, value: Any) -> Any:
        """The entry point's value for ``value`` as input (None when undefined)."""
        return answer(self.query_raw(key, value))

    def query_raw(self, key: str, value: Any) -> bytes:
        """The entry point's answer for ``value`` as input, as rego-cpp's JSON text (read it
        with :func:`answer`); an error answer raises. The input is built as terms from Python
        values (rego-cpp's input calls): several times faster than handing rego-cpp JSON
        text, which it runs through its Rego parser."""
        c = _calls()
        impl = self._interp._impl
        _set_input(c, impl, value)
        entry = self._entries.get(key)
        if entry is not None:
            out = c.query_entry(impl, self._bundle._impl, entry)
        else:
            out = c.query(impl, self._bundles[key]._impl)
        if not out:
            raise PolicyEvalError("rego-cpp returned no output", where=key)
        try:
            ok = c.ok(out)
            size = c.json_size(out)
            buf = ctypes.create_string_buffer(size)
            if c.json(out, buf, size):
                raise PolicyEvalError("rego-cpp could not render the output", where=key)
        finally:
            c.free_output(out)
        text: bytes = buf.value
        if text == b"undefined":
            return text
        if not ok or text.startswith(b"(error"):
            decoded = text.decode(errors="replace")
            found = _MESSAGE.search(decoded)
            raise PolicyEvalError(found.group("msg") if found else decoded[:200], where=key)
        return text


def answer(text: bytes) -> Any:
    """The value of an answer :meth:`Compiled.query_raw` returned (None when undefined)."""
    if text == b"undefined":
        return None
    value = orjson.loads(text)
    expressions = value.get("expressions") if isinstance(value, dict) else None
    return expressions[0] if expressions else None


@dataclass(frozen=True, slots=True)
class _Calls:
    """rego-cpp's per-decision entry points, called with the GIL held (module docstring)."""

    new_input: Any
    string: Any
    integer: Any
    real: Any
    boolean: Any
    null: Any
    item: Any
    obj: Any
    arr: Any
    set_input: Any
    free_input: Any
    query: Any
    query_entry: Any
    ok: Any
    json_size: Any
    json: Any
    free_output: Any


ENTRY_POINTS = (
    "regoNewInput", "regoInputString", "regoInputInt", "regoInputFloat", "regoInputBoolean",
    "regoInputNull", "regoInputObjectItem", "regoInputObject", "regoInputArray", "regoSetInput",
    "regoFreeInput", "regoBundleQuery", "regoBundleQueryEntrypoint", "regoOutputOk",
    "regoOutputJSONSize", "regoOutputJSON", "regoFreeOutput",
)  # fmt: skip
"""The C functions of :class:`_Calls`, in its field order."""


@functools.cache
def _calls() -> _Calls:
    from regopy.rego_shared import rego

    held = ctypes.PyDLL(rego._name)

    def bind(name: str) -> Any:
        source, fn = getattr(rego, name), getattr(held, name)
        fn.argtypes, fn.restype = source.argtypes, source.restype  # as regopy declares them
        return fn

    return _Calls(*(bind(n) for n in ENTRY_POINTS))


_RULE_REF = re.compile(r"data((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def _entrypoint(query: str) -> bytes | None:
    """``data.a.b`` as a bundle entry point (``a/b``); None for any other query."""
    found = _RULE_REF.fullmatch(query.strip())
    return found.group(1)[1:].replace(".", "/").encode() if found else None


def _set_input(c: _Calls, interp: Any, value: Any) -> None:
    """The input built with rego-cpp's input calls straight (regopy's ``set_input`` wraps every
    node in Python and a ctypes buffer): strings passed as bytes, dispatch on the exact type.
    The interpreter copies the input, so the built one is freed at once."""
    string, integer, real, boolean = c.string, c.integer, c.real, c.boolean
    null, item, obj, arr = c.null, c.item, c.obj, c.arr
    handle = c.new_input()
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
        if failed or c.set_input(interp, handle):
            raise PolicyEvalError("rego-cpp refused the input", where="input")
    finally:
        c.free_input(handle)


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
