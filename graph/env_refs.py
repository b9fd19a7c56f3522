"""Environment variables the workspace's own code reads by a literal name.

pytest gets only allowlisted variables (maestro/envvars.py), so a result depends on nothing the
key does not cover. A variable the project's code reads by name (``os.environ.get("X")``,
``os.getenv("X")``, ``os.environ["X"]``, ``"X" in os.environ``) is one the user expects a run to
see: plain pytest sees it, and a run without it is not what pytest would say. Those names join
the allowlist, so a set one reaches pytest and enters the key; an unset one changes nothing.

Found by a regular expression over each Python file's bytes, memoised per file by its size and
mtime in the index (``Index.extra``), so only changed files are read again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from maestro.envvars import STEERING

MEMO = "env-refs"
_IDENT = rb"([A-Za-z_][A-Za-z0-9_]*)"
_IN = rb"\s+(?:not\s+)?in\s+(?:os\.)?environb?\b"


def _alternatives() -> list[bytes]:
    """`environ.get("X")` (and `[`, `.setdefault`, `.pop`), `getenv("X")`, then `"X" in environ`
    for each string prefix and quote. Each alternative starts with a character of its own
    (`e(?<!\\we)` is `\\be`): the search then tries only the positions one can start at, not
    the whole pattern at each byte. The name is a match's last group."""
    string = rb"[rbuRBU]?(['\"])" + _IDENT + rb"\%d"  # quote group, name group, same quote
    out = [
        rb"e(?<!\we)nvironb?(?:\.get|\.setdefault|\.pop)?\s*[\[(]\s*" + string % 1,
        rb"g(?<!\wg)etenvb?\s*\(\s*" + string % 3,
    ]
    out += [
        bytes([letter]) + rb"(['\"])" + _IDENT + rb"\%d" % (5 + 2 * i) + _IN
        for i, letter in enumerate(b"rbuRBU")
    ]
    return out + [quote + _IDENT + quote + _IN for quote in (b"'", b'"')]


_READ = re.compile(b"|".join(_alternatives()))
# tooling that never runs under pytest: its variables (CIBUILDWHEEL, a docs build's) would key
# every test of the workspace for nothing
_TOOLING = frozenset({"setup.py", "noxfile.py", "fabfile.py", "docs/conf.py", "doc/conf.py"})


class _Stat(Protocol):
    size: int
    mtime_ns: int


class _Index(Protocol):
    extra: dict[str, Any]
    dirty: bool


def read_names(data: bytes) -> list[str]:
    """The variable names `data` (Python source) reads by a literal name, sorted."""
    if b"environ" not in data and b"getenv" not in data:
        return []
    found = {m.group(m.lastindex or 0).decode() for m in _READ.finditer(data)}
    return sorted(found)


@dataclass(frozen=True, slots=True)
class Referenced:
    """The names the workspace's code reads, and whether finding them changed the memo (files
    were read again: the index is worth saving, a graph copied now carries the new memo)."""

    names: frozenset[str]
    changed: bool


def referenced(root: Path, files: Mapping[str, _Stat], index: _Index) -> Referenced:
    """Every name the workspace's Python files (``files``: path -> its stat as the graph last
    saw it) read, tooling scripts aside. Unreadable files count as reading nothing."""
    old: dict[str, list[Any]] = index.extra.get(MEMO) or {}
    memo: dict[str, list[Any]] = {}
    changed = len(old) != len(files)
    for rel, st in files.items():
        seen = old.get(rel)
        if seen is not None and seen[0] == st.size and seen[1] == st.mtime_ns:
            memo[rel] = seen
            continue
        try:
            data = b"" if rel in _TOOLING else (root / rel).read_bytes()
        except OSError:
            data = b""
        memo[rel] = [st.size, st.mtime_ns, read_names(data)]
        changed = True
    if changed:
        index.extra[MEMO] = memo
        index.dirty = True
    return Referenced(
        frozenset(
            name
            for _, _, names in memo.values()
            for name in names
            if not name.startswith(STEERING)  # the run's, not a test's
        ),
        changed,
    )
