"""The values a module's top level computes without running any code but builtins'.

A module constant is often computed rather than written out (``MASK = tuple([1] * 31 + [2] *
29)``, ``LATER = list(MASK)``, ``del LATER[3]``, ``ALL = frozenset(NAMES)``). Such a statement
cannot have side effects or read anything but the names before it, so a change to it is seen
only by the code that reads the names whose values differ, as for an inert literal
(graph/fingerprints.py ``binds``). This module tells which top-level statements are of that
kind and the value history of each name they bind, by evaluating them: a statement counts only
when its evaluation here succeeds, so one that would raise at import stays module-level code.

Evaluated: constants, tuple/list/set/dict displays (``*`` and ``**`` unpacking included),
arithmetic and bitwise operators, unary operators, subscripts and slices, f-strings without a
format spec, and calls, positional only, of a few pure builtins (``tuple``, ``list``, ``range``,
``len``, ...); statements ``X = ...``, ``X: T = ...`` (the annotation is left to the caller),
``A, B = ...``, ``X += ...``, ``del X, X[i]`` and, on an evaluated list, dict or set, a plain
copy (``P = B.copy()``) and ``X.update(...)``/``append``/``extend``/``insert``/``add`` as a
statement with evaluated positional arguments (a change in place: every name may hold it).

Also the builders of the standard library a module's constants are commonly made with, named
through a plain top-level import of their module (``import struct``, ``import typing as t``,
``from struct import Struct``; `_MODULE_ATTRIBUTES`): ``struct.Struct``/``pack``/``calcsize``,
``pickle.dumps``, ``typing.cast``, ``string``'s constants and a few of ``sys``'s, plus the
non-mutating methods of `_METHODS` on evaluated values (``S.pack``, ``"x".encode("ascii")``).
Each has no effect but the value it returns (nothing registered, nothing kept elsewhere), and
is run here on the module's own values, so a statement that would raise stays module-level
code. Code of the workspace is never run: any other callee, attribute or name leaves the
statement unevaluated. A value read from the interpreter (``sys.version_info``: the tests' may
differ from Maestro's own) and whatever is computed from it counts by the statements' text
and the values they read, not by the value computed here.

A name counts only if no other code of the module may bind it (an import, a ``def``, a loop,
``global`` in a function, an assignment this module cannot evaluate), a builtin only if the
module binds no such name, an import only if it comes before and nothing else binds its name,
and nothing counts in a module with a star import. Values stay small (a bound on elements and
integer size); anything beyond stops the evaluation of that statement, which then stays
module-level code.
"""

from __future__ import annotations

import ast
import hashlib
import operator
import pickle
import string
import struct
import sys
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

_MAX_ELEMENTS = 100_000  # per value built, and per module in all
_MAX_INT_BITS = 4096
_MAX_ROUNDS = 8  # statements found unevaluable make the names they bind unknown: evaluate again

_BUILTINS: dict[str, Callable[..., Any]] = {
    "tuple": tuple,
    "list": list,
    "set": set,
    "frozenset": frozenset,
    "dict": dict,
    "range": range,
    "len": len,
    "sorted": sorted,
    "reversed": reversed,
    "min": min,
    "max": max,
    "sum": sum,
    "abs": abs,
    "int": int,
    "str": str,
    "float": float,
    "bool": bool,
    "zip": zip,
    "enumerate": enumerate,
}

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.BitOr: operator.or_,
    ast.BitAnd: operator.and_,
    ast.BitXor: operator.xor,
}
_IN_PLACE: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.iadd,
    ast.Sub: operator.isub,
    ast.Mult: operator.imul,
    ast.BitOr: operator.ior,
    ast.BitAnd: operator.iand,
    ast.BitXor: operator.ixor,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Invert: operator.invert,
    ast.Not: operator.not_,
}
_SCALARS = (type(None), bool, int, float, complex, str, bytes)
_CONTAINERS = (tuple, list, set, frozenset, dict, range)


class _Unevaluable(Exception):
    """The statement is not one this module evaluates (or it would raise)."""


def _new_struct(fmt: str | bytes) -> struct.Struct:
    made = struct.Struct(fmt)
    if made.size > _MAX_ELEMENTS:
        raise _Unevaluable
    return made


def _pack(fmt: str | bytes, *values: Any) -> bytes:
    if struct.calcsize(fmt) > _MAX_ELEMENTS:
        raise _Unevaluable
    return struct.pack(fmt, *values)


# What a plain import of a standard module may name, by its dotted name: values, and builders
# that only return a new value (their arguments are this module's evaluated values).
_MODULE_ATTRIBUTES: dict[str, Any] = {
    "struct.Struct": _new_struct,
    "struct.pack": _pack,
    "struct.calcsize": struct.calcsize,
    "pickle.dumps": pickle.dumps,
    "pickle.HIGHEST_PROTOCOL": pickle.HIGHEST_PROTOCOL,
    "pickle.DEFAULT_PROTOCOL": pickle.DEFAULT_PROTOCOL,
    "typing.cast": typing.cast,
    "sys.version_info": tuple(sys.version_info),
    "sys.hexversion": sys.hexversion,
    "sys.maxsize": sys.maxsize,
    "sys.maxunicode": sys.maxunicode,
    "sys.byteorder": sys.byteorder,
    **{
        f"string.{name}": getattr(string, name)
        for name in (
            "ascii_letters",
            "ascii_lowercase",
            "ascii_uppercase",
            "digits",
            "hexdigits",
            "octdigits",
            "punctuation",
            "printable",
            "whitespace",
        )
    },
}
# Values of the interpreter that runs the tests, which may not be the one evaluating here.
_INTERPRETER = frozenset(
    {"sys.version_info", "sys.hexversion", "pickle.HIGHEST_PROTOCOL", "pickle.DEFAULT_PROTOCOL"}
)
_MODULES = frozenset(name.rpartition(".")[0] for name in _MODULE_ATTRIBUTES)
_BUILDERS = frozenset(id(v) for v in _MODULE_ATTRIBUTES.values() if callable(v))
# Attributes read of an evaluated value: methods that return a new value and leave the object
# as it was, and plain data attributes.
_TEXT_METHODS = frozenset(
    {
        "lower",
        "upper",
        "strip",
        "lstrip",
        "rstrip",
        "split",
        "rsplit",
        "startswith",
        "endswith",
        "count",
        "index",
        "find",
        "join",
    }
)
_METHODS: dict[type, frozenset[str]] = {
    str: _TEXT_METHODS | {"encode"},
    bytes: _TEXT_METHODS | {"decode", "hex"},
    struct.Struct: frozenset({"pack", "unpack", "size", "format"}),
    tuple: frozenset({"count", "index"}),
    list: frozenset({"copy", "count", "index"}),
    dict: frozenset({"copy"}),
    set: frozenset({"copy"}),
}
# Called as a statement on a name the module evaluated (``P.update({...})``): a change in place,
# with the evaluated arguments only
_IN_PLACE_METHODS: dict[type, frozenset[str]] = {
    list: frozenset({"append", "extend", "insert"}),
    dict: frozenset({"update"}),
    set: frozenset({"add", "update"}),
}


class _Module:
    """A standard module named by a plain import (`_MODULES`): only its listed attributes."""

    def __init__(self, dotted: str) -> None:
        self.dotted = dotted


@dataclass(frozen=True, slots=True)
class ModuleValues:
    """`statements`: per top-level statement, the names an evaluated statement binds, deletes
    or changes in place (comma-joined), "" for any other. `values`: each name only evaluated
    statements bind -> a digest of its value after each of them (the same digest: the same
    values at every step of the import). `unbound`: those of the names deleted at the end, and
    the names other code binds that an evaluated del deletes."""

    statements: tuple[str, ...]
    values: dict[str, str]
    unbound: tuple[str, ...]


def module_values(
    tree: ast.Module,
    bound_elsewhere: Callable[[ast.stmt], Iterable[str]],
    bound_here: Callable[[ast.stmt], Iterable[str]] | None = None,
) -> ModuleValues:
    """The evaluated statements of `tree` and their names' value histories.
    `bound_elsewhere(stmt)`: the names a statement binds in the module's namespace (at any
    depth but inside function bodies) that is not one this module evaluates; `bound_here`:
    the same without the parameters of the functions it defines, to tell whether an import's
    name is bound once (`bound_elsewhere` when None)."""
    try:
        return _module_values(tree, bound_elsewhere, bound_here or bound_elsewhere)
    except RecursionError:
        return ModuleValues(("",) * len(tree.body), {}, ())


def _module_values(
    tree: ast.Module,
    bound_elsewhere: Callable[[ast.stmt], Iterable[str]],
    bound_here: Callable[[ast.stmt], Iterable[str]],
) -> ModuleValues:
    body = tree.body
    nothing = ModuleValues(("",) * len(body), {}, ())
    candidates: list[bool] = [_candidate(s) for s in body]
    unknown: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
            return nothing
        if isinstance(node, ast.Global):
            unknown.update(node.names)
    declared = set(unknown)
    for stmt, candidate in zip(body, candidates, strict=True):
        if not candidate:
            unknown.update(bound_elsewhere(stmt))
    bound = unknown | {n for s, c in zip(body, candidates, strict=True) if c for n in _targets(s)}
    builtins = {k: v for k, v in _BUILTINS.items() if k not in bound}
    modules = _standard_imports(body, bound_here, declared)
    for _ in range(_MAX_ROUNDS):
        found = _evaluate(body, candidates, unknown, builtins, modules)
        if found is None:
            return nothing
        failed, result = found
        if not failed:
            return result
        for index in failed:
            candidates[index] = False
            unknown.update(_targets(body[index]))
    return nothing


def _standard_imports(
    body: list[ast.stmt],
    bound_here: Callable[[ast.stmt], Iterable[str]],
    declared: set[str],
) -> dict[str, tuple[int, str]]:
    """Each name a top-level ``import``/``from ... import`` of `_MODULES` binds and nothing else
    in the module binds (no other statement at any depth but function bodies, no ``global``
    in `declared`) -> (the index of that statement, the dotted name it binds)."""
    found: dict[str, tuple[int, str]] = {}
    seen: dict[str, int] = {}
    for index, stmt in enumerate(body):
        for name in set(bound_here(stmt)):
            seen[name] = seen.get(name, 0) + 1
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname is not None:
                    found[alias.asname] = (index, alias.name)
                elif "." not in alias.name:
                    found[alias.name] = (index, alias.name)
        elif isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module:
            for alias in stmt.names:
                found[alias.asname or alias.name] = (index, f"{stmt.module}.{alias.name}")
    return {
        name: (index, dotted)
        for name, (index, dotted) in found.items()
        if seen.get(name) == 1
        and name not in declared
        and (dotted in _MODULES or dotted in _MODULE_ATTRIBUTES)
    }


def _evaluate(
    body: list[ast.stmt],
    candidates: list[bool],
    unknown: set[str],
    builtins: dict[str, Callable[..., Any]],
    modules: dict[str, tuple[int, str]],
) -> tuple[list[int], ModuleValues] | None:
    """One pass over `body`: (indices of candidates that failed, the result if none did);
    None when the module's values grow past the bound."""
    env: dict[str, Any] = {}
    tainted: set[str] = set()  # names computed from a value of the interpreter (`_INTERPRETER`)
    history: dict[str, str] = {}
    statements: list[str] = []
    failed: list[int] = []
    deleted: set[str] = set()  # names of `unknown` a del may leave unbound
    budget = [_MAX_ELEMENTS]
    for index, (stmt, candidate) in enumerate(zip(body, candidates, strict=True)):
        # a del may name what other code bound (below); an assignment may not
        names = [] if not candidate or isinstance(stmt, ast.Delete) else _targets(stmt)
        if not candidate or unknown.intersection(names):
            if candidate:
                failed.append(index)
                unknown.update(_targets(stmt))
            statements.append("")
            continue
        imported = {n: d for n, (at, d) in modules.items() if at < index and n not in env}
        evaluator = _Evaluator(env, builtins, budget, unknown, imported, tainted)
        try:
            names, touched = evaluator.run(stmt)
            deleted |= evaluator.deleted
            values = {n: _canonical(env[n]) if n in env else "<unbound>" for n in touched}
            if evaluator.interpreted:
                # the tests' interpreter may compute another value: the statement counts by
                # its text and by what it read
                read = ",".join(f"{n}={history.get(n, '')}" for n in sorted(evaluator.read))
                text = ast.dump(stmt)
                values = {n: f"{v}|{text}|{read}" for n, v in values.items()}
                tainted.update(touched)
        except _Budget:
            return None
        except Exception:  # _Unevaluable, or a builtin's error on builtin values
            # what it binds is unknown from here on (earlier statements binding it count as
            # unevaluated in the next pass)
            failed.append(index)
            unknown.update(_targets(stmt))
            statements.append("")
            continue
        for name, value in values.items():
            step = f"{history.get(name, '')}|{value}".encode()
            history[name] = hashlib.sha256(step).hexdigest()[:16]
        statements.append(",".join(sorted(names)))
    unbound = tuple(sorted({n for n in history if n not in env} | deleted))
    return failed, ModuleValues(tuple(statements), history, unbound)


def _candidate(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Assign):
        return all(_name_targets(t) for t in stmt.targets)
    if isinstance(stmt, ast.AnnAssign):
        # its annotation is the caller's (evaluated or not, it binds nothing)
        return stmt.simple == 1 and isinstance(stmt.target, ast.Name) and stmt.value is not None
    if isinstance(stmt, ast.AugAssign):
        return isinstance(stmt.target, ast.Name)
    if isinstance(stmt, ast.Delete):
        return all(
            isinstance(t, ast.Name)
            or (isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name))
            for t in stmt.targets
        )
    return _in_place_call(stmt) is not None


def _in_place_call(stmt: ast.stmt) -> ast.Call | None:
    """``name.method(...)`` as a statement, no keyword: a change in place of that name."""
    call = stmt.value if isinstance(stmt, ast.Expr) else None
    if not isinstance(call, ast.Call) or call.keywords:
        return None
    func = call.func
    if not isinstance(func, ast.Attribute) or not isinstance(func.value, ast.Name):
        return None
    return call


def _name_targets(target: ast.expr) -> bool:
    if isinstance(target, ast.Name):
        return True
    return isinstance(target, ast.Tuple | ast.List) and all(
        isinstance(e, ast.Name) for e in target.elts
    )


def _targets(stmt: ast.stmt) -> list[str]:
    """The module names a candidate statement binds, deletes or changes in place."""
    found: list[str] = []
    targets = (
        stmt.targets
        if isinstance(stmt, ast.Assign | ast.Delete)
        else [stmt.target]
        if isinstance(stmt, ast.AugAssign | ast.AnnAssign)
        else []
    )
    call = _in_place_call(stmt)
    if call is not None:
        assert isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name)
        found.append(call.func.value.id)
    for target in targets:
        if isinstance(target, ast.Name):
            found.append(target.id)
        elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
            found.append(target.value.id)
        elif isinstance(target, ast.Tuple | ast.List):
            found.extend(e.id for e in target.elts if isinstance(e, ast.Name))
    return found


class _Budget(Exception):
    """The module's values grew past the bound: none of them is evaluated."""


class _Evaluator:
    def __init__(
        self,
        env: dict[str, Any],
        builtins: dict[str, Callable[..., Any]],
        budget: list[int],
        unknown: set[str],
        modules: dict[str, str] | None = None,
        tainted: set[str] | None = None,
    ) -> None:
        self.env = env
        self.builtins = builtins
        self.budget = budget
        self.unknown = unknown
        self.modules = modules or {}  # name -> dotted name its standard import binds
        self.tainted = tainted if tainted is not None else set()
        self.deleted: set[str] = set()  # names of `unknown` a del deleted
        self.read: set[str] = set()  # the evaluated names read
        self.interpreted = False  # read a value of the interpreter, or a name computed from one

    def run(self, stmt: ast.stmt) -> tuple[list[str], list[str]]:
        """Executes `stmt` on `env` (a failure may leave it half changed: the caller then
        evaluates the module again without this statement). (The names it binds, deletes or
        changes, the names whose values it may have changed: those, and every name when it
        changed an object in place, which another name may hold.)"""
        if isinstance(stmt, ast.Assign):
            value = self.expr(stmt.value)
            staged: dict[str, Any] = {}
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    staged[target.id] = value
                    continue
                assert isinstance(target, ast.Tuple | ast.List)
                items = self.sized(list(value)) if _iterable(value) else None
                if items is None or len(items) != len(target.elts):
                    raise _Unevaluable
                for element, item in zip(target.elts, items, strict=True):
                    assert isinstance(element, ast.Name)
                    staged[element.id] = item
            self.env.update(staged)
            return _targets(stmt), _targets(stmt)
        if isinstance(stmt, ast.AnnAssign):
            assert isinstance(stmt.target, ast.Name) and stmt.value is not None
            self.env[stmt.target.id] = self.expr(stmt.value)
            return _targets(stmt), _targets(stmt)
        if isinstance(stmt, ast.AugAssign):
            assert isinstance(stmt.target, ast.Name)
            function = _IN_PLACE.get(type(stmt.op))
            if function is None or stmt.target.id not in self.env:
                raise _Unevaluable
            old = self.env[stmt.target.id]
            operand = self.expr(stmt.value)
            self.guard(old, operand, stmt.op)
            self.env[stmt.target.id] = self.check(self.call(function, [old, operand]))
            # a list, set or dict changes in place: another name may hold the same object
            name = [stmt.target.id]
            return name, list(self.env) if isinstance(old, list | set | dict) else name
        call = _in_place_call(stmt)
        if call is not None:
            assert isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name)
            held = self.expr(call.func.value)
            if call.func.attr not in _IN_PLACE_METHODS.get(type(held), ()):
                raise _Unevaluable
            args = self.items(call.args)
            self.call(getattr(held, call.func.attr), args)
            self.check(held)
            # another name may hold the same object
            return [call.func.value.id], list(self.env)
        assert isinstance(stmt, ast.Delete)
        # A name other code bound (`unknown`) may be deleted, or an item of it at a constant
        # index: that does the same with either version of the evaluated statements, whose
        # values that code does not read (a read of a changed one is module-level code reading
        # it). Such a name stays unknown, and is listed among the statement's names (a change
        # to it is a change to that name) and, deleted, among the unbound (it may be so).
        names: list[str] = []
        in_place = False
        for target in stmt.targets:
            if isinstance(target, ast.Name):
                if target.id in self.unknown:
                    names.append(target.id)
                    self.deleted.add(target.id)
                    continue
                if target.id not in self.env:
                    raise _Unevaluable
                del self.env[target.id]
                names.append(target.id)
                continue
            assert isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name)
            if target.value.id in self.unknown:
                if not _constant(target.slice):
                    raise _Unevaluable
                names.append(target.value.id)
                continue
            held = self.expr(target.value)
            if not isinstance(held, list | dict):
                raise _Unevaluable
            self.call(operator.delitem, [held, self.index(target.slice)])
            names.append(target.value.id)
            in_place = True
        known = [n for n in names if n not in self.unknown]
        return names, list({*self.env, *known}) if in_place else known

    def index(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Slice):
            return slice(
                *(None if p is None else self.expr(p) for p in (node.lower, node.upper, node.step))
            )
        return self.expr(node)

    def expr(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in self.env:
                self.read.add(node.id)
                self.interpreted |= node.id in self.tainted
                return self.env[node.id]
            if node.id in self.modules:
                return self.imported(self.modules[node.id])
            raise _Unevaluable
        if isinstance(node, ast.Attribute):
            held = self.expr(node.value)
            if isinstance(held, _Module):
                return self.imported(f"{held.dotted}.{node.attr}")
            if node.attr not in _METHODS.get(type(held), ()):
                raise _Unevaluable
            return getattr(held, node.attr)
        if isinstance(node, ast.JoinedStr):
            parts: list[str] = []
            for part in node.values:
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    parts.append(part.value)
                    continue
                if not isinstance(part, ast.FormattedValue) or part.format_spec is not None:
                    raise _Unevaluable
                converters: dict[int, Callable[[Any], str]] = {
                    -1: str,
                    115: str,
                    114: repr,
                    97: ascii,
                }
                convert = converters[part.conversion]
                parts.append(self.check(self.call(convert, [self.expr(part.value)])))
            return self.check("".join(self.sized(parts)))
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = self.items(node.elts)
            kind = {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)]
            return self.check(self.call(kind, [items]))
        if isinstance(node, ast.Dict):
            pairs: list[tuple[Any, Any]] = []
            for k, v in zip(node.keys, node.values, strict=True):
                if k is not None:
                    pairs.append((self.expr(k), self.expr(v)))
                    continue
                unpacked = self.expr(v)  # ``**X``: its items, in order
                if type(unpacked) is not dict:
                    raise _Unevaluable
                pairs.extend(self.sized(list(unpacked.items())))
            return self.check(self.call(dict, [pairs]))
        if isinstance(node, ast.BinOp):
            function = _BINARY.get(type(node.op))
            if function is None:
                raise _Unevaluable
            left, right = self.expr(node.left), self.expr(node.right)
            self.guard(left, right, node.op)
            return self.check(self.call(function, [left, right]))
        if isinstance(node, ast.UnaryOp):
            return self.check(self.call(_UNARY[type(node.op)], [self.expr(node.operand)]))
        if isinstance(node, ast.Subscript):
            return self.check(
                self.call(operator.getitem, [self.expr(node.value), self.index(node.slice)])
            )
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id in self.builtins:
                if node.keywords or node.func.id in self.env:
                    raise _Unevaluable
                args = self.items(node.args)
                return self.check(self.call(self.builtins[node.func.id], args))
            return self.check(self.build(node))
        raise _Unevaluable

    def imported(self, dotted: str) -> Any:
        """What a standard import names: a `_Module`, or one of `_MODULE_ATTRIBUTES`."""
        if dotted in _MODULES:
            return _Module(dotted)
        if dotted not in _MODULE_ATTRIBUTES:
            raise _Unevaluable
        self.interpreted |= dotted in _INTERPRETER
        return _MODULE_ATTRIBUTES[dotted]

    def build(self, node: ast.Call) -> Any:
        """A call of a standard builder (`_MODULE_ATTRIBUTES`) or of a method of `_METHODS` on
        an evaluated value, with evaluated arguments (keywords too)."""
        function = self.expr(node.func)
        method = isinstance(function, types.BuiltinMethodType) and _method(function)
        if id(function) not in _BUILDERS and not method:
            raise _Unevaluable
        args = self.items(node.args)
        keywords: dict[str, Any] = {}
        for keyword in node.keywords:
            if keyword.arg is None:
                raise _Unevaluable
            keywords[keyword.arg] = self.expr(keyword.value)
        for arg in [*args, *keywords.values()]:
            if not (_allowed(arg) or _built(arg)):
                raise _Unevaluable
        if method and function.__name__ == "join" and args:
            items = args[0] = self.sized(list(args[0]))
            size = len(function.__self__) * len(items) + sum(map(_length, items))
            if size > _MAX_ELEMENTS:
                raise _Unevaluable
        try:
            return function(*args, **keywords)
        except (ArithmeticError, LookupError, TypeError, ValueError, struct.error) as error:
            raise _Unevaluable from error

    def items(self, nodes: list[ast.expr]) -> list[Any]:
        out: list[Any] = []
        for node in nodes:
            if isinstance(node, ast.Starred):
                value = self.expr(node.value)
                if not _iterable(value):
                    raise _Unevaluable
                out.extend(self.sized(list(value)))
            else:
                out.append(self.expr(node))
        return self.sized(out)

    def call(self, function: Callable[..., Any], args: list[Any]) -> Any:
        for arg in args:
            if not _allowed(arg):
                raise _Unevaluable
        try:
            return function(*args)
        except (ArithmeticError, LookupError, TypeError, ValueError) as error:
            raise _Unevaluable from error

    def guard(self, left: Any, right: Any, op: ast.operator) -> None:
        """Refuses an operation whose result would be too big before it is computed."""
        if isinstance(op, ast.Mult):
            for a, b in ((left, right), (right, left)):
                sequence = isinstance(a, str | bytes | tuple | list)
                if sequence and isinstance(b, int) and len(a) * max(b, 0) > _MAX_ELEMENTS:
                    raise _Unevaluable
        if (
            isinstance(op, ast.Pow | ast.LShift)
            and isinstance(left, int)
            and isinstance(right, int)
        ):
            bits = (
                left.bit_length() * right if isinstance(op, ast.Pow) else left.bit_length() + right
            )
            if right < 0 or bits > _MAX_INT_BITS:
                raise _Unevaluable

    def sized(self, items: list[Any]) -> list[Any]:
        self.budget[0] -= len(items)
        if self.budget[0] < 0:
            raise _Budget
        if len(items) > _MAX_ELEMENTS:
            raise _Unevaluable
        return items

    def check(self, value: Any) -> Any:
        if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
            raise _Unevaluable
        if isinstance(value, str | bytes | tuple | list | set | frozenset | dict | range):
            if len(value) > _MAX_ELEMENTS:
                raise _Unevaluable
            self.budget[0] -= len(value) if not isinstance(value, range) else 1
            if self.budget[0] < 0:
                raise _Budget
        return value


def _constant(node: ast.expr) -> bool:
    """Does `node` (an index or a slice) read no name?"""
    return not any(isinstance(n, ast.Name) for n in ast.walk(node))


def _iterable(value: Any) -> bool:
    return isinstance(value, (str, bytes, *_CONTAINERS)) or type(value).__name__ in {
        "list_reverseiterator",
        "reversed",
        "zip",
        "enumerate",
    }


def _allowed(value: Any) -> bool:
    """Only values whose operations are the builtins' own (no user class, no callable)."""
    return type(value) in (*_SCALARS, *_CONTAINERS) or _iterable(value)


def _length(item: Any) -> int:
    return len(item) if isinstance(item, str | bytes) else 0


def _method(function: Any) -> bool:
    """A method of `_METHODS` bound to an evaluated value."""
    owner = getattr(function, "__self__", None)
    if not (_allowed(owner) or isinstance(owner, struct.Struct)):
        return False
    return function.__name__ in _METHODS.get(type(owner), ())


def _built(value: Any) -> bool:
    """A value a standard builder made (beside the builtins' `_allowed`)."""
    if isinstance(value, types.BuiltinMethodType):
        return _method(value)
    return type(value) is struct.Struct


def _canonical(value: Any) -> str:
    """The same text for equal values of the same types, whatever the hash seed; an iterator
    (state that a read consumes) is no value."""
    kind = type(value)
    if kind is struct.Struct:
        return f"struct.Struct:{value.format!r}"
    if kind is types.BuiltinMethodType and _method(value):
        return f"method:{_canonical(value.__self__)}.{value.__name__}"
    if kind in _SCALARS:
        return f"{kind.__name__}:{value!r}"
    if kind in (tuple, list):
        return f"{kind.__name__}[" + ",".join(_canonical(v) for v in value) + "]"
    if kind in (set, frozenset):
        return f"{kind.__name__}{{" + ",".join(sorted(_canonical(v) for v in value)) + "}"
    if kind is dict:
        return (
            "dict{" + ",".join(f"{_canonical(k)}:{_canonical(v)}" for k, v in value.items()) + "}"
        )
    if kind is range:
        return f"range:{value!r}"
    raise _Unevaluable
