"""The lexical scanner finds every import `ast` finds, in every form DESIGN §3 lists."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from maestro.graph.scanner import (
    RawImport,
    ast_imports,
    check_syntax,
    encoding_problem,
    scan_imports,
)


def mods(source: str) -> set[tuple[str, str, int]]:
    return {(i.kind, i.module, i.level) for i in scan_imports(source.encode())}


def test_plain_and_aliased_imports() -> None:
    assert mods("import os, a.b as c\nimport x.y\n") == {
        ("import", "os", 0),
        ("import", "a.b", 0),
        ("import", "x.y", 0),
    }


def test_from_imports_relative_and_parenthesized() -> None:
    found = scan_imports(b"from ..pkg.sub import (\n    a,  # comment\n    b as c,\n)\n")
    assert found == [RawImport("from", "pkg.sub", 2, ("a", "b"), 1)]
    assert scan_imports(b"from . import x") == [RawImport("from", "", 1, ("x",), 1)]


def test_nested_and_conditional_imports() -> None:
    src = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING: import typed_only\n"
        "def f():\n"
        "    import inside_function\n"
        "try: import fast\n"
        "except ImportError: import slow\n"
        "x = 1; import after_semicolon\n"
    )
    assert {m for _, m, _ in mods(src)} >= {
        "typed_only",
        "inside_function",
        "fast",
        "slow",
        "after_semicolon",
    }


def test_backslash_continuation_reports_statement_line() -> None:
    found = scan_imports(b"\n\nfrom a.b \\\n    import c\n")
    assert found == [RawImport("from", "a.b", 0, ("c",), 3)]


def test_imports_inside_strings_and_comments_are_ignored() -> None:
    src = '"""\nimport not_real\nfrom fake import x\n"""\n# import commented\nimport real\n'
    assert mods(src) == {("import", "real", 0)}


def test_dynamic_literal_imports() -> None:
    src = (
        "import importlib\n"
        "m = importlib.import_module('pkg.plugins.one')\n"
        "n = import_module('.two', package='pkg.plugins')\n"
        'o = __import__("pkg.three")\n'
        "p = importlib.import_module(name)\n"  # not a literal: not resolvable
    )
    dynamic = {i.module for i in scan_imports(src.encode()) if i.kind == "dynamic"}
    assert dynamic == {"pkg.plugins.one", "pkg.plugins.two", "pkg.three"}


def test_a_computed_name_below_a_literal_package_is_any_module_of_it() -> None:
    """rich's ``import_module(module_name, "rich._unicode_data")`` loads one of its tables."""
    src = (
        'm = import_module(module_name, "rich._unicode_data")\n'
        "n = importlib.import_module(f'.t_{v}', package='pkg')\n"
        "o = my_import_module(name, 'other')\n"  # another function
    )
    found = [(i.kind, i.module, i.names) for i in scan_imports(src.encode())]
    assert found == [("dynamic", "rich._unicode_data", ("*",)), ("dynamic", "pkg", ("*",))]
    # a name built on a literal package's prefix
    src = "m = import_module(f'pkg.tables.t_{v}')\nn = import_module('pkg.data.d_' + v)\n"
    found = [(i.module, i.names) for i in scan_imports(src.encode()) if i.names == ("*",)]
    assert found == [("pkg.tables", ("*",)), ("pkg.data", ("*",))]
    # the name built before the call: the file's literal prefixes
    src = "name = f'pkg.tables.t_{v}'\nother = f'{x}.y'\nm = importlib.import_module(name)\n"
    found = [(i.module, i.names, i.line) for i in scan_imports(src.encode()) if i.names]
    assert found == [("pkg.tables", ("*",), 3)]
    assert not [i for i in scan_imports(b"name = f'pkg.t_{v}'\n") if i.names]  # no call


def test_pytest_plugins_forms() -> None:
    assert {i.module for i in scan_imports(b"pytest_plugins = ['a.one', \"a.two\"]\n")} == {
        "a.one",
        "a.two",
    }
    assert [i.kind for i in scan_imports(b"pytest_plugins = 'a.single'\n")] == ["plugin"]


def test_syntax_error_file_still_scanned_and_diagnosed() -> None:
    src = b"import good\ndef broken(:\n    pass\nfrom other import thing\n"
    assert {i.module for i in scan_imports(src)} == {"good", "other"}
    problem = check_syntax(src, "broken.py")
    assert problem is not None and problem[0] == 2


def test_encoding_problems() -> None:
    assert encoding_problem("x = 'é'\n".encode()) is None
    assert encoding_problem(b"# -*- coding: latin-1 -*-\nx = '\xe9'\n") is None
    problem = encoding_problem(b"import os\nx = '\xe9\xff'\n")
    assert problem is not None and problem[0] == 2 and "UTF-8" in problem[1]


STDLIB = Path(sys.modules["json"].__file__ or "").parent.parent


@pytest.mark.parametrize("package", ["json", "email", "asyncio", "importlib", "unittest", "xml"])
def test_superset_of_ast_on_real_code(package: str) -> None:
    """On real code the scanner never misses an import that `ast` sees (same line, too)."""
    checked = 0
    for path in sorted((STDLIB / package).rglob("*.py")):
        source = path.read_bytes()
        try:
            precise = ast_imports(source)
        except SyntaxError:
            continue
        scanned = scan_imports(source)
        keys = {(i.module, i.level, i.line) for i in scanned}
        names = {(i.module, i.level, n) for i in scanned for n in i.names}
        for imp in precise:
            assert (imp.module, imp.level, imp.line) in keys, f"{path}:{imp.line} {imp}"
            for name in imp.names:
                assert (imp.module, imp.level, name) in names, f"{path}:{imp.line} {name}"
        checked += len(precise)
    assert checked > 5
