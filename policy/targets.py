"""What the workspace and team rules can tell apart of a cache input's ``target``.

A plan asks one ``serve`` decision per file it serves from the cache. When a workspace or team
module reads ``input.target``, every file is a different input, and each is one rego-cpp query
(~35-45 µs: most of a plan's policy time after a cache rule is edited). But rules mostly read
the target through a few string tests with literal arguments (``startswith(input.target,
"tests/live_")``, ``input.target == "tests/test_x.py"``): then the decision depends on the
target only through those tests' answers, and files whose answers are the same (and whose
other fields are) share one evaluation.

:func:`target_tests` finds them by reading the modules' tokens: it returns the tests when every
use of ``input.target`` in every module is one of the forms below, with a string literal, and
no module uses ``input`` other than as ``input.FIELD`` (nor names ``target`` otherwise, nor
defines or imports a name of those builtins), and each literal is printable ASCII without
escapes (:func:`plain`); else None (each file is evaluated). Only targets of the same kind are
grouped (the engine evaluates any other on its own). The forms,
with Rego's meaning and the same answer in Python for any string:

- ``startswith(input.target, "s")``, ``endswith(input.target, "s")``, ``contains(input.target,
  "s")``;
- ``input.target == "s"``, ``input.target != "s"``, and either one with the operands swapped;
- ``input.target in {"a", "b"}`` (or ``[...]``).

``glob.match``, ``regex.match`` and any other use are not read (their Python equivalents are
not the same language): such a set evaluates each file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

import orjson

Test = tuple[Literal["startswith", "endswith", "contains", "eq", "in"], tuple[str, ...]]

_TOKEN = re.compile(
    r"""(?P<space>[ \t\r\f\v]+)
    |(?P<newline>\n)
    |(?P<comment>\#[^\n]*)
    |(?P<string>"(?:[^"\\\n]|\\.)*")
    |(?P<raw>`[^`]*`)
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<number>[0-9][0-9.eE+-]*)
    |(?P<op>==|!=|:=|<=|>=|.)""",
    re.VERBOSE | re.DOTALL,
)
_FUNCTIONS = ("startswith", "endswith", "contains")
_ARITHMETIC = {"+", "-", "*", "/", "%", "&", "|"}
_AFTER_REF = {".", "[", "("}  # a deeper ref or a call: not the target's value itself


_PLAIN = re.compile(r"[ !#-\[\]-~]*")


def plain(text: str) -> bool:
    """Printable ASCII but ``"`` and ``\\``: a literal or target whose tests give the same
    answers in Python and rego-cpp (no escapes, no encodings). Another target is decided
    on its own."""
    return _PLAIN.fullmatch(text) is not None


class _Unread(Exception):
    """A use of the input the tests cannot stand for."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out = []
    for found in _TOKEN.finditer(text):
        kind = found.lastgroup or "op"
        if kind in ("space", "comment"):
            continue
        if kind == "string":
            try:
                value = orjson.loads(found.group())
            except orjson.JSONDecodeError:
                raise _Unread from None
            if not plain(value) or "\\" in found.group():
                # rego-cpp (1.5.2) compares an escaped literal as written, not decoded
                raise _Unread
            out.append(("string", value))
        else:
            out.append((kind, found.group()))
    return out


def _is_target(toks: list[tuple[str, str]], i: int) -> bool:
    return (
        toks[i] == ("name", "input")
        and toks[i + 1 : i + 3] == [("op", "."), ("name", "target")]
        and (i == 0 or toks[i - 1] != ("op", "."))
    )


def _literal_set(toks: list[tuple[str, str]], i: int) -> tuple[tuple[str, ...], int] | None:
    """String literals of a set or array literal opening at ``i``, and the index after it."""
    close = {"{": "}", "[": "]"}.get(toks[i][1]) if toks[i][0] == "op" else None
    if close is None:
        return None
    values: list[str] = []
    j = i + 1
    while j < len(toks):
        kind, value = toks[j]
        if kind == "newline":
            j += 1
        elif (kind, value) == ("op", close):
            return tuple(values), j + 1
        elif kind == "string":
            values.append(value)
            j += 1
            while j < len(toks) and toks[j][0] == "newline":
                j += 1
            if j < len(toks) and toks[j] == ("op", ","):
                j += 1
            elif j < len(toks) and toks[j] != ("op", close):
                return None
        else:
            return None
    return None


def _module_tests(text: str) -> list[Test]:
    toks = _tokens(text)
    toks.append(("end", ""))
    toks.append(("end", ""))
    toks.append(("end", ""))
    tests: list[Test] = []
    used: set[int] = set()  # indexes of the `input` tokens read by a test
    line_start = True
    depth = 0  # of brackets: a rule's head is at depth 0
    for i, (kind, value) in enumerate(toks):
        if kind == "newline":
            line_start = True
            continue
        if kind == "op" and value in "{[(":
            depth += 1
        elif kind == "op" and value in "}])":
            depth -= 1
        if kind == "name" and value in _FUNCTIONS and toks[i + 1] == ("op", "("):
            if line_start and depth == 0:  # a rule or function of that name
                raise _Unread
            if (
                (i == 0 or toks[i - 1] != ("op", "."))
                and _is_target(toks, i + 2)
                and toks[i + 5] == ("op", ",")
                and toks[i + 6][0] == "string"
                and toks[i + 7] == ("op", ")")
            ):
                tests.append((value, (toks[i + 6][1],)))  # type: ignore[arg-type]
                used.add(i + 2)
        elif kind == "name" and value == "import":
            j = i
            while toks[j][0] not in ("newline", "end"):
                if toks[j][0] == "name" and toks[j][1] in (*_FUNCTIONS, "input", "target"):
                    raise _Unread
                j += 1
        elif kind == "string" and toks[i + 1] in (("op", "=="), ("op", "!=")):
            before = toks[i - 1] if i > 0 else ("newline", "")
            if (
                before[1] not in _ARITHMETIC
                and _is_target(toks, i + 2)
                and toks[i + 5][1] not in _AFTER_REF | _ARITHMETIC
            ):
                tests.append(("eq", (value,)))
                used.add(i + 2)
        elif _is_target(toks, i) and i not in used:
            before = toks[i - 1] if i > 0 else ("newline", "")
            after = toks[i + 3]
            if before[1] in _ARITHMETIC:
                raise _Unread
            if (
                after in (("op", "=="), ("op", "!="))
                and toks[i + 4][0] == "string"
                and toks[i + 5][1] not in _AFTER_REF | _ARITHMETIC
            ):
                tests.append(("eq", (toks[i + 4][1],)))
                used.add(i)
            elif after == ("name", "in"):
                found = _literal_set(toks, i + 4)
                if found is not None and toks[found[1]][1] not in _AFTER_REF | _ARITHMETIC:
                    tests.append(("in", found[0]))
                    used.add(i)
        line_start = False
    for i, (kind, value) in enumerate(toks):
        if kind != "name":
            continue
        if value == "input":
            # input whole (``input[k]``, ``x := input``, ``with input as``), or its target
            # other than in a test above
            if toks[i + 1] != ("op", ".") or (_is_target(toks, i) and i not in used):
                if i > 0 and toks[i - 1] == ("op", "."):
                    continue  # a field named input of something else (data.x.input)
                raise _Unread
        elif value == "target" and not (i >= 2 and _is_target(toks, i - 2) and i - 2 in used):
            raise _Unread
    return tests


def target_tests(texts: Iterable[str]) -> tuple[Test, ...] | None:
    """The string tests through which the modules read ``input.target`` (sorted, each once),
    or None when some module reads it (or the input whole) otherwise."""
    found: set[Test] = set()
    try:
        for text in texts:
            found.update(_module_tests(text))
    except _Unread:
        return None
    return tuple(sorted(found))


def answers(tests: tuple[Test, ...], target: str) -> list[bool]:
    """Each test's answer for ``target``, as Rego's builtin gives it."""
    out = []
    for kind, args in tests:
        if kind == "startswith":
            out.append(target.startswith(args[0]))
        elif kind == "endswith":
            out.append(target.endswith(args[0]))
        elif kind == "contains":
            out.append(args[0] in target)
        else:  # eq, in
            out.append(target in args)
    return out
