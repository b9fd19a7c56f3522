"""AST fingerprints of a Python file: one per function body, one for the module-level code.

Function-level test selection (docs/action-key.md, "Node-level selection") compares the
fingerprints of two versions of a file to tell *which* code changed:

- every ``def``/``async def`` has its own fingerprint under its qualified name, exactly as CPython
  spells ``co_qualname`` (``Config.from_file``, ``outer.<locals>.inner``);
- everything else is owned by the code that runs it: class bodies, decorators, default arguments
  and annotations of a ``def`` belong to the enclosing function or to the module-level code (they
  are evaluated when the ``def`` statement runs); lambdas, comprehensions and generator
  expressions belong to the function they are written in;
- a nested ``def`` contributes to its owner only through that ``def`` statement (name, signature,
  decorators), never through its body;
- comments, blank lines and formatting do not count (``ast.dump`` without positions); docstrings do
  (they are code: ``__doc__``, doctests).

Two definitions with the same qualified name (property getter and setter, ``if``/``else``
variants) share one combined fingerprint, so a change to either counts for both.

A file that does not parse has only a module fingerprint derived from its bytes: any change to it
is a module-level change. Results are cached by content digest, in memory and (with
``FingerprintStore``) on disk, so that the *previous* version of a file can be diffed without
keeping its source.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

FORMAT = 1
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

    def to_wire(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "module": self.module,
            "functions": {q: list(v) for q, v in self.functions.items()},
            "statements": [list(s) for s in self.statements],
            "parse_error": self.parse_error,
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


class _Splitter:
    """Copies a tree with nested ``def`` bodies cut out, registering each body under its name."""

    def __init__(self) -> None:
        self.functions: dict[str, tuple[str, int]] = {}

    def owned(self, node: ast.AST, prefix: str) -> Any:
        """A copy of `node` as its owner sees it (nested defs reduced to their def statement)."""
        if isinstance(node, _Def):
            self.register(node, prefix + node.name)
            stub = copy.copy(node)
            stub.body = []
            stub.decorator_list = [self.expr(d, prefix) for d in node.decorator_list]
            stub.args = self.expr(node.args, prefix)
            stub.returns = self.expr(node.returns, prefix) if node.returns else None
            return stub
        if isinstance(node, ast.ClassDef):
            new_class = copy.copy(node)
            new_class.decorator_list = [self.expr(d, prefix) for d in node.decorator_list]
            new_class.bases = [self.expr(b, prefix) for b in node.bases]
            new_class.keywords = [self.expr(k, prefix) for k in node.keywords]
            inner = f"{prefix}{node.name}."
            new_class.body = [self.owned(s, inner) for s in node.body]
            return new_class
        return self.expr(node, prefix)

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

    def register(self, node: _Def, qualname: str) -> None:
        inner = qualname + ".<locals>."
        args = copy.copy(node.args)
        args.defaults = []  # evaluated by the owner (its `def` statement)
        args.kw_defaults = []
        body = [ast.dump(self.owned(s, inner)) for s in node.body]
        text = "\n".join([type(node).__name__, node.name, ast.dump(args), *body])
        fp = _fp(text)
        line = _def_line(node)
        previous = self.functions.get(qualname)
        if previous is not None:  # same qualname defined twice: one combined fingerprint
            fp, line = _fp(previous[0] + fp), min(previous[1], line)
        self.functions[qualname] = (fp, line)


def fingerprint_source(data: bytes) -> FileFingerprints:
    """Fingerprints of one file's content (never raises; a syntax error gives a byte digest)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes etc.
            tree = ast.parse(data)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return FileFingerprints(module="bytes:" + _fp(data.hex()), parse_error=True)
    splitter = _Splitter()
    statements: list[tuple[str, int]] = []
    try:
        for stmt in tree.body:
            line = _def_line(stmt) if isinstance(stmt, _Def | ast.ClassDef) else stmt.lineno
            statements.append((_fp(ast.dump(splitter.owned(stmt, ""))), line))
    except RecursionError:
        return FileFingerprints(module="bytes:" + _fp(data.hex()), parse_error=True)
    module = _fp("\n".join(fp for fp, _ in statements))
    return FileFingerprints(module, splitter.functions, tuple(statements))


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
    return FingerprintDiff(
        tuple(sorted(changed)),
        tuple(sorted(added)),
        tuple(sorted(deleted)),
        module_changed,
        module_line,
        lines,
    )


# ------------------------------------------------------------------------------ caching

_memory: OrderedDict[str, FileFingerprints] = OrderedDict()


def _remember(digest: str, value: FileFingerprints) -> None:
    _memory[digest] = value
    _memory.move_to_end(digest)
    while len(_memory) > _MEMORY_ENTRIES:
        _memory.popitem(last=False)


def fingerprint_bytes(data: bytes, digest: str | None = None) -> FileFingerprints:
    """`fingerprint_source`, memoised by the sha256 of `data` (pass it if already known)."""
    digest = digest or hashlib.sha256(data).hexdigest()
    found = _memory.get(digest)
    if found is None:
        found = fingerprint_source(data)
    _remember(digest, found)
    return found


class FingerprintStore:
    """Fingerprints by content digest, on disk (one small msgpack file per digest).

    Lets a later run diff the *previous* version of a file against the current one knowing only
    the previous digest (from the stored inputs map). Missing or damaged entries read as None:
    the caller then falls back to file-level selection.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, digest: str) -> Path:
        return self.directory / digest[:2] / f"{digest}.msgpack"

    def get(self, digest: str) -> FileFingerprints | None:
        found = _memory.get(digest)
        if found is not None:
            return found
        try:
            raw = msgpack.unpackb(self._path(digest).read_bytes(), raw=False)
        except (OSError, ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
            return None
        value = FileFingerprints.from_wire(raw)
        if value is not None:
            _remember(digest, value)
        return value

    def has(self, digest: str) -> bool:
        return self._path(digest).exists()

    def put(self, digest: str, value: FileFingerprints) -> None:
        _remember(digest, value)
        path = self._path(digest)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(msgpack.packb(value.to_wire(), use_bin_type=True))
        os.replace(tmp, path)

    def of_file(self, path: Path, digest: str) -> FileFingerprints | None:
        """Fingerprints of `path` if its content has `digest` (stored); None if it differs."""
        found = self.get(digest)
        if found is not None:
            return found
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != digest:
            return None
        value = fingerprint_bytes(data, digest)
        self.put(digest, value)
        return value
