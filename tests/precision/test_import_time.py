"""Code run at import or collection time, end to end (real pytest children, a real cache).

What a test file's own collection runs (its top level, its parametrize lists) re-runs that
file; what the import of a workspace module runs re-runs every file whose tests may use that
module, whichever file (or test) happened to import it first in the session."""

from __future__ import annotations

import subprocess

import pytest
from precision_helpers import Workspace, ran_nodes
from project_python import project_python

from maestro.engine.interpreter import Interpreter
from maestro.engine.runner import run_pytest_sync

CALC = [
    "tests/test_calc.py::test_combo",
    "tests/test_calc.py::test_double",
    "tests/test_calc.py::test_triple",
]
PARAM = [
    "tests/test_param.py::test_plain",
    "tests/test_param.py::test_value[3]",
    "tests/test_param.py::test_value[4]",
]
PARAM_FILE = """\
import pytest

from pkg import calc


@pytest.mark.parametrize("v", [calc.triple(1), 4])
def test_value(v):
    assert v > 0


def test_plain():
    assert True
"""


def test_a_parametrize_list_reruns_only_its_own_file(ws: Workspace) -> None:
    """python-dateutil's test_tz.py calls relativedelta() in its parametrize lists: a change
    to it re-ran every file of the session, although no other file ran it at import."""
    ws.write("tests/test_param.py", PARAM_FILE)
    ws.run()
    ws.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    plan = ws.plan()
    param = next(f for f in plan.files if f.target == "tests/test_param.py")
    assert "ran at import or collection time" in param.describe()
    assert ran_nodes(ws.run()) == sorted([*PARAM, "tests/test_calc.py::test_triple"])


def test_a_file_that_reads_a_test_file_does_not_take_its_collection_code(ws: Workspace) -> None:
    """Only an importer reuses a test module; a file that reads it as data (python-dateutil's
    docs example, read by every file) runs no code of it."""
    ws.write("tests/test_param.py", PARAM_FILE)
    ws.write(
        "tests/test_reader.py",
        "import pathlib\n\nfrom pkg import calc\n\n\ndef test_reads():\n"
        "    assert 'parametrize' in pathlib.Path(__file__).with_name('test_param.py').read_text()"
        "\n\n\ndef test_double():\n    assert calc.double(1) == 2\n",
    )
    ws.run()
    ws.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    assert ran_nodes(ws.run()) == sorted([*PARAM, "tests/test_calc.py::test_triple"])


BUILD = {
    "pkg/build.py": "def make():\n    return {'a': 1}\n",
    "pkg/table.py": "from pkg.build import make\n\nTABLE = make()\n",
    "pkg/api.py": "from pkg.table import TABLE\n\n\ndef first():\n    return TABLE['a']\n",
    # collected first: imports pkg.table during its collection
    "tests/test_a_first.py": (
        "from pkg import table\n\n\ndef test_a():\n    assert table.TABLE['a'] == 1\n"
    ),
    # collected later: pkg.table is already imported, its top level does not run again
    "tests/test_b_reuse.py": (
        "from pkg.table import TABLE\n\n\ndef test_b():\n    assert TABLE['a'] == 1\n"
    ),
    "tests/test_c_transitive.py": (
        "from pkg import api\n\n\ndef test_c():\n    assert api.first() == 1\n"
    ),
}
REUSERS = [
    "tests/test_a_first.py::test_a",
    "tests/test_b_reuse.py::test_b",
    "tests/test_c_transitive.py::test_c",
]


def _first_importer_trap(ws: Workspace) -> None:
    for rel, text in BUILD.items():
        ws.write(rel, text)
    assert ws.run().failed == 0
    # same size, most likely in the first run's second: its bytecode must not be reused
    ws.edit("pkg/build.py", "{'a': 1}", "{'a': 2}")
    summary = ws.run()
    assert set(REUSERS) <= set(ran_nodes(summary))
    assert summary.failed == 3  # none of them served as passed
    ws.edit("pkg/build.py", "{'a': 2}", "{'a': 1}")
    assert ws.run().failed == 0


def test_a_module_imported_by_an_earlier_file_reruns_every_file_using_it(ws: Workspace) -> None:
    """The first importer's collection ran pkg.table's top level (and make()); the files
    collected after it reuse the module: a change to make() must re-run them too."""
    _first_importer_trap(ws)


def test_a_module_a_test_imports_first_reruns_every_test_reusing_it(ws: Workspace) -> None:
    """Imported inside a test: the first test's window ran make(), the later ones only read
    the table it built."""
    ws.write("pkg/build.py", BUILD["pkg/build.py"])
    ws.write("pkg/lazy.py", "from pkg.build import make\n\nTABLE = make()\n")
    body = "def test_{0}():\n    from pkg import lazy\n\n    assert lazy.TABLE['a'] == 1\n"
    ws.write("tests/test_l1.py", body.format("l1"))
    ws.write("tests/test_l2.py", body.format("l2"))
    assert ws.run().failed == 0
    ws.edit("pkg/build.py", "{'a': 1}", "{'a': 2}")
    summary = ws.run()
    assert {"tests/test_l1.py::test_l1", "tests/test_l2.py::test_l2"} <= set(ran_nodes(summary))
    assert summary.failed == 2


def test_a_module_run_by_hand_during_collection_counts_for_the_session(ws: Workspace) -> None:
    """A module executed outside importlib's usual path (``exec_module`` by hand, as a custom
    loader does) cannot be told apart from the collecting file's own code: all of it is
    shared."""
    ws.write("pkg/build.py", BUILD["pkg/build.py"])
    ws.write("pkg/table.py", BUILD["pkg/table.py"])
    ws.write(
        "tests/test_a_first.py",
        "import importlib.util\nimport pathlib\nimport sys\n\nimport pkg\n\n"
        "_spec = importlib.util.spec_from_file_location(\n"
        "    'pkg.table', pathlib.Path(pkg.__file__).parent / 'table.py'\n)\n"
        "table = importlib.util.module_from_spec(_spec)\nsys.modules['pkg.table'] = table\n"
        "_spec.loader.exec_module(table)\n\n\n"
        "def test_a():\n    assert table.TABLE['a'] == 1\n",
    )
    ws.write("tests/test_b_reuse.py", BUILD["tests/test_b_reuse.py"])
    assert ws.run().failed == 0
    ws.edit("pkg/build.py", "{'a': 1}", "{'a': 2}")
    summary = ws.run()
    assert "tests/test_b_reuse.py::test_b" in ran_nodes(summary)
    assert summary.failed == 2


def test_a_value_memoised_by_an_earlier_collection_reruns_the_files_served_from_it(
    ws: Workspace,
) -> None:
    """test_m1's parametrize list computes cases(1); test_m2's gets it from the memo without
    running compute(): both collections ran cases(), so each carries what the other ran."""
    ws.write(
        "pkg/memo.py",
        "_CACHE = {}\n\n\ndef compute(k):\n    return k * 10\n\n\n"
        "def cases(k):\n    if k not in _CACHE:\n        _CACHE[k] = compute(k)\n"
        "    return _CACHE[k]\n",
    )
    body = (
        "import pytest\n\nfrom pkg import memo\n\n\n"
        "@pytest.mark.parametrize('v', [memo.cases(1)])\ndef test_{0}(v):\n    assert v == 10\n"
    )
    ws.write("tests/test_m1.py", body.format("m1"))
    ws.write("tests/test_m2.py", body.format("m2"))
    assert ws.run().failed == 0
    ws.edit("pkg/memo.py", "k * 10", "k * 11")
    summary = ws.run()
    assert {"tests/test_m1.py::test_m1[11]", "tests/test_m2.py::test_m2[11]"} <= set(
        ran_nodes(summary)
    )
    assert summary.failed == 2


def test_an_earlier_collection_does_not_take_a_later_ones_code(ws: Workspace) -> None:
    """test_m1 is collected first: it cannot have been served what test_m2's collection
    computed, so triple(), which only test_m2's parametrize list calls, is not its import-time
    code (test_m2 keeps test_m1's: it may have been served cases(1))."""
    ws.write("pkg/memo.py", "def cases(k):\n    return k * 10\n")
    ws.write(
        "tests/test_m1.py",
        "import pytest\n\nfrom pkg import calc, memo\n\n\n"
        "@pytest.mark.parametrize('v', [memo.cases(1)])\ndef test_m1(v):\n"
        "    assert v == 10 and calc.double(1) == 2\n",
    )
    ws.write(
        "tests/test_m2.py",
        "import pytest\n\nfrom pkg import calc, memo\n\n\n"
        "@pytest.mark.parametrize('v', [memo.cases(1), calc.triple(1)])\ndef test_m2(v):\n"
        "    assert v > 0\n",
    )
    ws.run()
    ws.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    assert ran_nodes(ws.run()) == [
        "tests/test_calc.py::test_triple", "tests/test_m2.py::test_m2[10]",
        "tests/test_m2.py::test_m2[3]",
    ]  # fmt: skip
    ws.edit("pkg/memo.py", "k * 10", "k * 10 + 0")
    assert "tests/test_m2.py::test_m2[3]" in ran_nodes(ws.run())  # ran memo.cases at import


def test_a_test_file_imported_by_another_carries_its_collection_code(ws: Workspace) -> None:
    """pytest imports tests/test_param.py first (its own collection); test_uses_param.py then
    reuses the module's parametrize values."""
    ws.write("tests/__init__.py", "")
    ws.write("tests/test_param.py", PARAM_FILE.replace("calc.triple(1), 4", "calc.triple(1)"))
    ws.write(
        "tests/test_uses_param.py",
        "from tests import test_param\n\n\ndef test_uses():\n"
        "    assert test_param.test_value.pytestmark[0].args[1] == [3]\n",
    )
    assert ws.run().failed == 0
    ws.edit("pkg/calc.py", "return x * 3", "return x * 4")
    summary = ws.run()
    assert "tests/test_uses_param.py::test_uses" in ran_nodes(summary)
    assert summary.failed >= 2  # test_uses, test_calc's test_triple


@pytest.mark.slow
def test_312_collection_and_import_records(ws: Workspace, interpreter312: Interpreter) -> None:
    """The same two rules through sys.monitoring (one callback per code object and window)."""
    ws312 = Workspace(ws.root, interpreter312)
    ws312.write("tests/test_param.py", PARAM_FILE)
    ws312.run()
    ws312.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    assert ran_nodes(ws312.run()) == sorted([*PARAM, "tests/test_calc.py::test_triple"])
    _first_importer_trap(ws312)


def test_a_failed_nested_import_reads_as_under_plain_pytest(ws: Workspace) -> None:
    """The import hook adds no frame to a collection error (CPython and pytest drop importlib's
    own frames, and the hook is compiled under importlib's file name)."""
    ws.write("pkg/outer.py", "import pkg.inner\n")
    ws.write("pkg/inner.py", "X = 1 / 0\n")
    ws.write("pkg/bad.py", "import pkg.missing_mod\n")
    ws.write("tests/test_one.py", "import pkg.outer\n\n\ndef test_x():\n    pass\n")
    ws.write("tests/test_two.py", "import pkg.bad\n\n\ndef test_y():\n    pass\n")
    report = run_pytest_sync(ws.root, ws.interpreter, ["-q", "-p", "no:cacheprovider"])
    errors = {e.path: e.longrepr for e in report.collection_errors}
    assert set(errors) == {"tests/test_one.py", "tests/test_two.py"}
    plain = subprocess.run(
        [str(project_python()), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_one.py",
         "tests/test_two.py"],
        cwd=ws.root, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    for longrepr in errors.values():
        assert longrepr.strip() in plain
    assert "maestro" not in "".join(errors.values())
