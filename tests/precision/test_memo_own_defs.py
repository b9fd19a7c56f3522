"""The memo rule and a function's own nested definitions.

The rule (docs/action-key.md) re-runs a node that executed a function naming a changed one, or
naming a function that does, transitively, by bare name: a hand-written memo there may have
served it the changed function's result. A function that reads a name only as what its own
nested ``def`` statements bind calls that nested function, never a namesake elsewhere: Python's
scoping makes the name local to it (click's ``Parameter.type_cast_value`` calls its own
``convert``, not ``ParamType.convert``; ``decorators.command`` returns its own ``decorator``).
Such a read no longer counts for the namesake, and still counts when the nested function itself
is in the chain, or when the code also reaches the name another way.
"""

from __future__ import annotations

import pytest
from precision_helpers import Workspace, ran_nodes

from maestro.graph.fingerprints import fingerprint_source

ONE = "tests/test_cast.py::test_one"
TWO = "tests/test_cast.py::test_two"

TYPES = """
    class Upper:
        def convert(self, value):
            return value.upper()
    """

TESTS = """
    from pkg.core import cast, shout


    def test_one():
        assert shout("a") == "A"


    def test_two():
        assert cast("ab") == "ab"


    def test_three():
        assert cast("ab") == "ab"
    """


def test_a_nested_namesake_of_a_changed_method_is_not_its_namer(ws: Workspace) -> None:
    """`cast` calls its own nested ``convert``; a change to ``Upper.convert`` re-runs only the
    test that ran it (before: every test that ran ``cast``, "which names the changed
    pkg.types.Upper.convert")."""
    ws.write("pkg/types.py", TYPES)
    ws.write(
        "pkg/core.py",
        """
        from pkg.types import Upper


        def cast(value, many=False):
            if many:
                def convert(v):
                    return tuple(v)
            else:
                def convert(v):
                    return v
            return convert(value)


        def shout(value):
            return Upper().convert(value)
        """,
    )
    ws.write("tests/test_cast.py", TESTS)
    assert ws.run().failed == 0
    ws.edit("pkg/types.py", "value.upper()", "value.lower()")
    summary = ws.run()
    assert ran_nodes(summary) == [ONE]
    assert summary.failed == 1  # as plain pytest: test_one


# Each keeps what Upper.convert returned for test_two and test_three, which run neither
# Upper.convert nor anything else that names it.
KEPT_BY_THE_NESTED_FUNCTION = """
    from pkg.types import Upper

    _KEPT = {}


    def cast(value):
        def convert(v):
            return Upper().convert(v)
        if value not in _KEPT:
            _KEPT[value] = convert(value)
        return _KEPT[value].lower()


    def shout(value):
        return cast(value).upper()
    """

KEPT_BESIDE_A_NESTED_NAMESAKE = """
    from pkg.types import Upper

    _KEPT = {}


    def cast(value):
        def convert(v):
            return v.lower()
        if value not in _KEPT:
            _KEPT[value] = Upper().convert(value)
        return convert(_KEPT[value])


    def shout(value):
        return cast(value).upper()
    """


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        pytest.param(
            KEPT_BY_THE_NESTED_FUNCTION,
            "executed pkg.core.cast, which names pkg.core.cast.<locals>.convert, which names the "
            "changed pkg.types.Upper.convert",
            id="nested-function-names-it",
        ),
        pytest.param(
            KEPT_BESIDE_A_NESTED_NAMESAKE,
            "executed pkg.core.cast, which names the changed pkg.types.Upper.convert",
            id="also-read-as-an-attribute",
        ),
    ],
)
def test_a_memo_with_a_nested_definition_still_reruns(
    ws: Workspace, source: str, reason: str
) -> None:
    """The memo in `cast` was filled by test_one; test_two and test_three are served from it.
    After a change to ``Upper.convert`` plain pytest fails all three, so all three re-run."""
    ws.write("pkg/types.py", TYPES)
    ws.write("pkg/core.py", source)
    ws.write("tests/test_cast.py", TESTS.replace('"ab") == "ab"', '"a") == "a"'))
    assert ws.run().failed == 0
    ws.edit("pkg/types.py", "value.upper()", "value * 2")
    plan = next(f for f in ws.plan().files if f.target == "tests/test_cast.py")
    assert reason in plan.node_reasons.get(TWO, "")
    summary = ws.run()
    assert ran_nodes(summary) == [ONE, "tests/test_cast.py::test_three", TWO]
    assert summary.failed == 3


def test_own_defs_are_only_names_nothing_else_can_bind() -> None:
    """A read counts as one of the function's own definitions only when nothing else can bind
    the name there: not a parameter (a lambda's included), an assignment, a walrus in a
    comprehension, a nested function's ``nonlocal``, an import, and not when it is also spelled
    as an attribute, or read otherwise by another definition of the same name."""
    fp = fingerprint_source(
        b"""
import os

def own():
    def convert(v): return v
    class Kind: pass
    return convert(Kind)

def rebound():
    def convert(v): return v
    convert = os.path
    return convert(1)

def attribute_too(self):
    def convert(v): return v
    return self.convert(convert(1))

def nonlocal_rebind():
    def convert(v): return v
    def g():
        nonlocal convert
        convert = str
    g()
    return convert(1)

def parameter(convert):
    def helper(v): return v
    return convert(helper(1))

def in_a_class_body():
    class C:
        def convert(self): pass
    return convert()

def walrus():
    def convert(v): return v
    [(convert := str) for _ in "a"]
    return convert(1)

def imported():
    def path(v): return v
    from os import path
    return path(1)

def lambda_parameter():
    def convert(v): return v
    return (lambda convert: convert(1))(convert)

def twice():
    def f(): return 1
    return f()

def twice():
    f = len
    return f("a")

@overload
def command(name: int) -> int: ...

@overload
def command(name: str) -> str: ...

def command(name):
    def decorator(f): return f
    return decorator(name)
"""
    )
    assert fp.own_defs == {
        "own": ("Kind", "convert"),
        "nonlocal_rebind": ("g",),
        "parameter": ("helper",),
        "command": ("decorator",),  # its typing.overload stubs read no name of it
    }
