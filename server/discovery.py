"""Test functions of a file, found with ``ast`` (no import, no daemon): what lenses, hovers and
the test explorer show for the editor's current text."""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass, field


@dataclass
class TestItem:
    """A test function or class; ``line`` is 0-based (the ``def``/``class`` line)."""

    __test__ = False

    nodeid: str
    name: str
    kind: str  # "class" | "function"
    line: int
    col: int
    end_line: int
    name_col: int
    children: list[TestItem] = field(default_factory=list)

    def walk(self) -> list[TestItem]:
        return [self, *(c for child in self.children for c in child.walk())]


# Strings and comments, as in maestro.graph.scanner (str, not bytes): masked before the
# line walk so that a ``def test_`` inside a docstring is not a test and a bracket inside a
# string does not open a continuation.
_STRINGS_AND_COMMENTS = re.compile(
    r'"""[^"\\]*(?:(?:\\.|"(?!""))[^"\\]*)*"""'
    r"|'''[^'\\]*(?:(?:\\.|'(?!''))[^'\\]*)*'''"
    r'|"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
    r"|'[^'\\\n]*(?:\\.[^'\\\n]*)*'"
    r"|\#[^\n]*",
    re.S,
)
_DEF = re.compile(r"(?:async[ \t]+)?def[ \t]+(\w+)")
_CLASS = re.compile(r"class[ \t]+(\w+)[ \t]*(?:\((.*)\))?")
_DEF_OR_CLASS = re.compile(r"(?:async[ \t]+def|def|class)[ \t]+\w")
# `TestMachine = Machine.TestCase` at module level: a unittest class the module names by an
# assignment (Hypothesis' stateful tests), which pytest collects under that name
_ALIAS = re.compile(r"(\w+)[ \t]*=[ \t]*[\w.]+\.TestCase[ \t]*$")
_INSIDE = "\x01"  # marks a line that starts inside a multi-line string


def _mask(match: re.Match[str]) -> str:
    text = match.group()
    if text[0] == "#":
        return ""
    newlines = text.count("\n")
    return "''" + ("\n" + _INSIDE) * newlines if newlines else "''"


def _unittest_like(bases: str, known: set[str]) -> bool:
    """A lexical guess at ``issubclass(cls, unittest.TestCase)``: a base named like a test case
    (``TestCase``, ``SimpleTestCase``, ``OperationTestBase``) or a test class of this file."""
    for base in bases.split(","):
        name = base.strip().rsplit(".", 1)[-1]
        if "Test" in name or name in known:
            return True
    return False


@dataclass
class _Block:
    indent: int
    kind: str  # "class" | "function"
    item: TestItem | None  # the test item this block is, if any
    bases: str = ""
    pending: list[TestItem] = field(default_factory=list)  # test methods of a candidate class


def discover(rel_path: str, source: str) -> list[TestItem]:
    """Top-level test functions and test classes (``Test*`` or unittest-style, or a
    ``TestCase`` named by an assignment) of a test file.

    Lexical, like the import scanner: ``ast.parse`` of a large test module is too slow for a
    request an editor sends on every keystroke pause; this walk is much cheaper and still works
    while the buffer has a syntax error elsewhere. Nothing inside a function body can be a test,
    so a body is skipped in one regex search for the next line indented no deeper than its
    ``def`` (bracket depth carried over by counting, in C)."""
    masked_text = _STRINGS_AND_COMMENTS.sub(_mask, source)
    masked = masked_text.split("\n")
    lines = source.split("\n")
    items: list[TestItem] = []
    stack: list[_Block] = []
    known: set[str] = set()  # unittest-like classes of this file
    depth = 0
    continued = False
    last_code = 0

    def close(block: _Block, end: int) -> None:
        item = block.item
        if item is not None:
            item.end_line = end
        if block.kind != "class" or item is None:
            return
        item.children.extend(block.pending)
        if item.children:
            known.add(item.name)
            parent = stack[-1] if stack else None
            if parent is None:
                items.append(item)
            elif parent.item is not None:
                parent.pending.append(item)

    count = len(masked)
    number = -1
    offset = 0  # of line `number + 1` in masked_text
    while number + 1 < count:
        number += 1
        if stack and stack[-1].kind == "function" and not (depth or continued):
            body = _skip_body(masked_text, masked, number, offset, stack[-1].indent)
            if body is not None:
                number, offset, body_last_code, continued = body
                if body_last_code is not None:
                    last_code = body_last_code
                if number >= count:
                    break
        text = masked[number]
        offset += len(text) + 1
        stripped = text.lstrip(" \t" + _INSIDE)
        if not stripped:
            if text.startswith(_INSIDE):
                last_code = number
            continue
        statement = not (depth or continued or text[0] == _INSIDE)
        if not statement and text[0] != _INSIDE and _DEF_OR_CLASS.match(stripped):
            # never inside brackets in valid code: an unclosed bracket above is being typed
            depth, continued, statement = 0, False, True
        if "(" in text or ")" in text:
            depth += text.count("(") - text.count(")")
        if "[" in text or "]" in text or "{" in text or "}" in text:
            depth += text.count("[") + text.count("{") - text.count("]") - text.count("}")
        depth = max(depth, 0)
        continued = stripped[-1] == "\\"
        if not statement:
            last_code = number
            continue
        indent = len(text) - len(stripped)
        while stack and stack[-1].indent >= indent:
            close(stack.pop(), last_code)
        last_code = number
        if stripped[0] == "@":
            continue
        head = stripped[:6]
        if head.startswith(("def", "async")):
            found = _DEF.match(stripped)
            if found is None:
                continue
            name = found.group(1)
            parent = stack[-1] if stack else None
            item = None
            if name.startswith("test") and (parent is None or parent.kind == "class"):
                prefix = parent.item.nodeid if parent and parent.item else rel_path
                if parent is None or parent.item is not None:
                    item = _item(f"{prefix}::{name}", name, "function", number, indent, lines)
                    if parent is None:
                        items.append(item)
                    else:
                        parent.pending.append(item)
            stack.append(_Block(indent, "function", item))
        elif head.startswith("class"):
            found = _CLASS.match(stripped)
            if found is None:
                continue
            name, bases = found.group(1), found.group(2) or ""
            parent = stack[-1] if stack else None
            item = None
            nestable = parent is None or (parent.kind == "class" and parent.item is not None)
            if nestable and (name.startswith("Test") or _unittest_like(bases, known)):
                prefix = parent.item.nodeid if parent and parent.item else rel_path
                item = _item(f"{prefix}::{name}", name, "class", number, indent, lines)
            stack.append(_Block(indent, "class", item, bases))
        elif not indent and "TestCase" in stripped:
            alias = _ALIAS.match(stripped)
            if alias is not None:
                name = alias.group(1)
                items.append(_item(f"{rel_path}::{name}", name, "class", number, 0, lines))
    while stack:
        close(stack.pop(), last_code)
    items.sort(key=lambda i: i.line)
    return items


@functools.lru_cache(maxsize=64)
def _shallow(indent: int) -> re.Pattern[str]:
    """A line indented at most ``indent`` with code on it (not blank, not inside a string)."""
    return re.compile(rf"^[ \t]{{0,{indent}}}[^ \t\n{_INSIDE}]", re.M)


def _skip_body(
    text: str, masked: list[str], number: int, offset: int, indent: int
) -> tuple[int, int, int | None, bool] | None:
    """From line ``number`` (at ``offset``) inside a function body, at bracket depth 0, to the
    next line that may end it: (that line, its offset, the body's last code line or None,
    whether that line continues a backslash). None when the skipped lines do not balance their
    brackets (a statement that continues at a shallow indent, or code being typed): the caller
    walks them line by line."""
    found = _shallow(indent).search(text, offset)
    stop = found.start() if found else len(text)
    if stop == offset:
        return None
    end = number + text.count("\n", offset, stop) if found else len(masked)
    if (text.count("(", offset, stop) - text.count(")", offset, stop)) or (
        text.count("[", offset, stop)
        + text.count("{", offset, stop)
        - text.count("]", offset, stop)
        - text.count("}", offset, stop)
    ):
        return None
    last_code = None
    continued = False
    for back in range(end - 1, number - 1, -1):
        line = masked[back]
        stripped = line.lstrip(" \t" + _INSIDE)
        if stripped or line.startswith(_INSIDE):
            last_code = back
            continued = stripped.endswith("\\")
            break
    return end, stop, last_code, continued


def _item(nodeid: str, name: str, kind: str, line: int, indent: int, lines: list[str]) -> TestItem:
    text = lines[line] if line < len(lines) else ""
    col = text.find(name, indent)
    return TestItem(
        nodeid=nodeid,
        name=name,
        kind=kind,
        line=line,
        col=indent,
        end_line=line,
        name_col=max(col, 0),
    )


def flatten(items: list[TestItem]) -> list[TestItem]:
    return [i for item in items for i in item.walk()]


def item_at(items: list[TestItem], line: int) -> TestItem | None:
    """The innermost test item whose ``def`` line (or decorator lines above it) is ``line``."""
    for item in flatten(items):
        if item.kind == "function" and item.line == line:
            return item
    for item in flatten(items):
        if item.line == line:
            return item
    return None


@dataclass
class ImportAt:
    module: str
    names: list[str]
    line: int


def import_at(source: str, line: int) -> ImportAt | None:
    """The import statement on 0-based ``line``, if any (absolute imports only)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
        if not first <= line <= last:
            continue
        if isinstance(node, ast.Import):
            return ImportAt(node.names[0].name, [], first)
        if node.level == 0 and node.module:
            return ImportAt(node.module, [a.name for a in node.names], first)
    return None
