"""A module read by a computed name (``getattr(module, name)``): held in a variable (``mod =
importlib.import_module(name)``, ``sys.modules[...]``), it may be any module, and a changed
constant re-runs the nodes that executed such code, as for a module bound by ``import``; bound
by an import of a module whose namespace binds none of the changed values (the standard
library's ``math``, a package that does not import them), it reads none of them."""

from __future__ import annotations

import ast

import pytest
from precision_helpers import Workspace, ran_nodes

from maestro.graph import fingerprints

OTHER = "tests/test_other.py::test_imports_only"
CALC_READERS = ["tests/test_calc.py::test_combo", "tests/test_calc.py::test_double"]


@pytest.mark.parametrize(
    "helper",
    [
        "import importlib\n\nNAME = 'RA' + 'TE'\n\n\ndef rate():\n"
        "    mod = importlib.import_module('pkg.calc')\n    return getattr(mod, NAME)\n",
        "import sys\nimport pkg.calc\n\nMOD = sys.modules['pkg.calc']\nNAME = 'RA' + 'TE'\n\n\n"
        "def rate():\n    return getattr(MOD, NAME)\n",
    ],
    ids=["import_module-in-a-local", "sys.modules-in-a-global"],
)
def test_a_module_held_in_a_variable_and_read_by_a_computed_name_reruns(
    ws: Workspace, helper: str
) -> None:
    ws.write("pkg/helper.py", helper)
    ws.write("tests/test_other.py", "from pkg import helper\n\n\ndef test_imports_only():\n"
             "    assert helper.rate() == 2\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    other = next(f for f in ws.plan().files if f.target == "tests/test_other.py")
    assert other.node_reasons[OTHER] == (
        "executed pkg.helper.rate, which reads names it builds at run time (getattr(module, "
        "name) or such), maybe the changed one: pkg.calc.RATE, changed at pkg/calc.py"
    )
    summary = ws.run()
    # served as passed before: plain pytest fails it (the helper now returns 5)
    assert ran_nodes(summary) == [*CALC_READERS, OTHER]
    assert summary.failed == 1


def test_a_module_handed_to_code_reading_a_computed_name_reruns(ws: Workspace) -> None:
    # the helper takes any object; the test hands it a module: a changed constant of that
    # module re-runs the test (served as passed before: plain pytest fails it)
    ws.write("pkg/helper.py", "def read(obj, name):\n    return getattr(obj, name)\n")
    ws.write("tests/test_other.py", "import pkg.calc\nfrom pkg import helper\n\n\n"
             "def test_imports_only():\n"
             "    assert helper.read(pkg.calc, 'RA' + 'TE') == 2\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    summary = ws.run()
    assert ran_nodes(summary) == [*CALC_READERS, OTHER]
    assert summary.failed == 1


@pytest.mark.parametrize(
    "hand",
    [
        "helper.read(calc, 'RA' + 'TE')",
        "helper.read([calc][0], 'RA' + 'TE')",
        "helper.read(Box(calc).mod, 'RA' + 'TE')",
        "helper.read(pkg.calc, 'RA' + 'TE')",
    ],
    ids=["argument", "container", "attribute", "attribute-of-a-package"],
)
def test_a_from_imported_module_handed_to_code_reading_a_computed_name_reruns(
    ws: Workspace, hand: str
) -> None:
    # ``from pkg import calc`` binds a module of the workspace here: handed on as it is, in a
    # container or in an object's attribute, the code it reaches may read any of its names.
    # Served as passed before while plain pytest failed it (the helper now returns 5)
    ws.write("pkg/helper.py", "def read(obj, name):\n    return getattr(obj, name)\n")
    ws.write("tests/test_other.py", "import pkg\nfrom pkg import calc, helper\n\n\n"
             "class Box:\n    def __init__(self, mod):\n        self.mod = mod\n\n\n"
             f"def test_imports_only():\n    assert {hand} == 2\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    other = next(f for f in ws.plan().files if f.target == "tests/test_other.py")
    assert other.node_reasons[OTHER] == (
        "executed tests.test_other.test_imports_only, which hands on the module pkg/calc.py"
        " (the code it reaches may read its names unnamed), maybe the changed one:"
        " pkg.calc.RATE, changed at pkg/calc.py"
    )
    summary = ws.run()
    assert ran_nodes(summary) == [*CALC_READERS, OTHER]
    assert summary.failed == 1


def test_a_module_handed_on_reaches_the_modules_it_imports(ws: Workspace) -> None:
    # ``wrap`` holds no changed value, but the module it imports does: code given ``wrap``
    # reaches it by a chain of computed names (served as passed before: plain pytest fails)
    ws.write("pkg/wrap.py", "from . import calc\n")
    ws.write("pkg/helper.py", "def read(obj, name):\n    return getattr(obj, name)\n")
    ws.write("tests/test_other.py", "from pkg import helper, wrap\n\n\n"
             "def test_imports_only():\n"
             "    calc = helper.read(wrap, 'ca' + 'lc')\n"
             "    assert helper.read(calc, 'RA' + 'TE') == 2\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    summary = ws.run()
    assert ran_nodes(summary) == [*CALC_READERS, OTHER]
    assert summary.failed == 1


def test_a_from_imported_class_handed_on_is_no_module(ws: Workspace) -> None:
    # a class (a function, a constant) a ``from`` import binds is no module: the changed
    # constant leaves the test that hands it on served, also through a re-export
    ws.write("pkg/shapes.py", "class Shape:\n    RATE = 2\n")
    ws.write("pkg/__init__.py", "from .shapes import Shape\n")
    ws.write("pkg/helper.py", "def read(obj, name):\n    return getattr(obj, name)\n")
    ws.write("tests/test_other.py", "from pkg import Shape, helper\n\n\n"
             "def test_imports_only():\n"
             "    assert helper.read(Shape, 'RA' + 'TE') == 2\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    summary = ws.run()
    assert ran_nodes(summary) == CALC_READERS


@pytest.mark.parametrize(
    "top",
    ["def make() -> list[Shape]:\n    from pkg.shapes import Shape\n\n    return [Shape()]\n",
     "SHAPES = [Shape]\n\n\ndef make():\n    from pkg.shapes import Shape\n\n"
     "    return [Shape()]\n"],
    ids=["in-an-annotation", "spelled-two-ways"],
)  # fmt: skip
def test_a_class_named_at_module_level_is_no_module_handed_on(ws: Workspace, top: str) -> None:
    # click's types.py: ``from .shapes import Shape`` at the top, ``from pkg.shapes import
    # Shape`` in a function, ``-> list[Shape]`` in a signature. Neither the annotation nor the
    # absolute spelling (the import edge keeps the relative one) hands a module on: a changed
    # constant elsewhere left the test importing it to run again
    ws.write("pkg/shapes.py", "class Shape:\n    pass\n")
    ws.write(
        "pkg/kinds.py",
        f"from __future__ import annotations\n\nfrom .shapes import Shape\n\n\n{top}",
    )
    ws.write("tests/test_other.py", "from pkg import calc, kinds\n\n\n"
             "def test_imports_only():\n    assert len(kinds.make()) == 1\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    summary = ws.run()
    assert ran_nodes(summary) == CALC_READERS


@pytest.mark.parametrize(
    ("value", "reran"),
    [("run", []), ("__import__(run)", [OTHER])],
    ids=["a-parameter", "a-call-unsure"],
)
def test_a_module_whose_global_a_function_sets_from_a_parameter_holds_no_module(
    ws: Workspace, value: str, reran: list[str]
) -> None:
    # attrs: _make.py hands its ``_config`` module to generated code at import; _config's
    # ``set_run_validators(run)`` sets ``global _run_validators`` from its parameter, which a
    # module reaches only through a caller handing one on (counted there): a changed constant
    # elsewhere re-ran every node before ("hands on the module ... (_run)"). Set from a call's
    # result it may hold any module: every node still
    ws.write("pkg/_config.py", "_run = True\n\n\ndef set_run(run):\n    global _run\n"
             f"    _run = {value}\n")  # fmt: skip
    ws.write("pkg/make.py", "from . import _config\n\nGLOBS = {'_config': _config}\n")
    ws.write("tests/test_other.py", "from pkg import calc, make\n\n\n"
             "def test_imports_only():\n    assert make.GLOBS\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    assert ran_nodes(ws.run()) == [*CALC_READERS, *reran]


def test_a_global_a_function_sets_from_its_own_import_holds_what_it_imports(
    ws: Workspace,
) -> None:
    # click: termui.getchar sets ``global _getchar`` from ``from ._termui_impl import getchar
    # as f``, and CliRunner.isolation keeps ``termui._getchar`` in a local to restore it: that
    # is a function, no module (every node of 16 files re-ran before for a changed constant)
    ws.write("pkg/_impl.py", "def getchar():\n    return 'x'\n")
    ws.write("pkg/term.py", "_getchar = None\n\n\ndef getchar():\n    global _getchar\n"
             "    if _getchar is None:\n        from ._impl import getchar as f\n\n"
             "        _getchar = f\n    return _getchar()\n")  # fmt: skip
    ws.write("tests/test_other.py", "from pkg import calc, term\n\n\n"
             "def test_imports_only():\n    old = term._getchar\n"
             "    assert term.getchar() == 'x'\n    term._getchar = old\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    assert ran_nodes(ws.run()) == CALC_READERS


def test_an_object_held_in_a_variable_is_no_module(ws: Workspace) -> None:
    # a computed attribute of an ordinary object (a parameter's attribute) reads no module's
    # names: the constant's change leaves the test that ran it served
    ws.write("pkg/helper.py", "NAME = 'va' + 'lue'\n\n\ndef read(box):\n"
             "    inner = box.inner\n    return getattr(inner, NAME)\n")  # fmt: skip
    ws.write("tests/test_other.py", "from pkg import helper\n\n\nclass In:\n    value = 2\n\n\n"
             "class Box:\n    inner = In\n\n\ndef test_imports_only():\n"
             "    assert helper.read(Box) == 2\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    assert ran_nodes(ws.run()) == CALC_READERS


@pytest.mark.parametrize(
    ("helper", "check"),
    [
        (
            "import math\n\n\ndef pick(name):\n    return getattr(math, name)(2.5)\n",
            "helper.pick('fl' + 'oor') == 2",
        ),
        (
            "import pkg\n\n\ndef pick(name):\n    return getattr(pkg, name)\n",
            "helper.pick('ca' + 'lc').__name__ == 'pkg.calc'",
        ),
    ],
    ids=["stdlib-module", "package-not-binding-it"],
)
def test_a_computed_name_of_a_module_holding_no_changed_value_reads_none(
    ws: Workspace, helper: str, check: str
) -> None:
    # python-dateutil's test_lazy_import (``getattr(dateutil, module)``) and jinja2's
    # ``do_round`` (``getattr(math, method)``) re-ran at every change of a module constant
    ws.write("pkg/helper.py", helper)
    ws.write("tests/test_other.py", "import pkg.calc\nfrom pkg import helper\n\n\n"
             f"def test_imports_only():\n    assert {check}\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    summary = ws.run()
    assert ran_nodes(summary) == CALC_READERS
    assert summary.failed == 0


def test_a_computed_name_of_a_package_binding_the_changed_value_reruns(ws: Workspace) -> None:
    ws.write("pkg/__init__.py", "from pkg.calc import RATE\n")
    ws.write("pkg/helper.py", "import pkg\n\n\ndef pick(name):\n    return getattr(pkg, name)\n")
    ws.write("tests/test_other.py", "from pkg import helper\n\n\ndef test_imports_only():\n"
             "    assert helper.pick('RA' + 'TE') == 2\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    summary = ws.run()
    assert OTHER in ran_nodes(summary)
    assert summary.failed == 1  # as plain pytest says


@pytest.mark.parametrize(
    ("code", "targets"),
    [
        ("import math\ndef f(n):\n    return getattr(math, n)\n", ("math",)),
        ("import a.b as c\nfrom . import sub\ndef f(n):\n    return getattr(sub, n), vars(c), "
         "c.d.__dict__\n", (".sub", "a.b", "a.b.d")),
        ("import pkg\ndef f(n):\n    import pkg\n    return getattr(pkg, n)\n", ("pkg",)),
        ("import sys\ndef f(n):\n    return getattr(sys.modules[n], n)\n", ("*",)),
        ("import importlib\ndef f(n):\n    m = importlib.import_module(n)\n"
         "    return getattr(m, n)\n", ("*",)),
        # one name bound to two modules
        ("import a as m\nimport b as m\ndef f(n):\n    return getattr(m, n)\n", ("*",)),
    ],
)  # fmt: skip
def test_which_modules_a_computed_name_reads(code: str, targets: tuple[str, ...]) -> None:
    assert fingerprints._escapes(ast.parse(code)).targets == (("f", targets),)


@pytest.mark.parametrize(
    ("code", "where"),
    [
        ("import importlib\ndef f(n):\n    m = importlib.import_module('p')\n"
         "    return getattr(m, n)\n", ("f",)),
        ("import importlib\ndef f(n):\n    a = importlib.import_module('p')\n    b = a\n"
         "    return getattr(b, n)\n", ("f",)),
        ("import sys\nM = sys.modules['p']\ndef f(n):\n    return getattr(M, n)\n", ("f",)),
        ("import pkg\ndef f(a, b):\n    sub = getattr(pkg, a)\n    return getattr(sub, 'x'), "
         "getattr(sub, b)\n", ("f",)),
        ("def f(n):\n    if (m := __import__('p')):\n        return getattr(m, n)\n", ("f",)),
        # a parameter of that name in another function is no module there
        ("import sys\nM = sys.modules['p']\ndef f(M, n):\n    return getattr(M, n)\n", ()),
        ("def f(o, n):\n    x = o.y\n    return getattr(x, n)\n", ()),
        ("import importlib\ndef f(n):\n    m = importlib.import_module('p')\n"
         "    return getattr(m, 'x')\n", ()),
        # a module handed to other code, which may read it by a computed name
        ("import pkg.calc\ndef f(read):\n    return read(pkg.calc, 'RA' + 'TE')\n", ("f",)),
        ("import pkg.calc as c\ndef f(mock):\n    return mock.patch.object(c, 'RATE', 3)\n",
         ("f",)),
        ("import importlib\ndef f(use):\n    m = importlib.import_module('p')\n"
         "    return use(module=m)\n", ("f",)),
        # a name a ``from`` import binds may be any object; a literal getattr names its name
        ("from pkg import calc\ndef f(read):\n    return read(calc, 'x')\n", ()),
        ("import pkg\ndef f():\n    return getattr(pkg, 'x'), hasattr(pkg, 'y')\n", ()),
        ("import pkg\ndef f(pkg, read):\n    return read(pkg)\n", ()),
    ],
)  # fmt: skip
def test_where_a_module_variable_is_read_by_a_computed_name(
    code: str, where: tuple[str, ...]
) -> None:
    escapes = fingerprints._escapes(ast.parse(code))
    assert (escapes.any_module, escapes.where) == (bool(where), where)


@pytest.mark.parametrize(
    ("code", "handed"),
    [
        ("from pkg import calc\ndef f(read):\n    return read(calc, 'x')\n", {"f": {"pkg:calc"}}),
        # reading an attribute, calling, decorating, annotating, getattr: no module handed
        ("from pkg import calc\n@calc.deco\ndef f(a: calc.T):\n    calc.g(calc.X.y)\n"
         "    return getattr(calc, 'x'), vars(calc)\n", {"f": {"pkg:calc.X.y"}}),
        ("import pkg\nX = [pkg.calc]\nclass C:\n    m = pkg\n", {"<module>": {"pkg:", "pkg:calc"}}),
        ("import a.b as c\nfrom . import d\ndef f(o):\n    o.m = c\n    return d\n",
         {"f": {"a.b:", ".:d"}}),
        # a parameter of that name is no module
        ("from pkg import calc\ndef f(calc, read):\n    return read(calc)\n", {}),
        # a name anywhere in an annotation annotates only
        ("from pkg import calc\ndef f(a: list[calc]) -> dict[str, calc.T]:\n"
         "    x: set[calc] = 1\n", {}),
    ],
)  # fmt: skip
def test_what_code_hands_on(code: str, handed: dict[str, set[str]]) -> None:
    assert fingerprints._handed(ast.parse(code)) == handed


@pytest.mark.parametrize(
    ("code", "binds"),
    [
        ("import a.b\nimport c.d as e\nfrom . import f\nfrom g import h as i\nX = 1\n"
         "def j(): pass\n", {"a": ("a:",), "e": ("c.d:",), "f": (".:f",), "i": ("g:h",)}),
        # bound otherwise too, or bound by a function declaring it global: as bound so, or
        # unsure (a call's result, a loop target)
        ("from a import b\nif x:\n    b = None\ndef f():\n    global c\n    c = load()\n",
         {"b": ("=", "a:b"), "c": ("?",)}),
        ("def f():\n    global c, d\n    for c in cs:\n        import pkg.calc as d\n",
         {"c": ("?",), "d": ("pkg.calc:",)}),
        # a name the function binds only by an import: what the import binds (click's
        # termui.getchar: ``from ._impl import getchar as f``, then ``_getchar = f``)
        ("g = None\ndef f():\n    global g\n    from ._impl import getchar as h\n    g = h\n",
         {"g": ("._impl:getchar", "=")}),
        ("def f():\n    global g\n    from pkg import calc as h\n    h = h or 1\n    g = h\n",
         {"g": ("?",)}),
        # a constant, a parameter (attrs' set_run_validators), an operator: no module
        ("R = True\nN = 0\ndef f(run):\n    global R, N\n    R = run\n    N += 1\n"
         "def g():\n    global R\n    R = False\n    return R\n", {}),
        # a star import or __getattr__ may bind any other name
        ("from a import *\nX = 1\n", {"*": ("a:",), "X": ("=",)}),
        ("def __getattr__(n): pass\n", {"*": ("?",), "__getattr__": ("=",)}),
        ("G = globals()\n", {"*": ("?",)}),
    ],
)  # fmt: skip
def test_which_top_level_names_an_import_binds(
    code: str, binds: dict[str, tuple[str, ...]]
) -> None:
    assert fingerprints.fingerprint_source(code.encode()).top_binds == binds
