"""Test functions of a file, found with ``ast`` (no import, no daemon): what lenses, hovers and
the test explorer show for the editor's current text."""

from __future__ import annotations

import ast
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


def _is_test_function(node: ast.AST) -> bool:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")


def _def_line(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> int:
    """The line of ``def``/``class`` itself, after any decorators (0-based)."""
    return node.lineno - 1


def _name_col(lines: list[str], line: int, name: str) -> int:
    text = lines[line] if 0 <= line < len(lines) else ""
    col = text.find(name)
    return max(col, 0)


def _item(
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, nodeid: str, lines: list[str]
) -> TestItem:
    line = _def_line(node)
    return TestItem(
        nodeid=nodeid,
        name=node.name,
        kind="class" if isinstance(node, ast.ClassDef) else "function",
        line=line,
        col=node.col_offset,
        end_line=(node.end_lineno or node.lineno) - 1,
        name_col=_name_col(lines, line, node.name),
    )


def _class_items(cls: ast.ClassDef, prefix: str, lines: list[str]) -> TestItem | None:
    item = _item(cls, f"{prefix}::{cls.name}", lines)
    for node in cls.body:
        if _is_test_function(node):
            assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            item.children.append(_item(node, f"{item.nodeid}::{node.name}", lines))
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            nested = _class_items(node, item.nodeid, lines)
            if nested is not None:
                item.children.append(nested)
    return item if item.children else None


def discover(rel_path: str, source: str) -> list[TestItem]:
    """Top-level test functions and ``Test*`` classes of a test file (syntax errors: nothing)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    lines = source.splitlines()
    items: list[TestItem] = []
    for node in tree.body:
        if _is_test_function(node):
            assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            items.append(_item(node, f"{rel_path}::{node.name}", lines))
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            found = _class_items(node, rel_path, lines)
            if found is not None:
                items.append(found)
    return items


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
