"""Can what a test reads through workspace code outlive the test in that code's modules?

A read made by a workspace module's code counts for every test file importing the module: the
module may keep what it read (a table loaded once into a global, a memo), and a later test then
uses it without reading. When the code on the stack at the read provably keeps nothing, the read
counts for the test reading only. "Provably" is narrow on purpose; anything not understood keeps
the module-wide charge:

- every workspace frame between the read and the outermost workspace caller is a plain function
  (no generator, closure, memoising or other decorator: its name in its module or class resolves
  to the very function; a nested one, as the reader a fixture returns, is held as itself by its
  caller's variables), whose code writes no global, free variable or attribute, imports
  nothing and looks up no name dynamically (``getattr``, ``globals``, ``exec`` ...);
- every global such code (and the workspace functions it names, transitively) reaches is inert:
  a constant, a module's function of a small list of standard-library modules that keep no
  data, a builtin, or a workspace function satisfying the same; a mutable global (a dict, a
  list, an instance, a class, an ``lru_cache`` wrapper) or an installed library's function may
  keep what it is given;
- the arguments of the library frames are inert values (strings, paths, numbers, tuples of
  them) never rebound: such a function can only store into objects it made itself;
- no frame of other code (an installed library, say a template engine's loader that caches)
  sits between workspace frames; pytest's, pluggy's and the import system's may.

The test file's own top level (its collection) keeps what it read in the test module: that
counts for the test file (and its importers), as any collection read does, unless its code hands
it on to another workspace module (`top_level`). Test code that
stores what it read into state it was handed (a fixture's object) is the test's own change of
state, which is not followed (as when the test reads the file itself).

Stdlib only (runs inside the workspace's interpreter, 3.11+).
"""

from __future__ import annotations

import builtins
import dis
import os
import re
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import PurePath
from typing import Any, NamedTuple, TypeVar

# The directory of this file is on PYTHONPATH (the runner puts it there): siblings import as such.
import maestro_record as rec  # type: ignore[import-not-found,unused-ignore]

_FUNCTION = 0x3  # CO_OPTIMIZED | CO_NEWLOCALS
_SUSPENDS = 0x20 | 0x80 | 0x100 | 0x200  # generator, coroutine, iterable coroutine, async gen
_VARARGS, _VARKEYWORDS = 0x4, 0x8
# Standard-library modules whose functions and classes keep nothing of what they are given
# (beyond a transparent cache, as `re`'s of compiled patterns).
_KEEP_NOTHING = frozenset(
    {"os", "posixpath", "ntpath", "genericpath", "pathlib", "io", "_pyio", "codecs", "encodings",
     "json", "re", "string", "textwrap", "itertools", "functools", "operator", "math",
     "collections", "_collections_abc", "csv", "tomllib", "ast", "tokenize", "token", "difflib",
     "fnmatch", "glob", "unicodedata", "base64", "binascii", "hashlib", "struct", "html",
     "keyword", "copy", "datetime", "shlex", "gzip", "bz2", "lzma", "zipfile", "pprint",
     "reprlib", "stat", "_io", "_json", "_csv", "_functools", "_operator", "_collections",
     "_codecs", "_sre", "_stat", "_struct", "_datetime", "posix", "nt", "zlib"}
)  # fmt: skip
# Names in those modules (and builtins) that register, look up dynamically or change the process.
_KEEPERS = frozenset(
    {"register", "register_dialect", "putenv", "unsetenv", "chdir", "fchdir", "register_at_fork",
     "getattr", "setattr", "delattr", "globals", "vars", "exec", "eval", "compile",
     "__import__", "breakpoint", "super", "input", "environ", "environb", "attrgetter",
     "methodcaller", "import_module"}
)  # fmt: skip
_UNKNOWN_OPS = frozenset(
    {"STORE_GLOBAL", "DELETE_GLOBAL", "STORE_NAME", "DELETE_NAME", "LOAD_NAME", "IMPORT_STAR",
     "LOAD_BUILD_CLASS", "LOAD_SUPER_ATTR", "LOAD_CLASSDEREF",
     "LOAD_FROM_DICT_OR_GLOBALS", "LOAD_FROM_DICT_OR_DEREF", "SETUP_ANNOTATIONS"}
)  # fmt: skip
# A function's imports reach modules (and what is in them) no global names, and an attribute
# it sets may be a module's or a class's (``config.TABLE = rows``): test code only
_TEST_CODE_OPS = frozenset({"IMPORT_NAME", "IMPORT_FROM", "STORE_ATTR", "DELETE_ATTR"})
_ATTR_OPS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_INERT_TYPES = (str, bytes, int, float, complex, bool, type(None), range, PurePath, re.Pattern)
_MISSING = object()
_BUDGET = 200  # functions looked into per read; past it, assume it keeps


_STDLIB: tuple[str, ...] = rec._STDLIB
# Machinery around the tests: what it holds of a test's data is the test's result, a fixture's
# cached value (recorded per fixture) or a module it imported.
_RUNNER = ("/_pytest/", "/pluggy/", "/importlib/")


def _top(module_name: object) -> str:
    return module_name.split(".", 1)[0] if isinstance(module_name, str) else ""


def inert(value: Any, depth: int = 0) -> bool:
    """A value nobody can store into: a constant, a path, a compiled pattern, a tuple or
    frozenset of those."""
    if isinstance(value, _INERT_TYPES) or value is Ellipsis:
        return type(value).__module__ in ("builtins", "re") or (
            isinstance(value, PurePath) and type(value).__module__.startswith("pathlib")
        )
    if isinstance(value, (tuple, frozenset)) and type(value) in (tuple, frozenset):
        return depth < 3 and len(value) <= 256 and all(inert(v, depth + 1) for v in value)
    return False


class _Scan(NamedTuple):
    """What a code object (and the code nested in it) does that matters here."""

    ok: bool
    chains: list[tuple[str, ...]]  # global name, then the attribute names read off it
    rebinds: frozenset[str]  # local names stored or deleted
    test_only: bool


_SCANS: dict[int, _Scan] = {}
_HELD: dict[int, Any] = {}  # the scanned code objects, so that their keys stay theirs
_key = object.__hash__  # id() would raise an audit event inside the audit hook
_T = TypeVar("_T")


def _remember(memo: dict[int, _T], code: Any, found: _T) -> _T:
    """`found` memoised for `code` under its key; the code is held meanwhile, so that no other
    code object can take its key."""
    key = _key(code)
    _HELD[key] = code
    memo[key] = found
    return found


class _Unknown(Exception):
    """Code doing what a scan does not follow."""


_LOADS = frozenset({"LOAD_NAME", "LOAD_GLOBAL"})


def _named(code: Any, unknown: frozenset[str], chains: list[Sequence[str]]) -> Iterator[Any]:
    """`code`'s instructions but the attribute reads off a name it loads: each loaded name
    starts a chain in `chains` that those reads extend. Raises `_Unknown` at an op of
    `unknown`."""
    chain: list[str] | None = None
    for ins in dis.get_instructions(code):
        op = ins.opname
        if op in unknown:
            raise _Unknown(op)
        if chain is not None and op in _ATTR_OPS:
            chain.append(str(ins.argval))
            continue
        chain = None
        if op in _LOADS:
            chain = [str(ins.argval)]
            chains.append(chain)
        yield ins


def _scan(code: Any, *, nested: bool = False) -> _Scan:
    found = _SCANS.get(_key(code))
    return found if found is not None else _remember(_SCANS, code, _scan_code(code, nested))


def _scan_code(code: Any, nested: bool) -> _Scan:
    chains: list[Sequence[str]] = []
    rebinds: set[str] = set()
    test_only = False
    ok = code.co_flags & _FUNCTION == _FUNCTION
    if not nested:
        ok = ok and not code.co_flags & _SUSPENDS and not code.co_freevars
    try:
        for ins in _named(code, _UNKNOWN_OPS, chains) if ok else ():
            op = ins.opname
            test_only = test_only or op in _TEST_CODE_OPS
            if op.startswith(("STORE_FAST", "DELETE_FAST")):
                names = ins.argval if isinstance(ins.argval, tuple) else (ins.argval,)
                rebinds.update(str(n) for n in names)
        for const in code.co_consts if ok else ():
            if isinstance(const, types.CodeType):
                inner = _scan(const, nested=True)
                ok = ok and inner.ok
                test_only = test_only or inner.test_only
                chains.extend(inner.chains)
    except Exception:  # an op not followed, or bytecode this version of dis does not describe
        ok = False
    return _Scan(ok, [tuple(c) for c in chains], frozenset(rebinds), test_only)


class _Top(NamedTuple):
    """What a module's (or class body's) top-level code names, binds and nests."""

    ok: bool
    chains: list[tuple[str, ...]]  # names loaded, then the attribute names read off them
    own: frozenset[str]  # names it binds itself (not by an import)
    bodies: list[Any]  # class bodies it runs


_TOPS: dict[int, _Top] = {}
_CLASS_BODY = 0x2  # CO_NEWLOCALS: a function's code; a class body has neither flag
_TOP_UNKNOWN = frozenset(
    {"STORE_ATTR", "DELETE_ATTR", "STORE_GLOBAL", "DELETE_GLOBAL", "DELETE_NAME", "IMPORT_STAR"}
)


def _scan_top(code: Any) -> _Top:
    found = _TOPS.get(_key(code))
    return found if found is not None else _remember(_TOPS, code, _scan_top_code(code))


def _scan_top_code(code: Any) -> _Top:
    chains: list[Sequence[str]] = []
    own: set[str] = set()
    bodies: list[Any] = []
    ok = True
    try:
        imported = False
        for ins in _named(code, _TOP_UNKNOWN, chains):
            op = ins.opname
            if op in ("IMPORT_NAME", "IMPORT_FROM"):
                imported = True
                continue
            if op == "STORE_NAME" and not imported:
                own.add(str(ins.argval))
            imported = imported and op in ("STORE_NAME", "POP_TOP", "SWAP", "COPY")
        for const in code.co_consts:
            # class bodies, and what runs in place (a comprehension, a generator expression
            # before 3.12; a lambda, to be safe)
            if isinstance(const, types.CodeType) and (
                not const.co_flags & _CLASS_BODY or const.co_name.startswith("<")
            ):
                bodies.append(const)
    except Exception:
        ok = False
    return _Top(ok, [tuple(c) for c in chains], frozenset(own), bodies)


class _Judge:
    """One read's verdict: every function looked into must keep nothing (bounded work)."""

    def __init__(self, is_workspace: Callable[[str], bool]) -> None:
        self.is_workspace = is_workspace
        self.seen: set[tuple[int, bool]] = set()
        self.budget = _BUDGET

    def function(self, func: Any, lenient: bool = False) -> bool:
        """A workspace function called by name keeps nothing of what it gets."""
        key = (_key(func), lenient)
        if key in self.seen:
            return True  # being judged (recursion): its verdict comes from the first visit
        self.seen.add(key)
        self.budget -= 1
        if self.budget < 0 or func.__closure__ is not None:
            return False
        if not inert(func.__defaults__ or ()) or not inert(
            tuple((func.__kwdefaults__ or {}).values())
        ):
            return False
        code = func.__code__
        scan = _scan(code)
        if not scan.ok or (scan.test_only and not lenient):
            return False
        return self.chains(scan.chains, func.__globals__, lenient)

    def chains(
        self, chains: list[tuple[str, ...]], namespace: dict[str, Any], lenient: bool
    ) -> bool:
        for chain in chains:
            value = namespace.get(chain[0], _MISSING)
            if value is _MISSING:
                value = getattr(builtins, chain[0], _MISSING)
                if value is _MISSING or chain[0] in _KEEPERS:
                    return False
            if not self.value(value, chain[1:], lenient):
                return False
        return True

    def value(self, value: Any, attrs: tuple[str, ...], lenient: bool = False) -> bool:
        """What a global (with the attributes read off it) is keeps nothing it is given.
        `lenient` (test code): modules, classes and functions outside the workspace pass."""
        for name in attrs:
            if isinstance(value, types.ModuleType):
                if not (lenient or self.module(value)) or name in _KEEPERS:
                    return False
                value = vars(value).get(name, _MISSING)
                if value is _MISSING:
                    return lenient  # a module __getattr__, or not there yet
            elif isinstance(value, type):
                # a method or constant of a keep-nothing class
                return lenient or (self.foreign_class(value) and name not in _KEEPERS)
            else:
                return inert(value)  # an attribute read off a value: only an inert one
        if inert(value):
            return True
        if isinstance(value, types.FunctionType):
            if self._workspace(value.__code__.co_filename):
                return self.function(value, lenient)
            if lenient:
                return True
            return _top(value.__module__) in _KEEP_NOTHING and value.__name__ not in _KEEPERS
        if isinstance(value, types.BuiltinFunctionType):
            owner = getattr(value, "__self__", None)
            if value.__name__ in _KEEPERS:
                return False
            if lenient or owner is None or owner is builtins:
                return True
            if isinstance(owner, types.ModuleType):
                return _top(owner.__name__) in _KEEP_NOTHING
            return isinstance(owner, type) and self.foreign_class(owner)
        if isinstance(value, (type, types.ModuleType)):
            return lenient or (isinstance(value, type) and self.foreign_class(value))
        return False

    def module(self, module: types.ModuleType) -> bool:
        return _top(module.__name__) in _KEEP_NOTHING or self._workspace(
            getattr(module, "__file__", None) or ""
        )

    @staticmethod
    def foreign_class(cls: type) -> bool:
        """A builtin class or one of a keep-nothing module (a workspace class is not looked
        into: its methods may keep in its class namespace)."""
        return cls.__module__ == "builtins" or _top(cls.__module__) in _KEEP_NOTHING

    def _workspace(self, filename: str) -> bool:
        return bool(filename) and self.is_workspace(filename)

    def frame(self, frame: Any, own: bool) -> bool:
        """A workspace frame on the stack at the read keeps nothing (a library frame: nor can
        it store into what its caller handed it)."""
        code = frame.f_code
        if not own and not self._arguments(frame, code):
            return False  # first: cheaper than looking into the code (a method's self)
        scan = _scan(code)
        if not scan.ok or (scan.test_only and not own):
            return False
        if not own and scan.rebinds.intersection(_parameters(code)):
            return False
        qualname = getattr(code, "co_qualname", code.co_name)
        func = self._resolve(frame.f_globals, qualname)
        if func is None and "<locals>" in qualname:
            func = self._held_by_caller(frame)
        # test code: what it stores into state it was handed is its own change
        return func is not None and func.__code__ is code and self.function(func, own)

    @staticmethod
    def _held_by_caller(frame: Any) -> Any:
        """A nested function (the reader a fixture returns) as its caller holds it: the very
        function in one of the caller's variables. None when the caller holds a wrapper of it
        (a cache in C code, between the two frames, may keep what it returns)."""
        caller, code = frame.f_back, frame.f_code
        if caller is None:
            return None
        found = None
        for value in caller.f_locals.values():
            if isinstance(value, types.FunctionType) and value.__code__ is code:
                found = value
            elif getattr(getattr(value, "__wrapped__", None), "__code__", None) is code:
                return None
        return found

    @staticmethod
    def _arguments(frame: Any, code: Any) -> bool:
        """A library frame's arguments are inert: it cannot store into what it was handed."""
        params = _parameters(code)
        values = frame.f_locals
        keywords = params[-1] if code.co_flags & _VARKEYWORDS else None
        for name in params:
            value = values.get(name, _MISSING)
            if name == keywords and type(value) is dict:  # **kwargs: made by the call
                value = tuple(value.values())
            if not inert(value):
                return False
        return True

    def top_level(self, frame: Any) -> bool:
        """The test file's own top level keeps what it read in the test module (the file's,
        and its importers'), unless it hands it on: all of its code (the statements after the
        read too) may reach no other workspace module's container, class or attribute, and
        may call no other workspace module's function that could keep what it is given."""
        code = frame.f_code
        if code.co_name != "<module>":
            return False  # a class body running
        return self._top_code(code, frame.f_globals, frame.f_globals.get("__name__"), frozenset())

    def _top_code(
        self, code: Any, namespace: dict[str, Any], name: Any, outer: frozenset[str]
    ) -> bool:
        top = _scan_top(code)
        if not top.ok:
            return False
        own = outer | top.own | {"__annotations__"}  # its own, made by SETUP_ANNOTATIONS
        for chain in top.chains:
            value = namespace.get(chain[0], _MISSING)
            if value is _MISSING:
                if chain[0] in own:  # bound further down: only passed on as it is
                    if len(chain) > 1:
                        return False
                    continue
                value = getattr(builtins, chain[0], _MISSING)
                if value is _MISSING or chain[0] in _KEEPERS:
                    return False
            if not self._top_value(value, chain[1:], name, chain[0] in own):
                return False
        return all(self._top_code(body, namespace, name, own) for body in top.bodies)

    def _top_value(self, value: Any, attrs: tuple[str, ...], name: Any, mine: bool) -> bool:
        """What a test module's top level names (`mine`: a name it binds itself, not by an
        import) hands nothing it is given to another workspace module."""
        held_by = None  # the module the value was read off
        for attr in attrs:
            if not isinstance(value, types.ModuleType):
                break
            if attr in _KEEPERS:
                return False
            held_by = value
            value = vars(value).get(attr, _MISSING)
            if value is _MISSING:
                return False
        if isinstance(value, types.FunctionType):
            if value.__module__ == name:
                return self.function(value, lenient=True)  # its own helper: test code
            return not self._workspace(value.__code__.co_filename) or self.function(value)
        if isinstance(value, type):
            module = sys.modules.get(value.__module__)
            return value.__module__ == name or not self._workspace(
                getattr(module, "__file__", None) or ""
            )
        if isinstance(value, types.BuiltinFunctionType):
            return value.__name__ not in _KEEPERS
        if inert(value) or isinstance(value, types.ModuleType):
            return True
        if held_by is None:
            return mine  # its own value; an imported one may be another module's
        # an object installed code holds (pytest.mark), not a workspace module
        return not self._workspace(getattr(held_by, "__file__", None) or "")

    @staticmethod
    def _resolve(namespace: dict[str, Any], qualname: str) -> Any:
        """The function a qualified name names in its module, through class namespaces; None
        when that is not a plain function (decorated, nested, a property)."""
        parts = qualname.split(".")
        if any(p.startswith("<") for p in parts):
            return None
        value = namespace.get(parts[0])
        for part in parts[1:]:
            if not isinstance(value, type):
                return None
            value = vars(value).get(part)
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
        return value if isinstance(value, types.FunctionType) else None


def _parameters(code: Any) -> tuple[str, ...]:
    count = code.co_argcount + code.co_kwonlyargcount
    count += bool(code.co_flags & _VARARGS) + bool(code.co_flags & _VARKEYWORDS)
    return tuple(code.co_varnames[:count])


def _runner(filename: str) -> bool:
    return filename.startswith("<frozen ") or any(r in filename for r in _RUNNER)


def _keeps_nothing_file(filename: str) -> bool:
    if not filename.startswith(_STDLIB):
        return False
    for prefix in _STDLIB:
        if filename.startswith(prefix):
            rest = filename[len(prefix) :]
            return _top(rest.replace(os.sep, ".").removesuffix(".py")) in _KEEP_NOTHING
    return False


def stays_with_test(frame: Any, own: str, is_workspace: Callable[[str], bool]) -> bool:
    """Does a read whose innermost frame is `frame` stay with the test file `own` (absolute
    path) that is running or being collected? See the module's docstring."""
    judge = _Judge(is_workspace)
    pending = False  # a frame of other code since the last workspace frame
    try:
        while frame is not None:
            code = frame.f_code
            filename = code.co_filename
            if filename and is_workspace(filename):
                if pending:
                    return False
                mine = rec.abspath(filename) == own
                if mine and code.co_flags & _FUNCTION != _FUNCTION:
                    if not judge.top_level(frame):
                        return False
                elif not judge.frame(frame, mine):
                    return False
            elif not (_runner(filename) or _keeps_nothing_file(filename)):
                pending = True
            frame = frame.f_back
    except Exception:  # anything odd: the module-wide charge
        return False
    return True
