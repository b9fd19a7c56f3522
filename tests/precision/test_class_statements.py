"""A class statement changed outside its method bodies, end to end (real pytest children).

A change to a decorator's argument, a class attribute or a method's decorator changes what the
class name is bound to, as an assignment would: the tests that executed code reading the name
re-run (and those that ran its methods), not every importer of its module. Every importer
re-runs when the statement runs code that may keep the class elsewhere (a decorator or base
of the workspace, a metaclass), when module-level code reads the name, when the module's names
may be read without being named, and for the classes of test files (pytest reads them).
attrs' ``@attrs(repr=False, ...)`` on a validator class (validators.py:128) re-ran every node
of every file."""

from __future__ import annotations

import pytest
from precision_helpers import Workspace, ran_nodes

from maestro.engine.interpreter import Interpreter

SHAPES = """\
import dataclasses

KEPT = []


@dataclasses.dataclass(frozen=True)
class Box:
    size: int = 2

    def area(self):
        return self.size * self.size


def make_box():
    return Box()


def keep():
    KEPT.append(make_box())


def kept_area():
    return KEPT[0].area()


def unrelated():
    return 3
"""
TESTS = """\
from pkg import shapes


def test_box():
    assert shapes.make_box().area() == 4


def test_unrelated():
    assert shapes.unrelated() == 3
"""
BOX = "tests/test_shapes.py::test_box"
UNRELATED = "tests/test_shapes.py::test_unrelated"


def _shapes_plan_reason(ws: Workspace) -> str:
    return next(f for f in ws.plan().files if f.target == "tests/test_shapes.py").describe()


@pytest.mark.parametrize(
    ("edit", "failed"),
    [
        (("size: int = 2", "size: int = 3"), 1),  # a class attribute
        (("frozen=True", "frozen=True, order=True"), 0),  # a class decorator's argument
    ],
)
def test_a_class_statement_change_reruns_the_readers_of_its_name(
    ws: Workspace, edit: tuple[str, str], failed: int
) -> None:
    ws.write("pkg/shapes.py", SHAPES)
    ws.write("tests/test_shapes.py", TESTS)
    ws.run()
    ws.edit("pkg/shapes.py", *edit)
    reason = _shapes_plan_reason(ws)
    assert reason.startswith("1 of 2 tests: tests/test_shapes.py::test_box executed ")
    assert reason.endswith("pkg.shapes.Box, changed at pkg/shapes.py:6")
    summary = ws.run()
    assert ran_nodes(summary) == [BOX]  # test_unrelated does not read Box
    assert summary.failed == failed  # as plain pytest says
    assert ran_nodes(ws.run()) == ([BOX] if failed else [])  # a failed test re-runs


def test_an_instance_kept_by_an_earlier_test_reruns_the_test_using_it(ws: Workspace) -> None:
    # test_b gets a Box made by test_a without naming Box: it ran one of Box's methods
    ws.write("pkg/shapes.py", SHAPES)
    ws.write("tests/test_shapes.py", "from pkg import shapes\n\n\ndef test_a():\n"
             "    shapes.keep()\n\n\ndef test_b():\n    assert shapes.kept_area() == 4\n\n\n"
             "def test_unrelated():\n    assert shapes.unrelated() == 3\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/shapes.py", "size: int = 2", "size: int = 3")
    summary = ws.run()
    assert "tests/test_shapes.py::test_b" in ran_nodes(summary)
    assert summary.failed == 1  # test_b, as plain pytest says


@pytest.mark.parametrize(
    ("prefix", "decorator", "why"),
    [
        # a decorator of the workspace may keep the class (a registry read by other names)
        (
            "REGISTRY = []\n\n\ndef register(cls):\n    REGISTRY.append(cls)\n    return cls\n",
            "@register\n@dataclasses.dataclass(frozen=True)",
            "class Box runs code of this module",
        ),
        # module-level code reads the class
        ("", "@dataclasses.dataclass(frozen=True)", "module-level code names the changed"),
        # the module's names may be read without being named
        ("TABLE = globals()\n", "@dataclasses.dataclass(frozen=True)", "module-level code"),
    ],
)
def test_a_class_that_may_be_kept_elsewhere_reruns_every_importer(
    ws: Workspace, prefix: str, decorator: str, why: str
) -> None:
    shapes = SHAPES.replace("@dataclasses.dataclass(frozen=True)", decorator)
    if "names the changed" in why:
        shapes += "\n\nDEFAULT = Box()\n"
    ws.write("pkg/shapes.py", shapes.replace("KEPT = []\n", f"KEPT = []\n{prefix}"))
    ws.write("tests/test_shapes.py", TESTS)
    ws.run()
    ws.edit("pkg/shapes.py", "size: int = 2", "size: int = 3")
    assert why in _shapes_plan_reason(ws)
    summary = ws.run()
    assert ran_nodes(summary) == [BOX, UNRELATED]
    assert summary.failed == 1


def test_a_class_with_a_base_reruns_every_importer(ws: Workspace) -> None:
    # a base's __init_subclass__ or metaclass may keep the class; __subclasses__() lists it
    ws.write("pkg/shapes.py", "class Base:\n    pass\n\n\n" + SHAPES.replace(
        "class Box:", "class Box(Base):"))  # fmt: skip
    ws.write("tests/test_shapes.py", TESTS)
    ws.run()
    ws.edit("pkg/shapes.py", "size: int = 2", "size: int = 3")
    assert ran_nodes(ws.run()) == [BOX, UNRELATED]


def test_a_test_files_class_reruns_the_whole_file(ws: Workspace) -> None:
    # pytest reads a test module's names (it collects its classes): no narrowing there
    ws.write("tests/test_shapes.py", "class TestBox:\n    size = 2\n\n"
             "    def test_size(self):\n        assert self.size == 2\n\n\n"
             "def test_unrelated():\n    assert True\n")  # fmt: skip
    ws.run()
    ws.edit("tests/test_shapes.py", "size = 2", "size = 3")
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_shapes.py::TestBox::test_size", UNRELATED]
    assert summary.failed == 1


@pytest.mark.parametrize(("name", "whole"), [("_Box", False), ("Box", True)])
def test_a_star_import_binds_a_private_class_only_when_a_string_spells_it(
    ws: Workspace, name: str, whole: bool
) -> None:
    # attrs' src/attrs/validators.py does `from attr.validators import *`
    ws.write("pkg/shapes.py", SHAPES.replace("Box", name))
    ws.write("pkg/again.py", "from pkg.shapes import *\n")
    ws.write("tests/test_shapes.py", TESTS.replace("import shapes", "import again, shapes"))
    ws.run()
    ws.edit("pkg/shapes.py", "size: int = 2", "size: int = 3")
    summary = ws.run()
    assert ran_nodes(summary) == ([BOX, UNRELATED] if whole else [BOX])
    assert summary.failed == 1


GEN = """\
import sys


def compiled(module, text):
    # attrs merges a class's module namespace into the globals of the methods it generates
    globs = {}
    globs.update(sys.modules[module].__dict__)
    exec("def value():\\n    return " + text + "\\n", globs)
    return globs["value"]()
"""


@pytest.mark.parametrize(
    ("text", "whole"),
    [
        ('"1"', False),  # the compiled text spells no changed name
        ('"_Box().size"', True),  # it does: every importer
    ],
)
def test_code_compiled_in_a_module_namespace_reads_what_its_text_spells(
    ws: Workspace, text: str, whole: bool
) -> None:
    ws.write("pkg/shapes.py", SHAPES.replace("Box", "_Box"))
    ws.write("pkg/gen.py", GEN)
    ws.write("tests/test_shapes.py", TESTS + "\n\ndef test_compiled():\n    from pkg import gen\n\n"
             f"    assert gen.compiled('pkg.shapes', {text}) in (1, 2)\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/shapes.py", "size: int = 2", "size: int = 3")
    summary = ws.run()
    compiled = "tests/test_shapes.py::test_compiled"
    assert ran_nodes(summary) == ([BOX, compiled, UNRELATED] if whole else [BOX])
    assert summary.failed == (2 if whole else 1)


@pytest.fixture
def ws312(ws: Workspace, interpreter312: Interpreter) -> Workspace:
    return Workspace(ws.root, interpreter312)


READER = """\
from pkg.shapes import Box


def optional(value, box=False):
    if box:
        return Box()
    return value
"""


@pytest.mark.parametrize(
    ("call", "whole"), [("optional(1)", False), ("optional(1, box=True)", True)]
)
def test_a_reader_run_at_import_reruns_every_node_only_if_it_read_the_class_there(
    ws312: Workspace, call: str, whole: bool
) -> None:
    # attrs' validators.optional reads _make's _AndValidator only for a list of validators;
    # attrs' own import runs it without one (3.12: the recorder keeps the lines import-time
    # code ran; the reader's file is unchanged)
    ws312.write("pkg/shapes.py", SHAPES)
    ws312.write("pkg/readers.py", READER)
    tests = TESTS + f"\n\nfrom pkg import readers  # noqa: E402\n\nVALUE = readers.{call}\n"
    ws312.write("tests/test_shapes.py", tests)
    assert ws312.run().failed == 0
    ws312.edit("pkg/shapes.py", "size: int = 2", "size: int = 3")
    summary = ws312.run()
    assert ran_nodes(summary) == ([BOX, UNRELATED] if whole else [BOX])
    assert summary.failed == 1


@pytest.mark.parametrize("shadowed", [True, False])
def test_a_computed_getattr_of_a_parameter_named_like_a_module_is_no_module_read(
    ws: Workspace, shadowed: bool
) -> None:
    # attrs' test_make.py imports attr and has a test taking a parameter `attr` (an
    # Attribute), whose `setattr(attr, attr_name, 1)` took every module's names for reachable:
    # the file re-ran whole on any module-level change of attrs
    if shadowed:
        pick = "def pick(calc, name):\n    return getattr(calc, name)\n\n\n"
        call = "class Obj:\n        x = 1\n\n    assert pick(Obj(), 'x') == 1\n"
    else:
        pick = "def pick(name):\n    return getattr(calc, name)\n\n\n"
        call = "assert pick('__name__') == 'pkg.calc'\n"
    ws.write("tests/test_other.py", "import pkg.calc\nfrom pkg import calc\n\n\n"
             "def test_imports_only():\n    assert pkg.calc.RATE > 0\n\n\n"
             f"{pick}def test_pick():\n    {call}")  # fmt: skip
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    ran = [n for n in ran_nodes(ws.run()) if "test_other" in n]
    pick_node = [] if shadowed else ["tests/test_other.py::test_pick"]
    assert ran == ["tests/test_other.py::test_imports_only", *pick_node]
