"""AST fingerprints of a Python file: one per function, one for the module-level code.

Function-level test selection (docs/action-key.md, "Node-level selection") compares the
fingerprints of two versions of a file to tell *which* code changed. A test node re-runs when it
executed a changed function; every node whose file imports the module re-runs when the
module-level code changed. So the split must put each piece of code where a test can observe it:

- every ``def``/``async def`` has its own fingerprint under its qualified name, exactly as CPython
  spells ``co_qualname`` (``Config.from_file``, ``outer.<locals>.inner``). It covers the body
  *and* the whole ``def`` statement: parameters, default values, annotations, decorators;
- everything else is owned by the code that runs it: class bodies and module constants belong to
  the module-level code; lambdas, comprehensions and generator expressions belong to the
  function they are written in; a nested ``def`` contributes to its owner only through its
  ``def`` statement;
- the ``def`` statement also counts for its owner (it runs when the owner runs), but only as far
  as code that never calls the function can observe it. Kept in the owner: the name, the
  parameter list (names, kinds, which ones have defaults: a call that used to raise
  ``TypeError`` before the function started never recorded it), decorators (they run at
  definition time and may register the function or read its signature: pytest fixtures, route
  tables, ``singledispatch``), and any default or annotation that is evaluated and not inert.
  Left to the function alone: default *values* that are inert literals (constants and
  containers of constants: evaluating them cannot raise or have side effects, and only a call
  of the function uses them) and annotations that are never evaluated (``from __future__ import
  annotations``) or inert. The header stays entirely with the owner when a decorator outside a
  short allowlist wraps the ``def`` (``property``, ``staticmethod``, ``classmethod``,
  ``functools`` caches, ``contextmanager`` ... do not read the signature) or when the file
  uses the function's name other than to call it (``register(handler)``, ``{"x": handler}``,
  ``callback=self.handler``): the function object may reach code that introspects it;
- a function memoised across calls (``functools.cache``, ``lru_cache``, ``cached_property``)
  can change what a test gets without the test executing it: the test is served from the cache
  an earlier test filled (measured: more-itertools' ``@lru_cache`` ``_shift_to_odd``, reached
  through ``totient`` in one test and cached by another). When its file only ever calls it by
  name, it is listed in ``memoised`` and selection re-runs, besides its executors, every test
  that executed a function naming it (``refs``: the names a function's code reads, attribute
  names and imported names included), or every importer if module-level code names it. When the
  name escapes (``cached_property`` read as an attribute, ``f = _helper``), its body counts for
  its owner. Memoisation written by hand (a dict checked before calling a helper) is not
  detected: a test that only ever hits such a cache is not re-run when the helper changes;
- code under ``if TYPE_CHECKING:`` (``typing.TYPE_CHECKING``; the ``else`` branch of ``if not
  TYPE_CHECKING:``) never runs: it does not count at all, so editing a type alias or a typing-only
  import there re-runs nothing;
- comments, blank lines and formatting do not count (``ast.dump`` without positions); docstrings do
  (they are code: ``__doc__``, doctests). A function's docstring also counts for its owner: its
  ``__doc__`` exists from the ``def`` on and is read without a call (``help()``, a test that every
  export has one, a command-line tool's help text).

Class bodies stay module-level on purpose: a class attribute is read through instances handed
around by any code (``resp.encoding`` reads no code object of the class), by subclasses in other
modules, and by generated methods the tracer does not see (``dataclass`` ``__init__`` is compiled
from a string), so no per-node record bounds who observes it. One exception is kept apart
(``class_frames``/``class_binds``): the inert values of *private* attributes of a *plain*
class (no decorator, base or keyword), which only workspace code spells; selection then
finds their readers by name, or by how they read names they do not spell (``dynamic``).
Another: a class statement that can do nothing but bind its name (``class_heads``: no base,
no keyword, decorators and calls of class builders only) changed outside its method bodies
counts as a change of that name; selection re-runs the code reading the name and the tests
that ran one of its methods (an instance is made by code naming the class, or kept from it).
What remains unobserved is
introspection of a function that never runs (``inspect.signature`` or ``__defaults__`` read by
code in another module, of a function that is never used as a value in its own file): a changed
inert default or annotation then re-runs only the tests that executed the function.

Two definitions with the same qualified name (property getter and setter, ``if``/``else``
variants) share one combined fingerprint, so a change to either counts for both.

A file that does not parse has only a module fingerprint derived from its bytes: any change to it
is a module-level change. Results are cached by content digest, on disk (``FingerprintStore``)
so that the *previous* version of a file can be diffed without keeping its source, and in memory
(``FingerprintMemo``, one per store: the daemon keeps one store per workspace for its lifetime).
"""

from __future__ import annotations

import ast
import contextlib
import copy
import hashlib
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import msgpack

from maestro.graph.module_values import module_values
from maestro.lru import LruCache

FORMAT = 22
"""Version of the fingerprint definition; stored with each cached entry."""

_FP_LEN = 16  # hex chars kept per fingerprint (64 bits: collisions are not a practical concern)
_MEMORY_ENTRIES = 4096

_Def = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True, slots=True)
class FileFingerprints:
    """Fingerprints of one version of a file."""

    module: str
    """Fingerprint of the module-level code (everything not inside a function body)."""
    functions: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Qualified name -> (fingerprint, line of its ``def`` or first decorator)."""
    statements: tuple[tuple[str, int], ...] = ()
    """Per top-level statement: (fingerprint, line); locates a module-level change."""
    parse_error: bool = False
    refs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Qualified name -> the names its own code reads (nested bodies excluded), sorted."""
    raised: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Qualified name -> those of its `refs` it reads only as what a ``raise`` statement calls,
    unconditionally (not under ``and``/``or``, ``x if c else y``, a comprehension or a lambda):
    whenever that code reads the name, the callee runs."""
    module_refs: tuple[str, ...] = ()
    """The names module-level code reads (class bodies included, function bodies not)."""
    memoised: tuple[str, ...] = ()
    """Memoised functions (``cache``/``lru_cache``) only ever called by name in this file."""
    binds: tuple[str, ...] = ()
    """Per top-level statement: the names it binds if it is a plain assignment of an inert
    value (``X = 3``, ``NAMES = ("a", "b")``), comma-joined; "" for any other statement."""
    module_loads: tuple[str, ...] = ()
    """The names module-level code *reads* (loads, attribute names, imported names; class
    bodies, decorators and evaluated defaults included, function bodies not), except the
    names of ``imports_from``."""
    escapes: bool = False
    """The names of *any* module may be reached without being named: ``getattr`` with a
    computed name, ``vars``/``dir``/``getmembers`` or ``__dict__`` of a module,
    ``sys.modules[...]``, ``reload``."""
    escaping: tuple[str, ...] = ()
    """Where the code of `escapes` is: the qualnames of the innermost functions whose own code
    (lambdas and comprehensions in it included) does it, ``<module>`` for module-level code
    (class bodies, decorators and defaults evaluated there)."""
    escape_targets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Each scope of `escaping` -> the modules its code reaches the names of, as imported
    (``dateutil``, ``.sub``, ``pkg.sub``: ``getattr(dateutil, name)`` reads only what the
    package's namespace binds), ``*`` for a module known only at run time
    (``sys.modules[...]``, ``import_module(...)``, a variable holding one, ``globals``,
    ``reload``). A scope missing here: ``*``."""
    own_escapes: bool = False
    """This module's own names may be reached without being named: ``globals()``, ``vars()``
    or ``dir()`` without an argument, a module ``__getattr__`` or ``__dir__``."""
    code_namespace: bool = False
    """A module's namespace is merged into the globals of code this file compiles from text
    (`_merged_namespaces`): that code reads the names its text spells. A public name, or a
    private one spelled in a string (`private_strings`), may be read through it unnamed."""
    stars: tuple[str, ...] = ()
    """The modules ``from M import *`` reads, as written (leading dots for relative ones)."""
    imports_from: tuple[str, ...] = ()
    """``module:name`` for each ``from module import name`` (not renamed) run at module level
    outside class bodies: the name is bound here to the same object, under the same name."""
    annotations: tuple[str, ...] = ()
    """Per top-level statement: the fingerprint of the annotation an inert annotated
    assignment evaluates (``X: Dict[str, int] = {}``); "" for any other statement."""
    outlines: dict[str, Any] = field(default_factory=dict)
    """Qualified name -> ``[head, scope, block]``: the fingerprint of its ``def`` statement
    without the body, of its scope (locals, ``global``/``nonlocal`` names, free names, whether
    it is a generator) and its body's statement tree (``unexecuted_change``). Only for a name
    defined once, in a file whose scopes could be read."""
    class_frames: tuple[str, ...] = ()
    """Per top-level statement: for a plain class (``class C:``/``class C(object):``, no
    decorator, no keyword), the fingerprint of the statement with the values of its private
    inert attributes (`_private_attribute`) left out; "" for any other statement."""
    class_binds: tuple[str, ...] = ()
    """Per top-level statement: for a plain class, ``Class.name=fingerprint`` of each of those
    attribute values in body order, comma-joined; "" otherwise."""
    dynamic: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Qualified name (``<module>`` for module-level code and class bodies) -> how its own code
    reads attributes it does not spell: ``*`` (``getattr`` with a computed name, ``vars``,
    ``dir``, ``__dict__``, ``getmembers``, ``eval``, mock specs...) or ``^P`` (``getattr``
    with a name that starts with the literal P). Only for code that does."""
    private_strings: tuple[str, ...] = ()
    """The ``_private`` identifiers spelled inside string constants (``patch.object(C,
    "_x")``, ``"{0._x}".format``, ``eval``): code may read such an attribute by that string."""
    cached: tuple[str, ...] = ()
    """Every function with a memoising decorator, called by name only or not."""
    values: dict[str, str] = field(default_factory=dict)
    """Each name only top-level statements that compute from constants bind (``M = tuple([1] *
    31)``, ``N = list(M)``, ``del N[3]``, ``S = struct.Struct(FMT)``, ``P = S.pack``:
    graph/module_values.py) -> a digest of its values during the import. Such statements are
    listed in `binds` too, and their reads are left out of `module_loads`: a name whose values
    changed counts as changed itself."""
    unbound: tuple[str, ...] = ()
    """Those of the names of `values` that a ``del`` leaves unbound at the end of the import."""
    fixture_frames: tuple[str, ...] = ()
    """Per top-level statement: for a ``def`` that pytest's ``fixture(...)`` decorates with
    inert ``params``/``ids`` (``@pytest.fixture(params=(True, False))``), the fingerprint of
    the statement as its owner sees it with those values left out; "" for any other."""
    fixture_binds: tuple[str, ...] = ()
    """Per top-level statement: with a `fixture_frames` entry, ``name=fingerprint`` of those
    values (the function's name); "" otherwise."""
    fixture_params: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """A fixture function of `fixture_binds` with no other decorator -> one key per element of
    its ``params`` (its value and its pytest id): equal keys at the same index give the node of
    that element the same value under the same id. Only when each element's id is known and
    unique (pytest adds a suffix to repeated ids): constants of plain types, or ``ids`` strings."""
    fixture_defs: dict[str, str] = field(default_factory=dict)
    """A fixture function of `fixture_binds` with no other decorator -> the fingerprint of its
    whole ``def`` (body included) with its ``params``/``ids`` left out: equal, only those
    changed."""
    class_heads: tuple[str, ...] = ()
    """Per top-level statement: for a class statement whose execution can do nothing but bind
    its name (`_class_head`), ``Name|origins``: the modules, as imported, of the decorators and
    callables it runs ("=" for this module's own); "" for any other statement."""
    own_defs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Qualified name -> the names its own code reads only as its variables that nothing but its
    own nested ``def`` or ``class`` statements bind (`_own_defs`): such a read is of the
    function or class defined there, never of another of that name. Only where there are any."""
    class_reads: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Qualified name of a function outside any other function -> the names its own code reads
    only as global variables that this module binds by nothing but undecorated top-level
    ``class`` statements (`_class_bound`, `_global_reads`): such a read is of that class, never
    of a function of that name elsewhere. Only where there are any."""
    handed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Scope (as in `escaping`) -> what its code hands on as an object that may be a module
    (`_handed`): ``module:attributes`` as imported (``pkg:calc`` for ``from pkg import calc``
    or ``import pkg`` ... ``pkg.calc``, ``pkg.calc:`` for ``import pkg.calc as c``), given to
    a call, put in a container or an attribute, assigned, returned: the code it reaches may
    read the module's names by any name. Selection tells modules from other objects
    (`top_binds` of the module it comes from). Only where there are any."""
    top_binds: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Each name the module's own top level binds by an import -> how it binds it:
    ``module:name`` for ``from module import name``, ``module:`` for ``import module``, ``=``
    for any other binding of it there (a module object reaches such a binding only through
    code `handed` lists), ``?`` for a name some function declares ``global``. ``{"*":
    ("?",)}`` for a file calling ``globals()``: any name may be anything. With a star import or
    a module ``__getattr__``, every name bound is listed, and ``*`` says where a name no
    statement binds comes from: ``module:`` of each star import, ``?`` for ``__getattr__``.
    Otherwise a name not listed is no module."""

    def to_wire(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "module": self.module,
            "functions": {q: list(v) for q, v in self.functions.items()},
            "statements": [list(s) for s in self.statements],
            "parse_error": self.parse_error,
            "refs": {q: list(v) for q, v in self.refs.items()},
            "raised": {q: list(v) for q, v in self.raised.items()},
            "module_refs": list(self.module_refs),
            "memoised": list(self.memoised),
            "binds": list(self.binds),
            "module_loads": list(self.module_loads),
            "escapes": self.escapes,
            "escaping": list(self.escaping),
            "escape_targets": {q: list(v) for q, v in self.escape_targets.items()},
            "own_escapes": self.own_escapes,
            "code_namespace": self.code_namespace,
            "stars": list(self.stars),
            "annotations": list(self.annotations),
            "imports_from": list(self.imports_from),
            "outlines": self.outlines,
            "class_frames": list(self.class_frames),
            "class_binds": list(self.class_binds),
            "dynamic": {q: list(v) for q, v in self.dynamic.items()},
            "private_strings": list(self.private_strings),
            "cached": list(self.cached),
            "values": self.values,
            "unbound": list(self.unbound),
            "fixture_frames": list(self.fixture_frames),
            "fixture_binds": list(self.fixture_binds),
            "fixture_params": {q: list(v) for q, v in self.fixture_params.items()},
            "fixture_defs": self.fixture_defs,
            "class_heads": list(self.class_heads),
            "own_defs": {q: list(v) for q, v in self.own_defs.items()},
            "class_reads": {q: list(v) for q, v in self.class_reads.items()},
            "handed": {q: list(v) for q, v in self.handed.items()},
            "top_binds": {q: list(v) for q, v in self.top_binds.items()},
        }

    @classmethod
    def from_wire(cls, raw: object) -> FileFingerprints | None:
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            return None
        try:
            return cls(
                module=str(raw["module"]),
                functions={str(q): (str(v[0]), int(v[1])) for q, v in raw["functions"].items()},
                statements=tuple((str(s[0]), int(s[1])) for s in raw["statements"]),
                parse_error=bool(raw["parse_error"]),
                refs={str(q): tuple(map(str, v)) for q, v in raw["refs"].items()},
                raised={str(q): tuple(map(str, v)) for q, v in raw["raised"].items()},
                module_refs=tuple(map(str, raw["module_refs"])),
                memoised=tuple(map(str, raw["memoised"])),
                binds=tuple(map(str, raw["binds"])),
                module_loads=tuple(map(str, raw["module_loads"])),
                escapes=bool(raw["escapes"]),
                # kept before `escaping` was: anywhere
                escaping=tuple(
                    map(str, raw.get("escaping", ["<module>"] if raw["escapes"] else []))
                ),
                escape_targets={
                    str(q): tuple(map(str, v)) for q, v in raw["escape_targets"].items()
                },
                own_escapes=bool(raw["own_escapes"]),
                code_namespace=bool(raw["code_namespace"]),
                stars=tuple(map(str, raw["stars"])),
                annotations=tuple(map(str, raw["annotations"])),
                imports_from=tuple(map(str, raw["imports_from"])),
                outlines=dict(raw["outlines"]),
                class_frames=tuple(map(str, raw["class_frames"])),
                class_binds=tuple(map(str, raw["class_binds"])),
                dynamic={str(q): tuple(map(str, v)) for q, v in raw["dynamic"].items()},
                private_strings=tuple(map(str, raw["private_strings"])),
                cached=tuple(map(str, raw["cached"])),
                values={str(k): str(v) for k, v in raw["values"].items()},
                unbound=tuple(map(str, raw["unbound"])),
                fixture_frames=tuple(map(str, raw["fixture_frames"])),
                fixture_binds=tuple(map(str, raw["fixture_binds"])),
                fixture_params={
                    str(q): tuple(map(str, v)) for q, v in raw.get("fixture_params", {}).items()
                },
                fixture_defs={str(q): str(v) for q, v in raw.get("fixture_defs", {}).items()},
                class_heads=tuple(map(str, raw["class_heads"])),
                # kept before `own_defs` was: none known
                own_defs={str(q): tuple(map(str, v)) for q, v in raw.get("own_defs", {}).items()},
                # kept before `class_reads` was: none known
                class_reads={
                    str(q): tuple(map(str, v)) for q, v in raw.get("class_reads", {}).items()
                },
                handed={str(q): tuple(map(str, v)) for q, v in raw["handed"].items()},
                top_binds={str(q): tuple(map(str, v)) for q, v in raw["top_binds"].items()},
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):
            return None


@dataclass(frozen=True, slots=True)
class FingerprintDiff:
    """What changed between two versions of one file."""

    changed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    module_changed: bool = False
    module_line: int | None = None  # first module-level statement that differs (new version)
    lines: dict[str, int] = field(default_factory=dict)  # qualname -> line (new, or old if gone)
    module_names: tuple[str, ...] | None = None
    """When the module-level change is only plain assignments of inert values (added, changed
    or removed) and the names cannot escape, and values of private class attributes
    (`class_names`): the names they bind. None otherwise."""
    class_names: tuple[str, ...] | None = None
    """With `module_names`: ``Class.attribute`` of each private inert class attribute whose
    value changed (same classes, same attributes, same order). None when `module_names` is."""
    fixtures: tuple[str, ...] | None = None
    """When the module-level change is only the inert ``params``/``ids`` of pytest fixtures
    (`FileFingerprints.fixture_frames`): the names of those fixture functions. None otherwise."""
    classes: tuple[str, ...] = ()
    """With `module_names`: ``Name|origins`` (`FileFingerprints.class_heads`, both versions'
    origins) of each class statement among them that changed outside its method bodies."""

    @property
    def functions(self) -> set[str]:
        """Changed or deleted functions: the ones a test may have executed in the old version."""
        return {*self.changed, *self.deleted}

    @property
    def empty(self) -> bool:
        return not (self.changed or self.added or self.deleted or self.module_changed)


def _fp(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_FP_LEN]


def _def_line(node: _Def | ast.ClassDef) -> int:
    lines = [node.lineno, *(d.lineno for d in node.decorator_list)]
    return min(lines)


# Decorators known not to read the signature of what they wrap (last dotted part; a ``.setter``,
# ``.getter`` or ``.deleter`` of a property too). Anything else keeps the header with the owner.
_BENIGN_DECORATORS = frozenset(
    {
        "property",
        "staticmethod",
        "classmethod",
        "abstractmethod",
        "cached_property",
        "cache",
        "lru_cache",
        "wraps",
        "contextmanager",
        "asynccontextmanager",
        "overload",
        "override",
        "final",
        "setter",
        "getter",
        "deleter",
    }
)
_PLACEHOLDER = "<inert>"
# Decorators that keep results across calls, hence across tests: a test can get a result the
# function computed in an earlier test without executing it (``lru_cache`` hit).
_MEMOISING_DECORATORS = frozenset({"cache", "lru_cache", "cached_property"})


def _docstring(node: _Def) -> bool:
    """Does the function's body start with a docstring (its ``__doc__``)?"""
    first = node.body[0] if node.body else None
    return (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    )


def _decorator_name(decorator: ast.expr) -> str | None:
    node = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else None


def _benign(decorator: ast.expr) -> bool:
    return _decorator_name(decorator) in _BENIGN_DECORATORS


def _memoising(node: _Def) -> bool:
    return any(_decorator_name(d) in _MEMOISING_DECORATORS for d in node.decorator_list)


def _inert(node: ast.expr | None) -> bool:
    """Evaluating `node` can neither raise nor have side effects (constants and containers)."""
    if node is None or isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return all(_inert(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and _inert(k) for k in node.keys) and all(
            _inert(v) for v in node.values
        )
    if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):
        kind = type(node.operand.value)
        if isinstance(node.op, ast.Not):
            return True
        if isinstance(node.op, ast.USub | ast.UAdd):
            return kind in (int, float, complex)
        return isinstance(node.op, ast.Invert) and kind is int
    return False


def _type_checking(test: ast.expr) -> bool | None:
    """True for ``TYPE_CHECKING`` / ``typing.TYPE_CHECKING``, False for their negation, else None:
    the branch such a test selects at type-checking time never runs."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = _type_checking(test.operand)
        return None if inner is None else not inner
    if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
        return True
    if isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING":
        return True
    return None


def _lazy_annotations(tree: ast.Module) -> bool:
    """``from __future__ import annotations``: annotations are strings, never evaluated."""
    return any(
        isinstance(stmt, ast.ImportFrom)
        and stmt.module == "__future__"
        and any(a.name == "annotations" for a in stmt.names)
        for stmt in tree.body
    )


def _literal_attribute(call: ast.Call) -> str | None:
    """``getattr(x, "NAME")`` reads NAME as surely as ``x.NAME`` does."""
    if _decorator_name(call.func) in _ATTR_FUNCTIONS and len(call.args) >= 2:
        arg = call.args[1]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value
    return None


def _names(
    nodes: list[ast.AST],
    *,
    loads: bool = False,
    skip: frozenset[int] = frozenset(),
    raises: bool = True,
) -> set[str]:
    """Names `nodes` read or bind: variables, attribute names, imported names. A nested ``def``
    contributes its decorators and header only (its body is its own code). ``loads``: only the
    names read (``X = 3`` binds X, reads nothing; ``from m import X`` reads X from m).
    ``skip``: ids of nodes left out (with what they hold). ``raises=False``: not those of
    ``raise`` statements."""
    found: set[str] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if id(node) in skip or (not raises and isinstance(node, ast.Raise)):
            continue
        if isinstance(node, ast.Name):
            if not (loads and isinstance(node.ctx, ast.Store)):
                found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.Call) and (name := _literal_attribute(node)):
            found.add(name)
        elif isinstance(node, ast.alias):
            found.add(node.name.rpartition(".")[2])
            if node.asname and not loads:
                found.add(node.asname)
        elif loads and isinstance(node, ast.Global | ast.Nonlocal):
            found.update(node.names)
        stack.extend(_outside_body(node))
    return found


def _own_defs(function: ast.FunctionDef | ast.AsyncFunctionDef) -> frozenset[str]:
    """The names `function`'s own code reads (as variables, nested bodies excluded) that only
    its own nested ``def``/``class`` statements bind: no parameter, assignment, ``for``, ``with``,
    ``except``, ``match`` or walrus target, import, ``del``, ``global`` or ``nonlocal`` (a nested
    function's ``nonlocal`` included) binds them, and its code spells none of them as an
    attribute. Python's scoping makes each such read one of those nested definitions, never a
    module-level or another function's namesake (click's ``Parameter.type_cast_value`` calls
    its own ``convert``, not ``ParamType.convert``). Taken conservatively: a target anywhere in
    a comprehension, lambda or nested class body of its own code counts as binding it."""
    defined, read, other = _own_names(function)
    return frozenset((defined & read) - other)


def _global_reads(function: ast.FunctionDef | ast.AsyncFunctionDef) -> frozenset[str]:
    """The names `function`'s own code (its body, nested bodies excluded) reads as variables
    and binds nowhere (no parameter, assignment, target, import, ``global``/``nonlocal``,
    nested ``def`` or ``class``) nor spells as an attribute: outside any other function, Python
    looks each such read up in the module's globals (a class body's names are not seen from
    its methods). Private names (``__x``, mangled in a class) are left out."""
    defined, read, other = _own_names(function)
    return frozenset(n for n in read - defined - other if not n.startswith("__"))


def _own_names(
    function: ast.FunctionDef | ast.AsyncFunctionDef,
) -> tuple[set[str], set[str], set[str]]:
    """(the names `function`'s own nested ``def``/``class`` statements bind, the names its own
    code reads as variables, every name it binds otherwise or spells as an attribute)."""
    args = function.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    other = {a.arg for a in params if a is not None}
    defined: set[str] = set()
    read: set[str] = set()
    stack: list[tuple[ast.AST, bool]] = [(s, True) for s in function.body]
    while stack:
        node, scope = stack.pop()  # scope: in `function`'s own scope, not a class body's
        if isinstance(node, ast.Nonlocal | ast.Global):
            other.update(node.names)
        elif isinstance(node, _Def):
            (defined if scope else other).add(node.name)
            stack.extend((n, scope) for n in _outside_body(node))
            # a nested function's `nonlocal` rebinds this function's variable
            other.update(n for d in ast.walk(node) if isinstance(d, ast.Nonlocal) for n in d.names)
            continue
        elif isinstance(node, ast.ClassDef):
            (defined if scope else other).add(node.name)
            stack.extend((n, scope) for n in (*node.decorator_list, *node.bases, *node.keywords))
            stack.extend((n, False) for n in node.body)
            continue
        elif isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else other).add(node.id)
        elif isinstance(node, ast.arg):  # a lambda's parameter: its reads are this code's
            other.add(node.arg)
        elif isinstance(node, ast.Attribute):
            other.add(node.attr)
        elif isinstance(node, ast.alias):
            other.update({node.name.partition(".")[0], node.name, node.asname or ""})
        elif isinstance(node, ast.Call) and (name := _literal_attribute(node)):
            other.add(name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            other.add(node.rest)
        if isinstance(getattr(node, "name", None), str):  # except/match targets, type params
            other.add(node.name)  # type: ignore[attr-defined]
        stack.extend((n, scope) for n in ast.iter_child_nodes(node))
    return defined, read, other


def _class_bound(tree: ast.Module) -> frozenset[str]:
    """The global names this module binds by nothing but undecorated ``class`` statements of
    its module-level code (inside ``if``/``try``/``with`` too): no assignment, target,
    import, ``def``, ``del`` or walrus there, no ``global`` declaration anywhere, no star
    import and no reach into its own namespace (``globals()``, ``vars()``, a module
    ``__getattr__``). Reading such a name gets that class."""
    classes: set[str] = set()
    other: set[str] = set()
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.ClassDef):
            (other if node.decorator_list else classes).add(node.name)
            stack.extend([*node.bases, *node.keywords])  # its body binds class attributes
            continue
        if isinstance(node, _Def):
            other.add(node.name)
            stack.extend(_outside_body(node))
            continue
        if isinstance(node, ast.Lambda):
            stack.extend([*node.args.defaults, *filter(None, node.args.kw_defaults)])
            continue
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            other.add(node.id)
        elif isinstance(node, ast.alias):
            if node.name == "*":
                return frozenset()
            other.add(node.asname or node.name.partition(".")[0])
        elif isinstance(node, ast.Global | ast.Nonlocal):
            other.update(node.names)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ("globals", "vars", "locals", "exec", "eval"):
                return frozenset()
        elif isinstance(node, ast.MatchMapping) and node.rest:
            other.add(node.rest)
        if isinstance(getattr(node, "name", None), str):  # except/match targets, type aliases
            other.add(node.name)  # type: ignore[attr-defined]
        stack.extend(ast.iter_child_nodes(node))
    for node in ast.walk(tree):  # a function's `global X` may rebind it
        if isinstance(node, ast.Global):
            other.update(node.names)
        elif _reaches_globals(node):
            return frozenset()
    return frozenset(classes - other)


def _reaches_globals(node: ast.AST) -> bool:
    """Can `node` reach the module's namespace unnamed (``globals``, ``vars``, a module
    ``__getattr__`` or ``__dir__``)?"""
    if isinstance(node, _Def):
        return node.name in ("__getattr__", "__dir__")
    return isinstance(node, ast.Name) and node.id in ("globals", "vars")


_CONDITIONAL = (
    ast.BoolOp, ast.IfExp, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp
)  # fmt: skip


def _raised_calls(nodes: list[ast.AST]) -> tuple[set[str], set[str]]:
    """(the names the ``raise`` statements of `nodes`' own code call unconditionally, every
    other name those statements read): reaching such a statement runs each of those calls, so
    a test that ran none of the callees never read anything they return."""
    called: set[str] = set()
    other: set[str] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Raise):
            _raise_names(node, called, other)
        else:
            stack.extend(_outside_body(node))
    return called, other


def _raise_names(statement: ast.Raise, called: set[str], other: set[str]) -> None:
    stack: list[tuple[ast.AST, bool]] = [(statement, False)]
    while stack:
        node, conditional = stack.pop()
        conditional = conditional or isinstance(node, _CONDITIONAL)
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.Call) and not conditional:
            if isinstance(node.func, ast.Name):
                called.add(node.func.id)
                children.remove(node.func)
            elif isinstance(node.func, ast.Attribute):
                called.add(node.func.attr)
                children[children.index(node.func)] = node.func.value
        if isinstance(node, ast.Call) and (name := _literal_attribute(node)):
            other.add(name)
        elif isinstance(node, ast.Name):
            other.add(node.id)
        elif isinstance(node, ast.Attribute):
            other.add(node.attr)
        stack.extend((child, conditional) for child in children)


_FRAME_READERS = frozenset({"locals", "vars", "eval", "exec", "_getframe", "currentframe"})
_NESTED = (
    ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.ListComp, ast.SetComp,
    ast.DictComp, ast.GeneratorExp,
)  # fmt: skip


def _raise_carriers(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.Call]:
    """The calls of statements ``v = f(...)`` in `function`'s own code whose result only its
    ``raise`` statements read: ``v`` is a plain local (no ``global``/``nonlocal``, no nested
    scope spells it, no ``locals()``, ``vars()``, ``eval``, ``exec`` or frame access), the
    statement is in no loop, every read of ``v`` after it is inside a ``raise``, and the
    function is no generator or coroutine (a suspended frame keeps its locals from one test
    to the next). As for a call inside the ``raise`` itself: a test that did not run ``f``
    never had its result in that frame, and the frame keeps nothing for a later call
    (jinja2's ``TokenStream.expect``: ``expr = describe_token_expr(expr)``, then raises)."""
    if isinstance(function, ast.AsyncFunctionDef) or _generator(function):
        return []
    assigns: list[ast.Assign] = []
    raised: set[int] = set()  # ids of the names inside raise statements of its own code
    nested: set[str] = set()  # names spelled in nested scopes, or declared global/nonlocal
    names: list[tuple[ast.Name, bool]] = []  # own code's names: (node, an augmented target?)
    stack: list[tuple[ast.AST, bool, bool]] = [(n, False, False) for n in function.body]
    while stack:
        node, looped, inside = stack.pop()
        if isinstance(node, ast.Name | ast.Attribute) and (
            (node.id if isinstance(node, ast.Name) else node.attr) in _FRAME_READERS
        ):
            return []
        if isinstance(node, _NESTED):
            nested.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
            nested.update(a.arg for a in ast.walk(node) if isinstance(a, ast.arg))
            if any(isinstance(n, ast.Name) and n.id in _FRAME_READERS for n in ast.walk(node)):
                return []
            continue
        if isinstance(node, ast.Global | ast.Nonlocal):
            nested.update(node.names)
        elif isinstance(node, ast.Name):
            names.append((node, False))
            if inside:
                raised.add(id(node))
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            names.append((node.target, True))
            stack.append((node.value, looped, inside))
            continue
        elif (
            isinstance(node, ast.Assign)
            and not looped
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name | ast.Attribute)
        ):
            assigns.append(node)
        looped = looped or isinstance(node, ast.For | ast.AsyncFor | ast.While)
        inside = inside or isinstance(node, ast.Raise)
        stack.extend((child, looped, inside) for child in ast.iter_child_nodes(node))
    found: list[ast.Call] = []
    for assign in assigns:
        local = cast(ast.Name, assign.targets[0]).id
        if local in nested:
            continue
        end = (assign.end_lineno or 0, assign.end_col_offset or 0)
        later = [(n, aug) for n, aug in names if n.id == local and (n.lineno, n.col_offset) >= end]
        if all(id(n) in raised or (isinstance(n.ctx, ast.Store) and not aug) for n, aug in later):
            found.append(cast(ast.Call, assign.value))
    return found


def _outside_body(node: ast.AST) -> list[ast.AST]:
    """The children a walk of the code *around* functions visits: a nested function's
    decorators, parameters (defaults) and annotation run where it is defined; its body runs
    only when it is called and has its own record."""
    if isinstance(node, _Def):
        return [*node.decorator_list, node.args, *([node.returns] if node.returns else [])]
    return list(ast.iter_child_nodes(node))


_ATTR_FUNCTIONS = frozenset({"getattr", "hasattr", "setattr", "delattr"})
# Calls that reach a module's names without spelling them, when given a module (or nothing:
# ``vars()`` at module level is ``globals()``); ``globals()`` and ``reload`` always do.
_NAMESPACE_READERS = frozenset({"vars", "getmembers", "dir"})


def _module_like(node: ast.expr, imported: set[str]) -> bool:
    """Does `node` evaluate to a module? A name this file imported, ``sys.modules[...]``, or
    ``import_module(...)``; anything else is taken for an ordinary object."""
    if isinstance(node, ast.Name):
        return node.id in imported
    if isinstance(node, ast.Subscript):
        return isinstance(node.value, ast.Attribute) and node.value.attr == "modules"
    if isinstance(node, ast.Call):
        name = _decorator_name(node.func)
        if name == "getattr" and node.args:  # ``getattr(pkg, name)``: maybe a submodule
            return _module_like(node.args[0], imported)
        return name in ("import_module", "__import__")
    if isinstance(node, ast.Attribute):  # pkg.sub
        return _module_like(node.value, imported)
    return False


def _surely_module(node: ast.expr, modules: set[str]) -> bool:
    """Is `node` a module whatever the names it spells are bound to? ``sys.modules[...]``,
    ``import_module(...)``, or a name or chain among `modules` (``import a.b`` binds ``a``
    and ``a.b``; a ``from`` import may bind any object)."""
    if isinstance(node, ast.Subscript | ast.Call):
        return _module_like(node, set())
    return _dotted(node) in modules


def _held_modules(
    tree: ast.Module,
    imported: set[str],
    like: Callable[[ast.expr, set[str]], bool] = _module_like,
) -> dict[str, set[str]]:
    """Scope (as `_scoped_walk` names it) -> the names assigned a module there: ``mod =
    importlib.import_module(name)``, ``m = sys.modules[key]``, ``sub = getattr(pkg, name)``,
    or another such name (flow-insensitive: one such assignment makes the name a module in
    all its scope). Names held at module level are modules in every scope not binding them."""
    held: dict[str, set[str]] = {}
    assigns = [
        (node, shadowed, scope)
        for node, shadowed, scope in _scoped_walk(tree)
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.NamedExpr) and node.value is not None
    ]
    grew = True
    while grew:
        grew = False
        for node, shadowed, scope in assigns:
            modules = _modules_in(imported, held, shadowed, scope)
            if node.value is None or not like(node.value, modules):
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id not in held.get(scope, ()):
                    held.setdefault(scope, set()).add(target.id)
                    grew = True
    return held


def _modules_in(
    imported: set[str], held: dict[str, set[str]], shadowed: frozenset[str], scope: str
) -> set[str]:
    """The names that are modules where `scope`'s code runs (`_held_modules`)."""
    outer = imported | held.get("<module>", set())
    return (outer - shadowed if shadowed else outer) | held.get(scope, set())


def _called(call: ast.Call) -> str | None:
    """The name a call calls (``f(...)``, ``m.f(...)``); None for a call of a call's result
    (``getattr(x, "read")()`` calls what getattr returned, it is no getattr)."""
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return call.func.id if isinstance(call.func, ast.Name) else None


@dataclass(frozen=True, slots=True)
class _Escapes:
    any_module: bool = False
    where: tuple[str, ...] = ()  # `FileFingerprints.escaping`
    targets: tuple[tuple[str, tuple[str, ...]], ...] = ()  # `FileFingerprints.escape_targets`
    own: bool = False
    stars: tuple[str, ...] = ()
    code_namespace: bool = False


_COMPILERS = frozenset({"compile", "exec", "eval"})


def _merged_namespaces(tree: ast.Module, imported: set[str]) -> set[int]:
    """Ids of the ``M.__dict__`` nodes of statements ``d.update(M.__dict__)`` (M a module) in a
    file that compiles code from text (calls ``compile``, ``exec`` or ``eval``): attrs merges
    the namespace of a class's module into the globals of the methods it generates. None when
    the file compiles nothing (a merged namespace may be read whole by other code)."""
    called = {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    if not called & _COMPILERS:
        return set()
    found: set[int] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
            continue
        call = node.value
        if not (isinstance(call.func, ast.Attribute) and call.func.attr == "update"):
            continue
        arg = call.args[0] if len(call.args) == 1 and not call.keywords else None
        if (
            isinstance(arg, ast.Attribute)
            and arg.attr == "__dict__"
            and _module_like(arg.value, imported)
        ):
            found.add(id(arg))
    return found


def _escapes(tree: ast.Module) -> _Escapes:
    """Can code reach a module's names without naming them? (see ``FileFingerprints``): a
    computed attribute of something that is a module, not of any object. Split by whose
    names: any module's, this module's own, or those of the modules star-imported here."""
    imported: set[str] = set()
    aliases: dict[str, str] = {}  # name an import binds -> the module it names ("*": several)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                bound, module = (a.asname, a.name) if a.asname else (a.name.split(".")[0],) * 2
                imported.add(bound)
                aliases[bound] = module if aliases.get(bound, module) == module else "*"
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (f"{node.module}." if node.module else "")
            for a in node.names:
                bound = a.asname or a.name
                imported.add(bound)
                module = base + a.name
                aliases[bound] = module if aliases.get(bound, module) == module else "*"
    own = False
    stars: list[str] = []
    where: dict[str, set[str]] = {}  # the scopes of the code reaching any module's names
    merged = _merged_namespaces(tree, imported)
    held = _held_modules(tree, imported)
    # what is surely a module, spelled as ``import a.b`` / ``import a.b as c`` bound it: a
    # module handed to other code (``read(calc, name)``, ``patch.object(calc, name)``) may
    # be read there by a computed name (a ``from`` import may bind any object: not counted)
    surely = {
        dotted
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for a in node.names
        for dotted in (
            [a.asname]
            if a.asname
            else [".".join(a.name.split(".")[: i + 1]) for i in range(a.name.count(".") + 1)]
        )
    }

    sure_held = _held_modules(tree, surely, _surely_module)

    def handed(node: ast.Call, scope: str, modules: set[str]) -> ast.expr | None:
        """A module among `node`'s arguments, which the called code may read by any name."""
        sure = surely | sure_held.get("<module>", set()) | sure_held.get(scope, set())
        for arg in (*node.args, *(k.value for k in node.keywords)):
            value = arg.value if isinstance(arg, ast.Starred) else arg
            spelled = _dotted(value)
            if spelled is not None and spelled in sure and spelled.partition(".")[0] in modules:
                return value
        return None

    def target(node: ast.expr, scope: str) -> str:
        """The module `node` (module-like) names, as imported; ``*`` when known at run time."""
        if isinstance(node, ast.Attribute):
            base = target(node.value, scope)
            return "*" if base == "*" else f"{base}.{node.attr}"
        if not isinstance(node, ast.Name) or node.id in held.get(scope, ()):
            return "*"
        if node.id in held.get("<module>", ()):
            return "*"
        return aliases.get(node.id, "*")

    for node, shadowed, scope in _scoped_walk(tree):
        any_module = False
        reached = "*"
        modules = _modules_in(imported, held, shadowed, scope)
        if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
            stars.append("." * node.level + (node.module or ""))
        elif (
            isinstance(node, ast.Attribute)
            and node.attr == "__dict__"
            and _module_like(node.value, modules)
            and id(node) not in merged
        ):
            any_module = True
            reached = target(node.value, scope)
        elif isinstance(node, ast.Call):
            name = _called(node)
            first = node.args[0] if node.args else None
            bare = isinstance(node.func, ast.Name)
            if name == "globals" and bare:
                own = True  # this module's namespace (it may be handed on: still only its own)
            elif name in ("globals", "reload"):
                any_module = True
            elif name in _NAMESPACE_READERS:
                if first is None and name != "getmembers" and bare:
                    own = True  # ``vars()`` / ``dir()``: the current scope
                elif first is not None and _module_like(first, modules):
                    any_module = True
                    reached = target(first, scope)
            elif (
                name in _ATTR_FUNCTIONS
                and (len(node.args) < 2 or not isinstance(node.args[1], ast.Constant))
                and (first is None or _module_like(first, modules))
            ):
                any_module = True
                reached = "*" if first is None else target(first, scope)
            elif name not in _ATTR_FUNCTIONS and (given := handed(node, scope, modules)):
                any_module = True
                reached = target(given, scope)
        if any_module:
            where.setdefault(scope, set()).add(reached)
    own = own or any(
        isinstance(stmt, _Def) and stmt.name in ("__getattr__", "__dir__") for stmt in tree.body
    )
    targets = tuple((scope, tuple(sorted(where[scope]))) for scope in sorted(where))
    return _Escapes(
        bool(where),
        tuple(sorted(where)),
        targets,
        own,
        tuple(sorted(set(stars))),
        bool(merged),
    )


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` of a name or an attribute chain of one; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


_ANNOTATED = (ast.arg, ast.AnnAssign)


def _handed(tree: ast.Module) -> dict[str, set[str]]:
    """`FileFingerprints.handed`: scope -> ``module:attributes`` of each use of an imported
    name, or an attribute chain of one, as an object: anything but reading an attribute of
    it, calling it (as a callee or a decorator), an annotation, or the first argument of
    ``getattr``/``hasattr``/``setattr``/``delattr``/``vars``/``dir``/``getmembers`` (counted
    as computed reads already). A module reaches other code, a container or an attribute
    only so (or through ``sys.modules``, ``import_module``, counted already)."""
    origin: dict[str, set[str]] = {}  # name an import binds -> ``module:`` / ``module:name``
    for node in ast.walk(tree):
        for bound, kind in _import_binds(node):
            if bound != "*":
                origin.setdefault(bound, set()).add(kind)
    if not origin:
        return {}
    parents: dict[int, ast.AST] = {
        id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)
    }
    # a name anywhere in an annotation (``list[calc]`` too) is only annotating: a type hint
    # hands nothing to code, and under ``from __future__ import annotations`` it never runs
    roots = [n.annotation for n in ast.walk(tree) if isinstance(n, _ANNOTATED) and n.annotation]
    roots += [n.returns for n in ast.walk(tree) if isinstance(n, _Def) and n.returns]
    annotations = {id(n) for root in roots for n in ast.walk(root)}
    found: dict[str, set[str]] = {}
    for node, shadowed, scope in _scoped_walk(tree):
        if not (
            isinstance(node, ast.Name)
            and isinstance(node.ctx, ast.Load)
            and node.id in origin
            and node.id not in shadowed
        ):
            continue
        top: ast.Name | ast.Attribute = node
        attributes: list[str] = []
        while isinstance(up := parents.get(id(top)), ast.Attribute) and up.value is top:
            top = up
            attributes.append(up.attr)
        around = parents.get(id(top))
        if not isinstance(top.ctx, ast.Load) or id(top) in annotations:
            continue
        if isinstance(around, ast.Call):
            name = _called(around)
            if around.func is top or (
                around.args
                and around.args[0] is top
                and (name in _ATTR_FUNCTIONS or name in _NAMESPACE_READERS)
            ):
                continue
        if isinstance(around, _Def | ast.ClassDef) and any(d is top for d in around.decorator_list):
            continue
        for start in origin[node.id]:
            module, _, first = start.partition(":")
            chain = ".".join(a for a in (first, *attributes) if a)
            found.setdefault(scope, set()).add(f"{module}:{chain}")
    return found


def _top_binds(tree: ast.Module, escapes: _Escapes) -> dict[str, tuple[str, ...]]:
    """`FileFingerprints.top_binds`."""
    hook = any(isinstance(s, _Def) and s.name in ("__getattr__", "__dir__") for s in tree.body)
    if escapes.own and not hook:  # ``globals()``, ``vars()``: any name may be anything
        return {"*": ("?",)}
    kinds: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, _Def | ast.ClassDef):  # a class body may declare one too
            for name, kind in _global_binds(node):
                kinds.setdefault(name, set()).add(kind)
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            for bound, kind in _import_binds(node):
                kinds.setdefault(bound, set()).add(kind)
            continue
        # any other binding holds a module only through code that hands one on (`_handed`)
        for name in _bound_names(node):
            kinds.setdefault(name, set()).add("=")
        if isinstance(node, _Def | ast.ClassDef | ast.Lambda):
            continue  # what they bind is their own (a walrus in a default is left out)
        stack.extend(ast.iter_child_nodes(node))
    if escapes.stars or hook:
        # a name no statement binds comes from a star import, or from ``__getattr__``
        kinds["*"] = {f"{star}:" for star in escapes.stars} | ({"?"} if hook else set())
        return {name: tuple(sorted(k)) for name, k in sorted(kinds.items())}
    return {name: tuple(sorted(k)) for name, k in sorted(kinds.items()) if k != {"="}}


def _import_binds(node: ast.AST) -> Iterator[tuple[str, str]]:
    """(name bound, ``module:`` or ``module:name``) of each name an import statement binds:
    ``import a.b`` binds ``a`` (``a:``), ``import a.b as c`` binds ``c`` (``a.b:``), ``from .m
    import x as y`` binds ``y`` (``.m:x``); nothing for any other node."""
    if isinstance(node, ast.Import):
        for a in node.names:
            bound = a.asname or a.name.partition(".")[0]
            yield bound, f"{a.name if a.asname else bound}:"
    elif isinstance(node, ast.ImportFrom):
        base = "." * node.level + (node.module or "")
        for a in node.names:
            yield a.asname or a.name, f"{base}:{a.name}"


def _global_binds(
    function: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef,
) -> Iterator[tuple[str, str]]:
    """(name, kind as `_top_binds` gives it) of each binding `function` makes of a name it
    declares ``global``. An import binds a module or a name of one; an assignment of a constant
    or of a parameter the function never rebinds is ``=`` (a module reaches the parameter only
    through code handing it on, counted there); any other binding (a call's result, a loop
    target, ``with ... as``) is unsure, ``?``."""
    own: list[ast.AST] = []  # the function's own code, not the scopes nested in it
    stack: list[ast.AST] = list(function.body)
    while stack:
        node = stack.pop()
        own.append(node)
        if not isinstance(node, _Def | ast.ClassDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))
    declared = {n for node in own if isinstance(node, ast.Global) for n in node.names}
    if not declared:
        return
    parameters: set[str] = set()
    if not isinstance(function, ast.ClassDef):
        arguments = function.args
        parameters = {
            a.arg
            for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                      arguments.vararg, arguments.kwarg)
            if a is not None
        }  # fmt: skip
    parameters -= {n for node in own for n in _bound_names(node)}  # rebound: any value
    # names bound only by imports in the function (``from ._impl import getchar as f``, then
    # ``_getchar = f``: click's termui): the global holds what the import binds
    imported: dict[str, set[str]] = {}
    for node in own:
        for bound, kind in _import_binds(node):
            imported.setdefault(bound, set()).add(kind)
    for node in own:
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            imported.pop(node.id, None)  # bound otherwise too: any value
    settled: set[int] = set()  # the targets of plain assignments, judged at the statement
    for node in own:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield from ((b, k) for b, k in _import_binds(node) if b in declared)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            # an operator's result is no module; a constant neither; a parameter only if a
            # caller hands one on
            plain = isinstance(node, ast.AugAssign) or (
                isinstance(node.value, ast.Constant)
                or (isinstance(node.value, ast.Name) and node.value.id in parameters)
            )
            value = node.value if isinstance(node.value, ast.Name) else None
            kinds = imported.get(value.id, set()) if value is not None else set()
            for target in targets:
                if isinstance(target, ast.Name) and target.id in declared and (plain or kinds):
                    settled.add(id(target))
                    for kind in sorted(kinds) or ["="]:
                        yield target.id, kind
        elif (
            isinstance(node, ast.Name)
            and isinstance(node.ctx, ast.Store)
            and node.id in declared
            and id(node) not in settled
        ):
            yield node.id, "?"


def _scoped_walk(tree: ast.Module) -> Iterator[tuple[ast.AST, frozenset[str], str]]:
    """Every node of `tree` with the names that are variables of the functions around it
    there (`_function_locals`): such a name is no module, whatever the file imports under it
    (attrs' tests take a parameter ``attr``), and the qualname of the innermost ``def`` whose
    code runs it (``<module>`` outside any; a lambda's or comprehension's code counts as its
    function's). A function's decorators, defaults and annotations are evaluated outside it."""
    stack: list[tuple[ast.AST, frozenset[str], str, str]] = [(tree, frozenset(), "<module>", "")]
    while stack:
        node, shadowed, scope, prefix = stack.pop()
        yield node, shadowed, scope
        body: list[ast.AST] = []
        if isinstance(node, _Def):
            body = list(node.body)
        elif isinstance(node, ast.Lambda):
            body = [node.body]
        inner = shadowed | _function_locals(node) if body else shadowed
        within, nested = scope, prefix
        if isinstance(node, _Def):
            within = prefix + node.name
            nested = within + ".<locals>."
        elif isinstance(node, ast.ClassDef):
            nested = f"{prefix}{node.name}."
        for child in ast.iter_child_nodes(node):
            if any(child is b for b in body):
                stack.append((child, inner, within, nested))
            elif isinstance(node, ast.ClassDef) and any(child is b for b in node.body):
                stack.append((child, shadowed, scope, nested))
            else:
                stack.append((child, shadowed, scope, prefix))


def _function_locals(node: ast.AST) -> frozenset[str]:
    """The parameters of a function or lambda and the names its body binds but by an import,
    without those it declares ``global`` (nested scopes and comprehensions left out)."""
    if not isinstance(node, _Def | ast.Lambda):
        return frozenset()
    args = node.args
    found = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
    found.update(a.arg for a in (args.vararg, args.kwarg) if a is not None)
    if isinstance(node, ast.Lambda):
        return frozenset(found)
    imported: set[str] = set()
    declared: set[str] = set()
    stack: list[ast.AST] = list(node.body)
    scopes = (*_SCOPES, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
    while stack:
        child = stack.pop()
        if isinstance(child, ast.Global):
            declared.update(child.names)
        elif isinstance(child, ast.Import | ast.ImportFrom):
            imported.update(_bound_names(a)[0] for a in child.names)
            continue
        found.update(_bound_names(child))
        if isinstance(child, scopes):
            continue  # its own scope (a def's or class's name is bound here: above)
        stack.extend(ast.iter_child_nodes(child))
    return frozenset(found - imported - declared)


def _imports_from(tree: ast.Module) -> tuple[list[str], frozenset[int]]:
    """``module:name`` of the ``from module import name`` statements (not renamed, not ``*``)
    run at module level outside class bodies, and the ids of their ``alias`` nodes."""
    found: list[str] = []
    ids: set[int] = set()
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        stmt = stack.pop()
        if isinstance(stmt, ast.ImportFrom):
            module = "." * stmt.level + (stmt.module or "")
            for alias in stmt.names:
                if alias.name != "*" and alias.asname in (None, alias.name):
                    found.append(f"{module}:{alias.name}")
                    ids.add(id(alias))
        elif isinstance(stmt, ast.If | ast.Try | ast.TryStar | ast.With):
            for child in ast.iter_child_nodes(stmt):
                if isinstance(child, ast.stmt):
                    stack.append(child)
                elif isinstance(child, ast.ExceptHandler):
                    stack.extend(child.body)
    return found, frozenset(ids)


def _binding(stmt: ast.stmt) -> str:
    """The names `stmt` binds if it is a plain assignment of an inert value, else "": such a
    statement cannot have side effects, so only the code reading its names sees it. An
    annotated one also evaluates its annotation (`_annotation`), compared on its own."""
    if isinstance(stmt, ast.Assign) and _inert(stmt.value):
        if all(isinstance(t, ast.Name) for t in stmt.targets):
            return ",".join(t.id for t in stmt.targets if isinstance(t, ast.Name))
    elif (
        isinstance(stmt, ast.AnnAssign)
        and stmt.value is not None
        and _inert(stmt.value)
        and isinstance(stmt.target, ast.Name)
        and stmt.simple
    ):
        return stmt.target.id
    return ""


def _annotation(stmt: ast.stmt, lazy: bool, evaluated: bool = False) -> str:
    """The fingerprint of the annotation an inert annotated assignment, or one whose value is
    `evaluated` (graph/module_values.py), evaluates at import (it may read names, raise, or run
    code); "" when nothing is evaluated."""
    if isinstance(stmt, ast.AnnAssign) and (evaluated or _binding(stmt)) and not lazy:
        return _fp(ast.dump(stmt.annotation))
    return ""


# Names that code outside the workspace reads by convention although they start with "_":
# namedtuple's protocol (``_fields``: ``_asdict``, pandas, pydantic), enum's and ctypes'
# ``_sunder_`` names (excluded by their trailing underscore).
_PROTOCOL_NAMES = frozenset({"_fields", "_field_defaults", "_field_types", "_asdict", "_make"})

# Module names pytest itself reads from a conftest or test module it imports (plugins to load,
# paths to skip, marks, whether to collect): a change is a change of what every test in scope
# runs with, though no workspace code reads the name.
_READ_BY_PYTEST = frozenset(
    {"pytest_plugins", "collect_ignore", "collect_ignore_glob", "pytestmark", "__test__"}
)


def _private_attribute(name: str) -> bool:
    """A class attribute only the workspace's own code reads by name: one leading underscore
    (no dunder, no name mangling), not a ``_sunder_`` nor a namedtuple protocol name."""
    return (
        name.startswith("_")
        and not name.startswith("__")
        and not name.endswith("_")
        and name not in _PROTOCOL_NAMES
    )


def _plain_class(stmt: ast.stmt) -> bool:
    """``class C:`` / ``class C(object):``: no decorator, metaclass, base or keyword that
    could read the class namespace as it is created (``dataclass``, ``Enum``, a base's
    ``__init_subclass__`` outside the workspace...)."""
    return (
        isinstance(stmt, ast.ClassDef)
        and not stmt.decorator_list
        and not stmt.keywords
        and all(isinstance(b, ast.Name) and b.id == "object" for b in stmt.bases)
    )


def _class_parts(stmt: ast.stmt, owned: Any) -> tuple[str, str]:
    """(`class_frames` entry, `class_binds` entry) of one top-level statement; ("", "") when it
    is no plain class or has no private inert attribute. Each ``_x = <inert>`` of the body
    (all targets private names) stays in the frame as ``_x = <placeholder>``: the frame keeps
    which attributes exist and in what order, the binds their values."""
    if not _plain_class(stmt) or not isinstance(owned, ast.ClassDef):
        return "", ""
    frame = copy.copy(owned)
    frame.body = []
    binds: list[str] = []
    for item in owned.body:
        if (
            isinstance(item, ast.Assign)
            and _inert(item.value)
            and all(isinstance(t, ast.Name) and _private_attribute(t.id) for t in item.targets)
        ):
            value = _fp(ast.dump(item.value))
            names = [t.id for t in item.targets if isinstance(t, ast.Name)]
            binds.extend(f"{owned.name}.{name}={value}" for name in names)
            stub = copy.copy(item)
            stub.value = ast.Constant(_PLACEHOLDER)
            frame.body.append(stub)
        else:
            frame.body.append(item)
    if not binds:
        return "", ""
    return _fp(ast.dump(frame)), ",".join(binds)


# Packages whose callables, run while a class statement executes (decorators, field
# definitions, method decorators), keep no reference to the class they build anywhere else:
# the class they return is all they leave behind. A module's top package is compared.
CLASS_BUILDERS = frozenset(
    {"attr", "attrs", "dataclasses", "functools", "typing", "typing_extensions", "abc"}
)
# Builtins that have no effect beyond the object they return when called in a class body.
_INERT_BUILTINS = frozenset(
    {
        "property",
        "staticmethod",
        "classmethod",
        "frozenset",
        "tuple",
        "list",
        "dict",
        "set",
        "int",
        "str",
        "float",
        "bool",
        "bytes",
        "object",
    }
)
_CLASS_BODY = (ast.Expr, ast.Assign, ast.AnnAssign, ast.Pass, ast.FunctionDef, ast.AsyncFunctionDef)


def _origins(tree: ast.Module) -> dict[str, str]:
    """Each name the module binds at its top level -> where its value comes from: the module of
    a top-level import as written (``attr``, ``._make``), "=" for a name the module defines
    itself, "?" for a name bound more than one way."""
    found: dict[str, str] = {}

    def bind(name: str, origin: str) -> None:
        found[name] = origin if found.get(name, origin) == origin else "?"

    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                bind(alias.asname or alias.name.partition(".")[0], alias.name)
        elif isinstance(stmt, ast.ImportFrom):
            module = "." * stmt.level + (stmt.module or "")
            for alias in stmt.names:
                bind(alias.asname or alias.name, module)
        else:
            for name in _binds_anything(stmt):
                bind(name, "=")
    return found


def _root(node: ast.expr) -> str | None:
    """The variable a callee or decorator starts from (``attr`` of ``attr.s(...)``), None when
    it is no dotted name (a subscript, a call's result called)."""
    if isinstance(node, ast.Call):
        node = node.func
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _class_head(stmt: ast.stmt, origins: dict[str, str]) -> str:
    """`class_heads` entry of one top-level statement: ``Name|origin,...`` for a class statement
    whose execution can only bind its name: no base (but ``object``), no keyword, a body of
    assignments, expressions and ``def`` statements, and every decorator and call run outside
    method bodies starting from a module-level name (its origin is listed: selection accepts
    only class builders, `CLASS_BUILDERS`), one of `_INERT_BUILTINS` or a name the class body
    bound itself (``@x.validator`` after ``x = attr.ib()``); "" for any other statement."""
    if not isinstance(stmt, ast.ClassDef) or stmt.keywords:
        return ""
    if not all(isinstance(b, ast.Name) and b.id == "object" for b in stmt.bases):
        return ""
    if not all(isinstance(item, _CLASS_BODY) for item in stmt.body):
        return ""
    local: set[str] = set()  # what the body binds: attributes, methods
    for item in stmt.body:
        if isinstance(item, _Def):
            local.add(item.name)
        elif isinstance(item, ast.Assign | ast.AnnAssign):
            targets = item.targets if isinstance(item, ast.Assign) else [item.target]
            local.update(t.id for t in targets if isinstance(t, ast.Name))
    found: set[str] = set()
    stack: list[ast.AST] = [*stmt.decorator_list, *stmt.body]
    while stack:
        node = stack.pop()
        callees: list[ast.expr] = []
        if isinstance(node, ast.Call):
            callees.append(node.func)
        elif isinstance(node, _Def):
            callees.extend(node.decorator_list)
        elif isinstance(node, ast.ClassDef):
            return ""  # a nested class statement runs its own decorators and bases
        for callee in callees:
            root = _root(callee)
            if root is None:
                return ""
            if root in local and root not in origins:
                continue
            origin = origins.get(root)
            if origin is None:
                if root not in _INERT_BUILTINS:
                    return ""
                continue
            if origin == "?":
                return ""
            found.add(origin)
        stack.extend(_outside_body(node))
    for decorator in stmt.decorator_list:  # called with the class, even when no call itself
        root = _root(decorator)
        if root is None or origins.get(root, "?") == "?":
            return ""
        found.add(origins[root])
    return f"{stmt.name}|{','.join(sorted(found))}"


# Ways to read an attribute without spelling its name: a namespace read whole, a computed
# name, code compiled from a string, a mock made from a class's ``dir()``.
_GENERIC_READERS = frozenset(
    {
        "vars",
        "dir",
        "getmembers",
        "getmembers_static",
        "getattr_static",
        "attrgetter",
        "create_autospec",
        "eval",
        "exec",
        "__dict__",
        "__getattribute__",
        "__getattr__",
    }
)
_SPEC_KEYWORDS = frozenset({"autospec", "spec", "spec_set"})


def _name_prefix(node: ast.expr) -> str:
    """The literal start of a computed string (``"_handle_" + name``, ``f"_on_{x}"``)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _name_prefix(node.left)
    if isinstance(node, ast.JoinedStr) and node.values:
        return _name_prefix(node.values[0])
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ""


def _generic(nodes: list[ast.AST], *, local: bool = False) -> set[str]:
    """How `nodes` read attributes without spelling them (see ``FileFingerprints.dynamic``),
    nested ``def`` bodies excluded as in `_names`. ``local``: `nodes` are a function's, whose
    loops over literal strings give their names only those strings (`_loop_literals`)."""
    found: set[str] = set()
    literal: set[int] = set()  # getattr(x, "name"): a read by name (`_names` has it)
    spelled_by_loop = _loop_literals(nodes) if local else set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Call):
            if _called(node) == "getattr" and isinstance(node.func, ast.Name | ast.Attribute):
                literal.add(id(node.func))
                name = node.args[1] if len(node.args) >= 2 else None
                if name is None or isinstance(name, ast.Starred):
                    found.add("*")
                elif id(name) in spelled_by_loop:
                    pass  # one of the loop's strings: a private one is in `private_strings`
                elif not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                    prefix = _name_prefix(name)
                    found.add(f"^{prefix}" if prefix else "*")
            if any(k.arg in _SPEC_KEYWORDS for k in node.keywords):
                found.add("*")
        elif isinstance(node, ast.Name | ast.Attribute):
            spelled = node.id if isinstance(node, ast.Name) else node.attr
            if spelled in _GENERIC_READERS or (spelled == "getattr" and id(node) not in literal):
                found.add("*")
        stack.extend(_outside_body(node))
    return found


def _loop_literals(nodes: list[ast.AST]) -> set[int]:
    """The ids of the names, in a function's code, that can hold nothing but one of the string
    constants a loop over a literal collection gives them (``for a in ("x", "y"):
    getattr(o, a)``, ``(getattr(o, a) for a in ["x"])``): read inside such a loop, bound
    nowhere else in the function (nested scopes included; a ``for`` statement's variable may be
    the variable of other such ``for`` statements) and declared neither ``global`` nor
    ``nonlocal``. A computed ``getattr`` with such a name reads only names spelled in a string
    of this file, which `private_strings` lists."""
    binds: dict[str, int] = {}
    declared: set[str] = set()
    loops: list[tuple[str, list[ast.AST]]] = []  # loop variable -> the code that sees its values
    statements: dict[str, int] = {}  # variable -> the `for` statements over literals binding it
    for top in nodes:
        for node in ast.walk(top):
            for name in _bound_names(node):
                binds[name] = binds.get(name, 0) + 1
            if isinstance(node, ast.Global | ast.Nonlocal):
                declared.update(node.names)
            elif isinstance(node, ast.For | ast.AsyncFor) and _literal_strings(node.iter):
                if isinstance(node.target, ast.Name):
                    loops.append((node.target.id, list(node.body)))
                    statements[node.target.id] = statements.get(node.target.id, 0) + 1
            elif isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
                inner: list[ast.AST] = (
                    [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
                )
                inner += [test for gen in node.generators for test in gen.ifs]
                for gen in node.generators:
                    if isinstance(gen.target, ast.Name) and _literal_strings(gen.iter):
                        loops.append((gen.target.id, inner))
    found: set[int] = set()
    for name, body in loops:
        if binds.get(name) not in (1, statements.get(name)) or name in declared:
            continue
        for top in body:
            found.update(
                id(n)
                for n in ast.walk(top)
                if isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Load)
            )
    return found


def _bound_names(node: ast.AST) -> list[str]:
    """The names `node` binds (or deletes) in its scope."""
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
        return [node.id]
    if isinstance(node, ast.alias):
        return [(node.asname or node.name).partition(".")[0]]
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, _Def | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
        return [node.name]
    if isinstance(node, ast.MatchMapping) and node.rest:
        return [node.rest]
    return []


def _literal_strings(node: ast.expr) -> bool:
    """Is `node` a tuple, list or set display of string constants only?"""
    return isinstance(node, ast.Tuple | ast.List | ast.Set) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts
    )


def _private_strings(tree: ast.AST) -> set[str]:
    """The ``_private`` identifiers inside the string constants of `tree`."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "_" in node.value:
            found.update(_PRIVATE_IN_TEXT.findall(node.value))
    return found


_PRIVATE_IN_TEXT = re.compile(r"(?<!\w)_\w+")


def _escaping_names(tree: ast.AST) -> set[str]:
    """Names used other than as the callee of a call: such a function object may be handed to
    code that reads its signature (``register(f)``, ``callback=self.f``, ``{"x": f}``)."""
    callees = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in callees:
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            found.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            found.add(node.attr)
    return found


_BLOCKS = ("body", "orelse", "finalbody")
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def _generator(node: _Def) -> bool:
    """Does a ``yield`` in the function's own code make it a generator?"""
    todo: list[ast.AST] = list(node.body)
    while todo:
        item = todo.pop()
        if isinstance(item, ast.Yield | ast.YieldFrom):
            return True
        if not isinstance(item, _SCOPES):
            todo.extend(ast.iter_child_nodes(item))
    return False


def _statement(stmt: ast.stmt | ast.excepthandler) -> list[Any]:
    """``[whole, header, first line, last line, sub-blocks]`` of one statement of an outline:
    the fingerprint of the whole statement, of the statement without its blocks of statements
    (``body``, ``orelse``, ``finalbody``; a ``try``'s handlers as one block), its lines and
    those blocks. A ``match`` and a nested ``def`` or ``class`` have no sub-blocks."""
    if isinstance(stmt, _Def | ast.ClassDef):
        first = _def_line(stmt)
    else:  # a statement put in place of code that never runs (`if TYPE_CHECKING:`): no lines
        first = getattr(stmt, "lineno", None) or -1
    last = getattr(stmt, "end_lineno", None) or first
    blocks: list[Any] = []
    header = copy.copy(stmt)
    if not isinstance(stmt, _Def | ast.ClassDef | ast.Match):
        for name in (*_BLOCKS, "handlers"):
            value = getattr(stmt, name, None)
            if isinstance(value, list):
                blocks.append([name, _block(value)])
                setattr(header, name, [])
    return [_fp(ast.dump(stmt)), _fp(ast.dump(header)), first, last, blocks]


def _block(stmts: list[Any]) -> list[Any]:
    return [_statement(s) for s in stmts]


def _scopes(data: bytes) -> dict[str, str] | None:
    """Qualified name -> what the compiler decided about the function's names (local, declared
    global or nonlocal, free), for each function defined once; None if it cannot be read.
    A changed statement that never ran can still change how the others run by changing these
    (``x = 1`` anywhere makes ``x`` local everywhere in the function)."""
    import importlib.util
    import symtable

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            top = symtable.symtable(importlib.util.decode_source(data), "<fingerprint>", "exec")
    except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError, MemoryError):
        return None
    found: dict[str, str] = {}
    twice: set[str] = set()
    todo: list[tuple[symtable.SymbolTable, str]] = [(top, "")]
    while todo:
        table, prefix = todo.pop()
        for child in table.get_children():
            kind = child.get_type()
            kind = getattr(kind, "value", kind)  # an enum from 3.13
            if kind not in ("function", "class"):
                continue  # lambdas, comprehensions, annotation scopes: their owner's
            qualname = prefix + child.get_name()
            if qualname in found or qualname in twice:
                twice.add(qualname)
                found.pop(qualname, None)
            elif isinstance(child, symtable.Function):
                found[qualname] = "\n".join(
                    ",".join(sorted(names))
                    for names in (
                        child.get_locals(),
                        [n.get_name() for n in child.get_symbols() if n.is_declared_global()],
                        child.get_nonlocals(),
                        child.get_frees(),
                        child.get_parameters(),
                    )
                )
            inner = qualname + (".<locals>." if kind == "function" else ".")
            todo.append((child, inner))
    return found


def unexecuted_change(
    old: FileFingerprints, new: FileFingerprints, qualname: str, lines: set[int]
) -> bool:
    """Is every difference between the two versions of function `qualname` in statements
    that, in the old version, ran none of `lines` (the lines it executed)? Then a run of the
    old version that executed those lines behaves exactly as the new version would: same
    ``def`` statement, same scope (which names are local, global, free; generator or not), and
    each changed, removed or inserted statement unreached (an insertion point is reached when
    the statement after it starts, or, at the end of a block, when the block's last statement
    ran). False whenever it cannot tell."""
    before, after = old.outlines.get(qualname), new.outlines.get(qualname)
    if not before or not after or before[0] != after[0] or before[1] != after[1]:
        return False
    ranges: list[tuple[int, int]] = []
    if not _block_diff(before[2], after[2], ranges) or not ranges:
        return False
    return not any(first <= line <= last for first, last in ranges for line in lines)


def _block_diff(old: list[Any], new: list[Any], ranges: list[tuple[int, int]]) -> bool:
    """Adds to `ranges` the old lines that must not have run for the blocks to behave alike;
    False if it cannot be told from the old block alone (an insertion into an empty block)."""
    import difflib

    matcher = difflib.SequenceMatcher(None, [s[0] for s in old], [s[0] for s in new], False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if tag == "insert":
            if not old:
                return False
            at = old[i1] if i1 < len(old) else old[-1]
            ranges.append((at[2], at[3]))
            continue
        if tag == "replace" and i2 - i1 == j2 - j1:
            for a, b in zip(old[i1:i2], new[j1:j2], strict=True):
                if a[1] == b[1] and len(a[4]) == len(b[4]) and _sub_blocks(a, b, ranges):
                    continue
                ranges.append((a[2], a[3]))
            continue
        ranges.extend((s[2], s[3]) for s in old[i1:i2])  # deleted, or replaced by more or fewer
    return True


def _sub_blocks(old: list[Any], new: list[Any], ranges: list[tuple[int, int]]) -> bool:
    """Diffs the blocks of two statements with the same header; a ``try``'s handlers only
    pairwise (a new or reordered handler catches what an old one let through)."""
    found: list[tuple[int, int]] = []
    for (name, a), (other, b) in zip(old[4], new[4], strict=True):
        if name != other:
            return False
        if name != "handlers":
            if not _block_diff(a, b, found):
                return False
            continue
        if len(a) != len(b) or any(x[1] != y[1] for x, y in zip(a, b, strict=True)):
            return False
        for x, y in zip(a, b, strict=True):
            if x[0] != y[0] and not _sub_blocks(x, y, found):
                return False
    ranges.extend(found)
    return True


def map_lines(
    old: FileFingerprints, new: FileFingerprints, qualname: str, lines: set[int]
) -> set[int] | None:
    """The lines of the new version of function `qualname` that correspond to `lines`, run by
    its old version, when the new version runs the same statements (unchanged statements that
    ran, at their new places; changed or inserted ones never reached); None if it cannot tell.
    A statement that ran counts with all its lines (more lines than ran: fewer changes judged
    unreached later, never more)."""
    before, after = old.outlines.get(qualname), new.outlines.get(qualname)
    if not before or not after or before[0] != after[0] or before[1] != after[1]:
        return None
    out: set[int] = set()
    return out if _map_block(before[2], after[2], lines, out) else None


def _ran(stmt: list[Any], lines: set[int]) -> bool:
    return any(stmt[2] <= line <= stmt[3] for line in lines)


def _header_lines(stmt: list[Any]) -> range:
    firsts = [s[2] for _, block in stmt[4] for s in block if s[2] > 0]
    return range(stmt[2], (min(firsts) if firsts else stmt[3] + 1))


def _map_block(old: list[Any], new: list[Any], lines: set[int], out: set[int]) -> bool:
    import difflib

    matcher = difflib.SequenceMatcher(None, [s[0] for s in old], [s[0] for s in new], False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "insert":
            at = old[i1] if i1 < len(old) else (old[-1] if old else None)
            if at is None or _ran(at, lines):
                return False  # reached: the new statements may have run
            continue
        if tag in ("equal", "replace") and i2 - i1 == j2 - j1:
            for a, b in zip(old[i1:i2], new[j1:j2], strict=True):
                if not _map_statement(a, b, lines, out, same=tag == "equal"):
                    return False
            continue
        if any(_ran(s, lines) for s in old[i1:i2]):
            return False  # a deleted or rewritten statement ran
    return True


def _map_statement(
    old: list[Any], new: list[Any], lines: set[int], out: set[int], *, same: bool
) -> bool:
    if not _ran(old, lines):
        return True  # (changed or not) it never ran: nothing to map
    if not old[4]:
        if not same:
            return False
        out.update(range(new[2], new[3] + 1))
        return True
    if old[1] != new[1] or len(old[4]) != len(new[4]):
        return False
    if any(line in _header_lines(old) for line in lines):
        out.update(_header_lines(new))
    for (name, a), (other, b) in zip(old[4], new[4], strict=True):
        if name != other:
            return False
        if name == "handlers":
            if len(a) != len(b) or any(x[1] != y[1] for x, y in zip(a, b, strict=True)):
                return False
            for x, y in zip(a, b, strict=True):
                if not _map_statement(x, y, lines, out, same=x[0] == y[0]):
                    return False
        elif not _map_block(a, b, lines, out):
            return False
    return True


class _Splitter:
    """Copies a tree with nested ``def`` bodies cut out, registering each function by name."""

    def __init__(self, *, lazy_annotations: bool = False, escaping: set[str] | None = None) -> None:
        self.functions: dict[str, tuple[str, int]] = {}
        self.outlines: dict[str, list[Any] | None] = {}  # None: defined more than once
        self.refs: dict[str, set[str]] = {}
        self.own_defs: dict[str, frozenset[str]] = {}  # `FileFingerprints.own_defs`
        self.not_own: dict[str, set[str]] = {}  # the names a definition reads otherwise
        self.global_reads: dict[str, set[str]] = {}  # `_global_reads`, outside functions only
        self.not_global: dict[str, set[str]] = {}  # the names a definition reads otherwise
        # the names a `raise` statement calls unconditionally, and every other name read
        self.raise_called: dict[str, set[str]] = {}
        self.unraised: dict[str, set[str]] = {}
        self.memoised: set[str] = set()
        self.cached: set[str] = set()
        self.dynamic: dict[str, set[str]] = {}
        self.lazy_annotations = lazy_annotations
        self.escaping = escaping or set()

    def owned(self, node: ast.AST, prefix: str) -> Any:
        """A copy of `node` as its owner sees it (nested defs reduced to their def statement)."""
        if isinstance(node, _Def):
            own = self.register(node, prefix + node.name)
            stub = copy.copy(node)
            # the docstring is the function's ``__doc__`` from its definition on: read without
            # a call (an "every export has a docstring" test, ``help``, a CLI's help text)
            stub.body = [node.body[0]] if _docstring(node) else []
            if _memoising(node):
                self.cached.add(prefix + node.name)
                # Callers served from its cache never execute it: if they name it (it never
                # escapes this file), selection finds them by name; else its body counts here.
                if node.name in self.escaping:
                    stub.body = [*stub.body, ast.Expr(ast.Constant(own))]
                else:
                    self.memoised.add(prefix + node.name)
            stub.decorator_list = [self.expr(d, prefix) for d in node.decorator_list]
            private = node.name not in self.escaping and all(
                _benign(d) for d in node.decorator_list
            )
            stub.args = self.header(node.args, prefix) if private else self.expr(node.args, prefix)
            stub.returns = self.annotation(node.returns, prefix, private)
            return stub
        if isinstance(node, ast.If) and (checking := _type_checking(node.test)) is not None:
            new_if = copy.copy(node)  # the branch for type checkers only: cut, not walked
            live = node.orelse if checking else node.body
            new_if.body = [ast.Pass()]
            new_if.orelse = [self.owned(s, prefix) for s in live]
            return new_if
        if isinstance(node, ast.ClassDef):
            new_class = copy.copy(node)
            new_class.decorator_list = [self.expr(d, prefix) for d in node.decorator_list]
            new_class.bases = [self.expr(b, prefix) for b in node.bases]
            new_class.keywords = [self.expr(k, prefix) for k in node.keywords]
            inner = f"{prefix}{node.name}."
            new_class.body = [self.owned(s, inner) for s in node.body]
            return new_class
        return self.expr(node, prefix)

    def annotation(self, node: ast.expr | None, prefix: str, private: bool) -> Any:
        """What the owner sees of an annotation: nothing if unevaluated or inert (and private)."""
        if node is None or (private and (self.lazy_annotations or _inert(node))):
            return None
        return self.expr(node, prefix)

    def header(self, args: ast.arguments, prefix: str) -> ast.arguments:
        """The parameter list as code that never calls the function sees it: names, kinds and
        which parameters have defaults, plus every evaluated expression that is not inert."""
        out = copy.copy(args)

        def param(a: ast.arg) -> ast.arg:
            new = copy.copy(a)
            new.annotation = self.annotation(a.annotation, prefix, True)
            new.type_comment = None
            return new

        def default(d: ast.expr | None) -> Any:
            if d is None:
                return None
            return ast.Constant(_PLACEHOLDER) if _inert(d) else self.expr(d, prefix)

        out.posonlyargs = [param(a) for a in args.posonlyargs]
        out.args = [param(a) for a in args.args]
        out.kwonlyargs = [param(a) for a in args.kwonlyargs]
        out.vararg = param(args.vararg) if args.vararg else None
        out.kwarg = param(args.kwarg) if args.kwarg else None
        out.defaults = [default(d) for d in args.defaults]
        out.kw_defaults = [default(d) for d in args.kw_defaults]
        return out

    def expr(self, node: ast.AST, prefix: str) -> Any:
        """Generic copy: every child goes through `owned` (statements may nest defs anywhere)."""
        new = copy.copy(node)
        for name, value in ast.iter_fields(node):
            if isinstance(value, list):
                setattr(
                    new,
                    name,
                    [self.owned(v, prefix) if isinstance(v, ast.AST) else v for v in value],
                )
            elif isinstance(value, ast.AST):
                setattr(new, name, self.owned(value, prefix))
        return new

    def register(self, node: _Def, qualname: str) -> str:
        """The function's own fingerprint (returned): its whole ``def`` statement, nested bodies
        cut."""
        inner = qualname + ".<locals>."
        head = [self.expr(d, qualname) for d in node.decorator_list]
        args = self.expr(node.args, qualname)
        returns = self.expr(node.returns, qualname) if node.returns else None
        owned = [self.owned(s, inner) for s in node.body]
        body = [ast.dump(s) for s in owned]
        signature = [
            type(node).__name__,
            node.name,
            *(ast.dump(d) for d in head),
            ast.dump(args),
            ast.dump(returns) if returns is not None else "",
        ]
        text = "\n".join([*signature, *body])
        own = fp = _fp(text)
        line = _def_line(node)
        previous = self.functions.get(qualname)
        if previous is not None:  # same qualname defined twice: one combined fingerprint
            fp, line = _fp(previous[0] + fp), min(previous[1], line)
            self.outlines[qualname] = None
        elif qualname not in self.outlines:
            try:
                outline = [_fp("\n".join(signature)), _generator(node), _block(owned)]
            except (AttributeError, TypeError, ValueError):  # no outline: judged as a whole
                outline = None
            self.outlines[qualname] = outline
        self.functions[qualname] = (fp, line)
        header: list[ast.AST] = [*node.decorator_list, node.args]
        if node.returns is not None:
            header.append(node.returns)
        names = _names([*header, *node.body])
        self.refs.setdefault(qualname, set()).update(names)
        # defined twice (``typing.overload`` stubs): either one may be what runs, so a name
        # counts as its own definition only where each one that reads it says so
        defs = _own_defs(node)
        self.own_defs[qualname] = self.own_defs.get(qualname, frozenset()) | defs
        self.not_own.setdefault(qualname, set()).update(names - defs)
        if "<locals>" not in qualname:  # (an enclosing function's variable could be it)
            # its decorators and defaults are read where it is defined, a class body's names
            found = _global_reads(node) - _names(header)
            self.global_reads.setdefault(qualname, set()).update(found)
            self.not_global.setdefault(qualname, set()).update(names - found)
        called, other = _raised_calls(list(node.body))
        # a call whose result only raise statements read, through a local, counts as theirs
        carriers = _raise_carriers(node)
        unraised = _names(
            [
                *header,
                *node.body,
                *(c.func.value for c in carriers if isinstance(c.func, ast.Attribute)),
            ],
            raises=False,
            skip=frozenset(id(c.func) for c in carriers),
        )
        called.update(
            c.func.attr if isinstance(c.func, ast.Attribute) else cast(ast.Name, c.func).id
            for c in carriers
        )
        self.unraised.setdefault(qualname, set()).update(other, unraised)
        self.raise_called.setdefault(qualname, set()).update(called)
        if generic := _generic([*header, *node.body], local=True):
            self.dynamic.setdefault(qualname, set()).update(generic)
        return own


def fingerprint_source(data: bytes) -> FileFingerprints:
    """Fingerprints of one file's content (never raises; a syntax error gives a byte digest)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes etc.
            tree = ast.parse(data)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return FileFingerprints(module="bytes:" + _fp(data.hex()), parse_error=True)
    lazy = _lazy_annotations(tree)
    splitter = _Splitter(lazy_annotations=lazy, escaping=_escaping_names(tree))
    statements: list[tuple[str, int]] = []
    frames: list[str] = []
    class_binds: list[str] = []
    fixture_frames: list[str] = []
    fixture_binds: list[str] = []
    fixture_params: dict[str, tuple[str, ...]] = {}
    fixture_defs: dict[str, str] = {}
    spellings = _fixture_spellings(tree)
    origins = _origins(tree)
    heads: list[str] = []
    try:
        for stmt in tree.body:
            line = _def_line(stmt) if isinstance(stmt, _Def | ast.ClassDef) else stmt.lineno
            owned = splitter.owned(stmt, "")
            statements.append((_fp(ast.dump(owned)), line))
            frame, binds = _class_parts(stmt, owned)
            frames.append(frame)
            class_binds.append(binds)
            frame, binds = _fixture_parts(owned, spellings)
            fixture_frames.append(frame)
            fixture_binds.append(binds)
            if binds and isinstance(stmt, _Def) and len(stmt.decorator_list) == 1:
                fixture_defs[stmt.name] = _blanked(stmt)
                if (elements := _fixture_elements(stmt)) is not None:
                    fixture_params[stmt.name] = elements
            heads.append(_class_head(stmt, origins))
        dynamic = {q: tuple(sorted(v)) for q, v in splitter.dynamic.items()}
        if generic := _generic(list(tree.body)):
            dynamic["<module>"] = tuple(sorted(generic))
        private_strings = tuple(sorted(_private_strings(tree)))
    except RecursionError:
        return FileFingerprints(module="bytes:" + _fp(data.hex()), parse_error=True)
    module = _fp("\n".join(fp for fp, _ in statements))
    escapes = _escapes(tree)
    reach = escapes.own or escapes.stars or escapes.code_namespace
    classes = frozenset() if reach else _class_bound(tree)
    imports_from, rebinds = _imports_from(tree)
    computed = module_values(tree, _binds_anything, _binds_here)
    # an evaluated statement reads only names whose values count themselves (`values`)
    run: list[ast.AST] = [s for s, n in zip(tree.body, computed.statements, strict=True) if not n]
    # except the annotations they evaluate
    run += [
        s.annotation
        for s, n in zip(tree.body, computed.statements, strict=True)
        if n and isinstance(s, ast.AnnAssign) and not lazy
    ]
    outlines: dict[str, Any] = {}
    scopes = _scopes(data)
    if scopes is not None:
        for qualname, outline in splitter.outlines.items():
            scope = scopes.get(qualname)
            if outline is not None and scope is not None:
                head, generator, block = outline
                outlines[qualname] = [head, _fp(f"{scope}\n{generator}"), block]
    return FileFingerprints(
        module,
        splitter.functions,
        tuple(statements),
        refs={q: tuple(sorted(names)) for q, names in splitter.refs.items()},
        raised={
            q: tuple(sorted(only))
            for q, names in splitter.raise_called.items()
            if (only := names - splitter.unraised.get(q, set()))
        },
        module_refs=tuple(sorted(_names(list(tree.body)))),
        memoised=tuple(sorted(splitter.memoised)),
        binds=tuple(
            _binding(stmt) or names
            for stmt, names in zip(tree.body, computed.statements, strict=True)
        ),
        module_loads=tuple(sorted(_names(run, loads=True, skip=rebinds))),
        imports_from=tuple(sorted(set(imports_from))),
        escapes=escapes.any_module,
        escaping=escapes.where,
        escape_targets=dict(escapes.targets),
        own_escapes=escapes.own,
        code_namespace=escapes.code_namespace,
        stars=escapes.stars,
        annotations=tuple(
            _annotation(stmt, lazy, bool(names))
            for stmt, names in zip(tree.body, computed.statements, strict=True)
        ),
        outlines=outlines,
        class_frames=tuple(frames),
        class_binds=tuple(class_binds),
        dynamic=dynamic,
        private_strings=private_strings,
        cached=tuple(sorted(splitter.cached)),
        values=computed.values,
        unbound=computed.unbound,
        fixture_frames=tuple(fixture_frames),
        fixture_binds=tuple(fixture_binds),
        fixture_params=fixture_params,
        fixture_defs=fixture_defs,
        class_heads=tuple(heads),
        own_defs={
            q: tuple(sorted(own))
            for q, n in splitter.own_defs.items()
            if (own := n - splitter.not_own[q])
        },
        class_reads={
            q: tuple(sorted(only))
            for q, n in splitter.global_reads.items()
            if (only := (n - splitter.not_global[q]) & classes)
        },
        handed={q: tuple(sorted(v)) for q, v in sorted(_handed(tree).items())},
        top_binds=_top_binds(tree, escapes),
    )


def _fixture_spellings(tree: ast.Module) -> set[str]:
    """How this module spells pytest's ``fixture``: ``pytest.fixture`` after ``import pytest``,
    ``fixture`` after ``from pytest import fixture`` (top level, not renamed). Nothing when it
    binds those names otherwise too."""
    found: set[str] = set()
    other: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                (found if alias.name == "pytest" and not alias.asname else other).add(
                    alias.asname or alias.name.partition(".")[0]
                )
        elif isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                pytest = stmt.module == "pytest" and not stmt.level and alias.name == "fixture"
                (found if pytest and not alias.asname else other).add(alias.asname or alias.name)
        else:
            other.update(_binds_anything(stmt))
    if found & other:
        return set()
    return {"pytest.fixture" if n == "pytest" else n for n in found}


_FIXTURE_VALUES = ("params", "ids")


def _fixture_parts(owned: Any, spellings: set[str]) -> tuple[str, str]:
    """(`fixture_frames` entry, `fixture_binds` entry) of one top-level statement, as its
    owner sees it (`owned`): ("", "") unless it is a ``def`` with one decorator
    ``fixture(...)`` of pytest's whose ``params``/``ids`` are given as inert values (a value
    that may raise, ``params=1``, stays with the statement)."""
    if not isinstance(owned, _Def) or not spellings:
        return "", ""
    found = [
        d
        for d in owned.decorator_list
        if isinstance(d, ast.Call) and ast.unparse(d.func) in spellings
    ]
    if len(found) != 1 or found[0].args:
        return "", ""
    keywords = [k for k in found[0].keywords if k.arg in _FIXTURE_VALUES]
    if not keywords or not all(
        isinstance(k.value, ast.Tuple | ast.List) and _inert(k.value) for k in keywords
    ):
        return "", ""
    values = _fp(ast.dump(ast.Tuple([k.value for k in keywords], ast.Load())))
    frame = copy.deepcopy(owned)
    for decorator in frame.decorator_list:
        if isinstance(decorator, ast.Call) and ast.unparse(decorator.func) in spellings:
            for keyword in decorator.keywords:
                if keyword.arg in _FIXTURE_VALUES:
                    keyword.value = ast.Constant(_PLACEHOLDER)
    return _fp(ast.dump(frame)), f"{owned.name}={values}"


# ids pytest uses as they are: printable ASCII without a backslash (escaped) or brackets
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.+=@-]+")


def _fixture_elements(stmt: _Def) -> tuple[str, ...] | None:
    """`FileFingerprints.fixture_params` of a fixture function `_fixture_parts` accepted: None
    when it has another decorator (pytest would hold another function), no ``params``, or an
    element whose id is unknown or repeated."""
    if len(stmt.decorator_list) != 1 or not isinstance(stmt.decorator_list[0], ast.Call):
        return None
    given = {k.arg: k.value for k in stmt.decorator_list[0].keywords}
    params, ids = given.get("params"), given.get("ids")
    if not isinstance(params, ast.Tuple | ast.List):
        return None
    names: list[ast.expr] = list(params.elts)
    if ids is not None:
        if not isinstance(ids, ast.Tuple | ast.List) or len(ids.elts) != len(params.elts):
            return None
        names = [
            value if isinstance(name, ast.Constant) and name.value is None else name
            for value, name in zip(params.elts, ids.elts, strict=True)
        ]
    found: list[str] = []
    for value, name in zip(params.elts, names, strict=True):
        shown = _plain_id(name)
        if shown is None:
            return None
        found.append(f"{_fp(ast.dump(value))}:{shown}")
    shown_ids = [f.partition(":")[2] for f in found]
    return tuple(found) if len(set(shown_ids)) == len(shown_ids) else None


def _blanked(stmt: _Def) -> str:
    """`FileFingerprints.fixture_defs` of a fixture function."""
    frame = copy.deepcopy(stmt)
    for decorator in frame.decorator_list:
        if isinstance(decorator, ast.Call):
            for keyword in decorator.keywords:
                if keyword.arg in _FIXTURE_VALUES:
                    keyword.value = ast.Constant(_PLACEHOLDER)
    return _fp(ast.dump(frame))


def _plain_id(node: ast.expr) -> str | None:
    """pytest's id of a parameter (or the text of an ``ids`` entry) when it is sure: a string
    as it is, a number, bool or None as ``str`` gives it; None otherwise."""
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, str):
        return value if _PLAIN_ID.fullmatch(value) else None
    if value is None or isinstance(value, bool | int | float | complex):
        return str(value)
    return None


def _binds_anything(stmt: ast.stmt) -> set[str]:
    """The names `stmt` may bind in its module's namespace: anything it binds at any depth
    but inside function bodies (a class body's names too, needlessly)."""
    found: set[str] = set()
    stack: list[ast.AST] = [stmt]
    while stack:
        node = stack.pop()
        found.update(_bound_names(node))
        stack.extend(_outside_body(node))
    return found


def _binds_here(stmt: ast.stmt) -> set[str]:
    """`_binds_anything` but parameters, which bind in their function's scope."""
    found: set[str] = set()
    stack: list[ast.AST] = [stmt]
    while stack:
        node = stack.pop()
        if not isinstance(node, ast.arg):
            found.update(_bound_names(node))
        stack.extend(_outside_body(node))
    return found


def diff(old: FileFingerprints, new: FileFingerprints) -> FingerprintDiff:
    """Changed, added and deleted functions and whether the module-level code changed."""
    changed, added, deleted = [], [], []
    lines: dict[str, int] = {}
    for name, (fp, line) in new.functions.items():
        before = old.functions.get(name)
        if before is None:
            added.append(name)
            lines[name] = line
        elif before[0] != fp:
            changed.append(name)
            lines[name] = line
    for name, (_, line) in old.functions.items():
        if name not in new.functions:
            deleted.append(name)
            lines[name] = line
    module_changed = old.module != new.module
    module_line: int | None = None
    if module_changed:
        for index, (fp, line) in enumerate(new.statements):
            if index >= len(old.statements) or old.statements[index][0] != fp:
                module_line = line
                break
        else:
            module_line = new.statements[-1][1] if new.statements else 1
    names, attributes, classes = _changed_names(old, new) if module_changed else (None, None, ())
    return FingerprintDiff(
        tuple(sorted(changed)),
        tuple(sorted(added)),
        tuple(sorted(deleted)),
        module_changed,
        module_line,
        lines,
        names,
        attributes,
        _changed_fixtures(old, new) if module_changed else None,
        classes,
    )


def _changed_fixtures(old: FileFingerprints, new: FileFingerprints) -> tuple[str, ...] | None:
    """The names of the fixture functions whose inert ``params``/``ids`` differ between `old`
    and `new`, when every other module-level statement is the same, in the same order."""
    if old.parse_error or new.parse_error or len(old.statements) != len(new.statements):
        return None
    for fp in (old, new):
        if {len(fp.fixture_frames), len(fp.fixture_binds)} != {len(fp.statements)}:
            return None
    found: list[str] = []
    for index, ((a, _), (b, _)) in enumerate(zip(old.statements, new.statements, strict=True)):
        if a == b:
            continue
        frame, name = old.fixture_frames[index], old.fixture_binds[index].partition("=")[0]
        if not frame or frame != new.fixture_frames[index]:
            return None
        if name != new.fixture_binds[index].partition("=")[0]:
            return None
        found.append(name)
    return tuple(sorted(found)) or None


def _changed_names(
    old: FileFingerprints, new: FileFingerprints
) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None, tuple[str, ...]]:
    """(module names, ``Class.attribute`` names, changed class statements): the names of the
    plain inert assignments that differ between `old` and `new`, and the private inert
    attributes of plain classes whose values differ, when nothing else at module level differs
    and no module name can escape; (None, None, ()) otherwise.

    "Nothing else": with the assignments of the changed names left out, both versions run the
    same statements in the same order (an unchanged assignment that moved may now come after
    code that reads it), and every annotation such an assignment evaluates is the same one at
    the same place (adding ``X: Undefined = 3`` raises at import). A plain class counts by its
    frame (`class_frames`): the same attributes in the same order, only values differ.

    Failing that, a class statement that can do nothing but bind its name (`class_heads`) and
    changed outside its method bodies (a decorator's argument, a class attribute, a method's
    decorator or default) counts as a change of that name, as an assignment would: its name
    is among the module names, and ``Name|origins`` among the class statements, for selection
    to judge whether what it runs may keep the class elsewhere."""
    unknown: tuple[None, None, tuple[str, ...]] = (None, None, ())
    if old.parse_error or new.parse_error:
        return unknown
    for fp in (old, new):
        sizes = {len(fp.statements), len(fp.binds), len(fp.annotations)}
        others = {len(fp.class_frames), len(fp.class_binds), len(fp.class_heads)}
        if sizes | others != sizes or len(sizes) != 1:
            return unknown
    found = _named_changes(old, new, frozenset())
    if found is not None:
        return (*found, ())

    def heads(fp: FileFingerprints) -> set[tuple[str, str]]:
        return {(h, s) for (s, _), h in zip(fp.statements, fp.class_heads, strict=True) if h}

    changed = {h for h, _ in heads(old) ^ heads(new)}
    classes = frozenset(h.partition("|")[0] for h in changed)
    if not classes:
        return unknown
    found = _named_changes(old, new, classes)
    if found is None:
        return unknown
    origins: dict[str, set[str]] = {}
    for head in changed:
        name, _, spelled = head.partition("|")
        origins.setdefault(name, set()).update(o for o in spelled.split(",") if o)
    entries = tuple(f"{n}|{','.join(sorted(o))}" for n, o in sorted(origins.items()))
    return (*found, entries)


def spelled_unnamed(fp: FileFingerprints, names: Collection[str]) -> bool:
    """May code `fp`'s file compiles from text read one of `names` (`code_namespace`)?"""
    if not fp.code_namespace:
        return False
    return any(not n.startswith("_") or n in fp.private_strings for n in names)


def _named_changes(
    old: FileFingerprints, new: FileFingerprints, classes: frozenset[str]
) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """`_changed_names` for sizes already checked, the changed statements of `classes` (class
    statements of `class_heads`) counted as changes of their names; None when unknown."""

    def binds(fp: FileFingerprints) -> set[tuple[str, str]]:
        return {(b, s) for (s, _), b in zip(fp.statements, fp.binds, strict=True) if b}

    names = {n for b, _ in binds(old) ^ binds(new) for n in b.split(",")} | classes
    names |= {
        n for n in old.values.keys() | new.values.keys() if old.values.get(n) != new.values.get(n)
    }
    if names & _READ_BY_PYTEST:  # read by pytest as it imports the module, never by a test
        return None
    if names and (old.escapes or new.escapes or old.own_escapes or new.own_escapes):
        return None
    if any(spelled_unnamed(fp, names) for fp in (old, new)):
        return None

    def head(fp: FileFingerprints, index: int) -> str:
        return fp.class_heads[index].partition("|")[0] if fp.class_heads else ""

    def rest(fp: FileFingerprints) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for index, ((s, _), b, a, frame) in enumerate(
            zip(fp.statements, fp.binds, fp.annotations, fp.class_frames, strict=True)
        ):
            if (name := head(fp, index)) in classes:
                out.append(("class head", name))
                continue
            if not b:
                out.append(("class", frame) if frame else ("code", s))
                continue
            if not names.intersection(b.split(",")):
                out.append(("binds", s))
            if a:
                out.append(("annotation", a))
        return out

    if rest(old) != rest(new):
        return None

    def private(fp: FileFingerprints) -> list[str]:
        return [c for c in fp.class_binds if c and c.partition(".")[0] not in classes]

    attributes: set[str] = set()
    for before, after in zip(private(old), private(new), strict=False):
        olds, news = before.split(","), after.split(",")
        if len(olds) != len(news):
            return None
        for a, b in zip(olds, news, strict=True):
            name, _, value = a.partition("=")
            if b.partition("=")[0] != name:
                return None
            if b.partition("=")[2] != value:
                attributes.add(name)
    if not names and not attributes:
        return None
    return tuple(sorted(names)), tuple(sorted(attributes))


# ------------------------------------------------------------------------------ caching


class FingerprintMemo(LruCache[str, FileFingerprints]):
    """Recently used fingerprints by content digest, in memory (bounded, least recently used
    dropped first). Thread-safe: a run fingerprints its inputs in a worker thread while the
    daemon plans the next request with the same memo."""

    def __init__(self, entries: int = _MEMORY_ENTRIES) -> None:
        super().__init__(entries)

    def of_bytes(self, data: bytes, digest: str | None = None) -> FileFingerprints:
        """`fingerprint_source`, memoised by the sha256 of `data` (pass it if already known)."""
        digest = digest or hashlib.sha256(data).hexdigest()
        found = self.get(digest)
        if found is None:
            found = fingerprint_source(data)
            self.put(digest, found)
        return found


_SEAL_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class StoreUsage:
    """What a fingerprint store holds (or what a prune dropped): file versions, files, bytes."""

    versions: int = 0
    files: int = 0
    bytes: int = 0

    def __add__(self, other: StoreUsage) -> StoreUsage:
        return StoreUsage(
            self.versions + other.versions, self.files + other.files, self.bytes + other.bytes
        )


class FingerprintStore:
    """Fingerprints by content digest, on disk (one small msgpack file per digest).

    Lets a later run diff the *previous* version of a file against the current one knowing only
    the previous digest (from the stored inputs map). Missing or damaged entries read as None:
    the caller then falls back to file-level selection.
    """

    def __init__(self, directory: Path, memo: FingerprintMemo | None = None) -> None:
        self.directory = directory
        self.memo = memo if memo is not None else FingerprintMemo()

    def _path(self, digest: str) -> Path:
        # the format in the name: an entry of another Maestro's fingerprints is no entry here
        # (`has` stays two stat calls), yet its kept source is (`_from_kept`)
        return self.directory / digest[:2] / f"{digest}.f{FORMAT}.msgpack"

    def _source(self, digest: str) -> Path:
        # not `.py`: in a state directory inside the workspace, pytest, IDEs and type checkers
        # would take the kept copy for one of its modules
        return self.directory / digest[:2] / f"{digest}.src"

    def get(self, digest: str) -> FileFingerprints | None:
        found = self.memo.get(digest)
        if found is not None:
            return found
        try:
            raw = msgpack.unpackb(self._path(digest).read_bytes(), raw=False)
        except FileNotFoundError:
            raw = self._legacy(digest)
            if raw is None:
                return self._from_kept(digest)
        except (OSError, ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
            return self._from_kept(digest)
        value = FileFingerprints.from_wire(raw)
        if value is not None:
            self.memo.put(digest, value)
        return value

    def _legacy(self, digest: str) -> object:
        """An entry kept before the format was in the name (``<digest>.msgpack``), if it has
        this format; None otherwise."""
        try:
            raw = msgpack.unpackb(
                (self.directory / digest[:2] / f"{digest}.msgpack").read_bytes(), raw=False
            )
        except (OSError, ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
            return None
        return raw if isinstance(raw, dict) and raw.get("format") == FORMAT else None

    def _from_kept(self, digest: str) -> FileFingerprints | None:
        """Fingerprints of a version kept as source (``keep``), computed now, when a change is
        first diffed against it. The kept text is redacted: a function holding a secret then
        reads as changed (it re-runs its tests), never the reverse. The source stays: a Maestro
        whose fingerprints have another format computes its own from it."""
        try:
            data = self._source(digest).read_bytes()
        except OSError:
            return None
        value = self.memo.of_bytes(data, digest)
        self.put(digest, value)
        return value

    def outdated(self, digest: str) -> bool:
        """Whether the version with ``digest`` was fingerprinted by a Maestro whose fingerprints
        had another format, and neither its source nor this format's entry is kept: a change
        from it cannot be judged function by function (once, after an upgrade)."""
        if self.has(digest):
            return False
        folder = self.directory / digest[:2]
        with contextlib.suppress(OSError):
            return any(
                p.name.startswith(f"{digest}.") and p.name.endswith(".msgpack")
                for p in folder.iterdir()
            )
        return False

    def from_git(self, root: Path, rel: str, digest: str) -> FileFingerprints | None:
        """Fingerprints of the version with ``digest`` if it is ``rel`` as last committed
        (``git show HEAD:rel``): how a version no entry or kept source covers (one
        fingerprinted by an older Maestro, then edited) is still judged function by function."""
        import subprocess

        try:
            done = subprocess.run(
                ["git", "-C", os.fspath(root), "show", f"HEAD:{rel}"],
                capture_output=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        if done.returncode != 0 or hashlib.sha256(done.stdout).hexdigest() != digest:
            return None
        value = self.memo.of_bytes(done.stdout, digest)
        self.put(digest, value)
        return value

    @property
    def seal_key_path(self) -> Path:
        return self.directory / "seal.key"

    def seal_key(self) -> bytes | None:
        """The store's private key for sealing the secrets of the versions it keeps (0600;
        made on first use): a kept version and the current file sealed with it compare equal
        exactly when their secrets do. None when it cannot be had (then nothing is sealed)."""
        path = self.seal_key_path
        with contextlib.suppress(FileNotFoundError):
            key = path.read_bytes()
            return key if len(key) == _SEAL_KEY_BYTES else None
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return self.seal_key()  # another process made it first
        except OSError:
            return None
        key = os.urandom(_SEAL_KEY_BYTES)
        with os.fdopen(fd, "wb") as out:
            out.write(key)
        return key

    def has(self, digest: str) -> bool:
        return self._path(digest).exists() or self._source(digest).exists()

    def keep(self, path: Path, digest: str, *, redact: Callable[[str], str]) -> None:
        """Keep the version of ``path`` whose content has ``digest`` so that a later run can
        diff against it. Parsing every input costs about a second of CPU on a small project's
        first run (while its tests compete for the same cores), and most versions are never
        diffed: the source is kept now, through ``redact`` (no secret a test file holds is
        copied anywhere), and fingerprinted only when a change needs it. Kept even when it
        is fingerprinted already: a later Maestro with other fingerprints computes its own."""
        if self._source(digest).exists():
            return
        try:
            data = path.read_bytes()
        except OSError:
            return
        if hashlib.sha256(data).hexdigest() != digest:
            return
        text = redact(data.decode("utf-8", errors="replace"))
        target = self._source(digest)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = target.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)

    def _entries(self) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """Every file kept for a version (its fingerprints of any format, its source, a
        half-written one), with the version's digest; not the seal key."""
        with contextlib.suppress(OSError), os.scandir(self.directory) as top:
            for folder in top:
                if len(folder.name) != 2 or not folder.is_dir(follow_symlinks=False):
                    continue
                with contextlib.suppress(OSError), os.scandir(folder.path) as inside:
                    for entry in inside:
                        if entry.is_file(follow_symlinks=False):
                            yield entry.name.partition(".")[0], entry

    def usage(self) -> StoreUsage:
        """How many versions, files and bytes the store holds."""
        versions: set[str] = set()
        files = size = 0
        for digest, entry in self._entries():
            versions.add(digest)
            files += 1
            with contextlib.suppress(OSError):
                size += entry.stat(follow_symlinks=False).st_size
        return StoreUsage(len(versions), files, size)

    def prune(self, needed: Collection[str], *, grace_s: float) -> StoreUsage:
        """Drop every kept version but those in ``needed`` (the ones a later change can be
        diffed against) and those written in the last ``grace_s`` seconds (a run still going
        keeps the versions its keys name before it records them); return what was dropped.
        A version dropped and needed after all costs a whole-file re-run, never a wrong one."""
        wanted = set(needed)
        since = time.time() - grace_s
        dropped: set[str] = set()
        files = size = 0
        for digest, entry in self._entries():
            if digest in wanted:
                continue
            try:
                info = entry.stat(follow_symlinks=False)
                if info.st_mtime >= since:
                    continue
                os.unlink(entry.path)
            except OSError:
                continue
            dropped.add(digest)
            files += 1
            size += info.st_size
        return StoreUsage(len(dropped), files, size)

    def put(self, digest: str, value: FileFingerprints) -> None:
        self.memo.put(digest, value)
        path = self._path(digest)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
        tmp.write_bytes(msgpack.packb(value.to_wire(), use_bin_type=True))
        os.replace(tmp, path)

    def of_file(self, path: Path, digest: str, *, keep: bool = True) -> FileFingerprints | None:
        """Fingerprints of `path` if its content has `digest` (stored, unless not `keep`: in
        memory only); None if it differs."""
        found = self.get(digest)
        if found is not None:
            return found
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != digest:
            return None
        value = self.memo.of_bytes(data, digest)
        if keep:
            self.put(digest, value)
        return value
