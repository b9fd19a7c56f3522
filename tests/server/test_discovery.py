"""The lexical test discovery behind lenses, hovers and the test tree.

It replaced ``ast`` (100 ms on a 7,000-line module): these tests pin the Python constructs a line
walk can get wrong, and check on the standard library's own test suite that it finds every test
``ast`` finds, on the same lines.
"""

from __future__ import annotations

import ast
import sysconfig
import textwrap
import warnings
from pathlib import Path

from maestro.server.discovery import TestItem, discover, flatten


def ids(source: str) -> list[str]:
    return [i.nodeid for i in flatten(discover("t.py", textwrap.dedent(source)))]


def test_functions_pytest_classes_and_unittest_classes() -> None:
    found = ids(
        """
        import unittest
        from django.test import TestCase as DjangoTestCase


        def test_top():
            pass


        async def test_async():
            pass


        def helper():
            def test_inner():  # nested in a function: not collected
                pass


        class TestPlain:
            def test_a(self):
                pass

            def not_a_test(self):
                pass

            class TestNested:
                def test_b(self):
                    pass


        class Views(unittest.TestCase):
            def test_c(self):
                pass


        class Models(DjangoTestCase):
            def test_d(self):
                pass


        class MoreViews(Views):
            def test_e(self):
                pass


        class Mixin:  # neither named Test* nor a TestCase: pytest skips it
            def test_f(self):
                pass
        """
    )
    assert found == [
        "t.py::test_top",
        "t.py::test_async",
        "t.py::TestPlain",
        "t.py::TestPlain::test_a",
        "t.py::TestPlain::TestNested",
        "t.py::TestPlain::TestNested::test_b",
        "t.py::Views",
        "t.py::Views::test_c",
        "t.py::Models",
        "t.py::Models::test_d",
        "t.py::MoreViews",
        "t.py::MoreViews::test_e",
    ]


def test_strings_comments_and_continuations_do_not_confuse_the_walk() -> None:
    source = textwrap.dedent(
        '''
        class TestSql:
            def test_query(self):
                sql = """
        def test_not_real():
            pass
        """ % {"x": 1}
                self.check(sql, (
        1, 2))
                # def test_commented(): pass
                value = "def test_in_string(): (("

            @decorated(
                "arg",
            )
            def test_after_decorator(self):
                x = [
        3]


        def test_last():
            pass
        '''
    )
    items = flatten(discover("t.py", source))
    assert [i.nodeid for i in items] == [
        "t.py::TestSql",
        "t.py::TestSql::test_query",
        "t.py::TestSql::test_after_decorator",
        "t.py::test_last",
    ]
    lines = source.split("\n")
    by_id = {i.nodeid: i for i in items}
    query = by_id["t.py::TestSql::test_query"]
    assert lines[query.line].strip() == "def test_query(self):"
    assert lines[query.end_line].strip() == 'value = "def test_in_string(): (("'
    assert lines[query.line][query.name_col :].startswith("test_query")
    after = by_id["t.py::TestSql::test_after_decorator"]
    assert lines[after.line].strip() == "def test_after_decorator(self):"
    assert lines[by_id["t.py::TestSql"].end_line].strip() == "3]"


def test_a_syntax_error_elsewhere_keeps_the_other_tests() -> None:
    found = ids(
        """
        def test_ok():
            pass


        def test_broken(:
            pass


        def test_also_ok():
            pass
        """
    )
    assert "t.py::test_ok" in found and "t.py::test_also_ok" in found


def test_function_bodies_are_skipped_but_not_what_ends_them() -> None:
    source = textwrap.dedent(
        """
        class TestA:
            def test_one(self):
                value = call(
        1, 2)
                text = \"\"\"
        def test_in_a_docstring():
        \"\"\"
                return value \\
        + 1

            def test_two(self):
                pass
        def test_three():
            pass
        """
    )
    items = {i.nodeid: i for i in flatten(discover("t.py", source))}
    assert list(items) == ["t.py::TestA", "t.py::TestA::test_one", "t.py::TestA::test_two",
                           "t.py::test_three"]  # fmt: skip
    lines = source.split("\n")
    assert lines[items["t.py::TestA::test_one"].end_line] == "+ 1"
    assert lines[items["t.py::TestA"].end_line].strip() == "pass"
    assert items["t.py::TestA"].end_line == items["t.py::TestA::test_two"].end_line


def _ast_items(rel: str, source: str) -> set[tuple[str, int, int]]:
    """What the former ``ast`` discovery found: Test* classes and test* functions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escapes in old test files
        tree = ast.parse(source)
    found: set[tuple[str, int, int]] = set()

    def visit_class(cls: ast.ClassDef, prefix: str) -> bool:
        nodeid = f"{prefix}::{cls.name}"
        any_test = False
        for node in cls.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test"
            ):
                found.add((f"{nodeid}::{node.name}", node.lineno - 1, node.end_lineno or 0))
                any_test = True
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                any_test |= visit_class(node, nodeid)
        if any_test:
            found.add((nodeid, cls.lineno - 1, cls.end_lineno or 0))
        return any_test

    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test"
        ):
            found.add((f"{rel}::{node.name}", node.lineno - 1, node.end_lineno or 0))
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            visit_class(node, rel)
    return found


def test_finds_everything_ast_finds_on_the_stdlib_test_suite() -> None:
    tests_dir = Path(sysconfig.get_paths()["stdlib"]) / "test"
    files = sorted(tests_dir.glob("test_*.py"))
    assert len(files) > 300, f"no stdlib test suite at {tests_dir}"
    files = files[::3]  # a third of it is plenty (ast is the slow side)
    checked = unittest_extra = 0
    for path in files:
        try:
            source = path.read_text(encoding="utf-8")
            expected = _ast_items("t.py", source)
        except (UnicodeDecodeError, SyntaxError, ValueError):
            continue
        items: list[TestItem] = flatten(discover("t.py", source))
        got = {(i.nodeid, i.line, i.end_line + 1) for i in items}
        missing = expected - got
        assert not missing, f"{path}: {sorted(missing)[:5]}"
        checked += 1
        unittest_extra += len(got) - len(expected)
    assert checked > 100
    # the stdlib's tests are unittest classes not named Test*: the lexical walk sees them
    assert unittest_extra > 500


def test_a_test_class_named_by_an_alias_is_an_item() -> None:
    """Hypothesis' stateful tests: `TestMachine = Machine.TestCase` (a unittest class the module
    names by an assignment) is a class pytest collects; the lenses need it as an item."""
    source = textwrap.dedent(
        """\
        import unittest
        from hypothesis.stateful import RuleBasedStateMachine


        class Machine(RuleBasedStateMachine):
            pass


        MachineTests = Machine.TestCase
        OtherTests = pkg.machines.Other.TestCase  # a comment
        not_a_test = Machine.TestCase.settings
        case = make(Machine.TestCase)


        def helper():
            Inner = Machine.TestCase
        """
    )
    items = discover("tests/test_m.py", source)
    assert [(i.nodeid, i.kind, i.line, i.name_col) for i in items] == [
        ("tests/test_m.py::MachineTests", "class", 8, 0),
        ("tests/test_m.py::OtherTests", "class", 9, 0),
    ]
