"""The memo rule and a global name that is a class.

The rule (docs/action-key.md) re-runs a node that executed a function naming a changed one, or
naming a function that does, transitively, by bare name: a hand-written memo there may have
served it the changed function's result. A function outside any other function that reads a
name as a global variable, in a module that binds that name only by an undecorated ``class``
statement, reads that class: calling it makes an instance (its special methods run, followed by
the rule's own special-method clause), never a method or function of that name elsewhere.
python-dateutil's ``rrule.replace`` returns ``rrule(**kwargs)``; it was taken for a namer of
``rruleset.rrule`` (decorated by ``_invalidates_cache``, whose wrapper names ``_iter``), and every
test that ran a ``datetime.replace`` caller in ``tz`` re-ran after a change to ``rrule._iter``.
Such a read no longer counts, and still counts when the module binds the name any other way.
"""

from __future__ import annotations

from textwrap import dedent

import pytest
from precision_helpers import Workspace, ran_nodes

from maestro.graph.fingerprints import fingerprint_source

ONE = "tests/test_rules.py::test_one"
TWO = "tests/test_rules.py::test_two"
THREE = "tests/test_rules.py::test_three"

DOUBLING = """
    def double(n):
        return n * 2
    """


def test_a_class_namesake_of_a_changed_method_is_not_its_namer(ws: Workspace) -> None:
    """``bump`` and ``rule.replace`` make a ``rule``; ``ruleset.rule`` (a method of that name)
    calls the changed ``double``. A change to ``double`` re-runs only the test that ran it
    (before: also the one that ran ``bump``, "which names pkg.rules.ruleset.rule")."""
    ws.write("pkg/doubling.py", DOUBLING)
    ws.write(
        "pkg/rules.py",
        """
        from pkg.doubling import double


        class rule:
            def __init__(self, n):
                self.n = n

            def replace(self, n):
                return rule(n)


        class ruleset:
            def __init__(self):
                self.rules = []

            def rule(self, r):
                self.rules.append(double(r.n))
                return self.rules


        def add(n):
            return ruleset().rule(rule(n))


        def bump(n):
            return rule(n).replace(n + 1).n
        """,
    )
    ws.write(
        "tests/test_rules.py",
        """
        from pkg.rules import add, bump


        def test_one():
            assert add(2) == [4]


        def test_two():
            assert bump(1) == 2
        """,
    )
    assert ws.run().failed == 0
    ws.edit("pkg/doubling.py", "n * 2", "n * 3")
    summary = ws.run()
    assert ran_nodes(summary) == [ONE]
    assert summary.failed == 1  # as plain pytest: test_one


REBOUND = {
    "assigned-after-the-class": """
        class rule:
            pass


        rule = holder().rule
        """,
    "decorated-class": """
        def as_method(cls):
            return holder().rule


        @as_method
        class rule:
            pass
        """,
    "rebound-by-a-function": """
        class rule:
            pass


        def install():
            global rule
            rule = holder().rule


        install()
        """,
}


@pytest.mark.parametrize("binding", list(REBOUND.values()), ids=list(REBOUND))
def test_a_memo_through_a_name_bound_otherwise_still_reruns(ws: Workspace, binding: str) -> None:
    """``cached`` keeps what the global ``rule`` returned. Bound by a ``class`` statement and
    also otherwise, that global is the method ``holder.rule``, which calls the changed
    ``double``: test_one fills the memo, test_two and test_three are served from it. After a
    change to ``double`` plain pytest fails all three, so all three re-run."""
    ws.write("pkg/doubling.py", DOUBLING)
    head = """
        from pkg.doubling import double


        class holder:
            def rule(self, n):
                return double(n)
        """
    tail = """
        _KEPT = {}


        def cached(n):
            if n not in _KEPT:
                _KEPT[n] = rule(n)
            return _KEPT[n]
        """
    ws.write("pkg/rules.py", "\n\n".join(dedent(part) for part in (head, binding, tail)))
    ws.write(
        "tests/test_rules.py",
        """
        from pkg.rules import cached


        def test_one():
            assert cached(2) == 4


        def test_two():
            assert cached(2) == 4


        def test_three():
            assert cached(2) == 4
        """,
    )
    assert ws.run().failed == 0
    ws.edit("pkg/doubling.py", "n * 2", "n * 3")
    plan = next(f for f in ws.plan().files if f.target == "tests/test_rules.py")
    assert "executed pkg.rules.cached, which names pkg.rules.holder.rule" in plan.node_reasons.get(
        TWO, ""
    )
    summary = ws.run()
    assert ran_nodes(summary) == [ONE, THREE, TWO]
    assert summary.failed == 3


def test_class_reads_are_only_globals_nothing_else_binds() -> None:
    """A read counts as the module's class only when, in the function (outside any other
    function), it is a global variable, not a parameter, assignment, import or attribute
    spelling, not read by its decorators or defaults; and when the module binds the name by
    nothing but undecorated ``class`` statements."""
    fp = fingerprint_source(
        b"""
import os
from functools import total_ordering

class plain:
    def replace(self):
        return plain()

    def attribute_too(self):
        return self.plain or plain()

    def parameter(self, plain):
        return plain()

    def assigned(self):
        plain = os.path
        return plain

    @staticmethod
    def in_a_default(x=plain):
        return plain()

    def nested(self):
        def inner():
            return plain()
        return inner

    def lambda_parameter(self):
        return (lambda plain: plain())(1)

if os.name:
    class conditional:
        pass
else:
    class conditional:
        pass

def make():
    return conditional(), plain()

class assigned:
    pass

assigned = 1

@total_ordering
class decorated:
    pass

class by_global:
    pass

def rebind():
    global by_global

def uses():
    return assigned, decorated, by_global, os

class __private:
    pass

def private():
    return __private
"""
    )
    assert fp.class_reads == {
        "plain.replace": ("plain",),
        "make": ("conditional", "plain"),
    }
    # a star import, or a reach into the module's own namespace, may rebind any name
    for tail in (b"from os.path import *\n", b"globals()['plain'] = len\n"):
        source = b"class plain:\n    def f(self):\n        return plain()\n" + tail
        assert fingerprint_source(source).class_reads == {}
