"""A compiled module of the workspace (a C extension built in place, as pyrsistent's pvectorc):
every test that imports it, directly or through the workspace's code, depends on its file.
Real pytest children, a real C compiler (skipped without one)."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
from test_fidelity_trials import outcomes, pytest_says
from testing_helpers import Workspace, ran

SOURCE = """
#include <Python.h>

static struct PyModuleDef demo = {PyModuleDef_HEAD_INIT, "_demo_ext", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__demo_ext(void) {
    PyObject *m = PyModule_Create(&demo);
    if (m != NULL && PyModule_AddIntConstant(m, "VALUE", %d) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
"""


def build(ws: Workspace, value: int) -> None:
    """Compile `_demo_ext` into the workspace root, its VALUE `value` (a rebuild in place)."""
    compiler = sysconfig.get_config_var("CC") or "cc"
    include = sysconfig.get_paths()["include"]
    if shutil.which(compiler.split()[0]) is None or not Path(include, "Python.h").is_file():
        pytest.skip("no C compiler or Python headers here")
    source = ws.root / "build" / "demo_ext.c"  # `build` is in pytest's norecursedirs
    source.parent.mkdir(exist_ok=True)
    source.write_text(SOURCE % value)
    target = ws.root / f"_demo_ext{sysconfig.get_config_var('EXT_SUFFIX')}"
    subprocess.run(
        [*compiler.split(), "-shared", "-fPIC", f"-I{include}", str(source), "-o", str(target)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def test_a_rebuilt_extension_re_runs_every_file_that_imports_it(ws: Workspace) -> None:
    # pyrsistent 0.20: after `setup.py build_ext --inplace` with a change to pvectorcmodule.c,
    # pytest failed 4 tests in three files; Maestro re-ran only tests/bag_test.py (the first
    # file collected, whose import loaded pvectorc) and served the other files' passes.
    build(ws, 1)
    # xxsubtype: a built-in module (its spec's origin is "built-in", no file) pytest never loads
    ws.write("pkg/uses_ext.py", "import xxsubtype  # noqa: F401\nfrom _demo_ext import VALUE\n")
    for name in ("test_ext_1", "test_ext_2"):
        ws.write(
            f"tests/{name}.py",
            "from pkg.uses_ext import VALUE\n\n\ndef test_value():\n    assert VALUE == 1\n",
        )
    nodes = ["tests/test_ext_1.py::test_value", "tests/test_ext_2.py::test_value"]
    truth = pytest_says(ws)
    assert [truth[n] for n in nodes] == ["passed", "passed"]
    assert outcomes(ws.run()) == truth
    assert "tests/test_ext_2.py" not in ran(ws.run())  # served from the cache
    assert "built-in" not in ws.graph().closure("tests/test_ext_1.py")
    build(ws, 2)
    truth = pytest_says(ws)
    assert [truth[n] for n in nodes] == ["failed", "failed"]
    assert outcomes(ws.run()) == truth
    build(ws, 1)
    assert outcomes(ws.run()) == pytest_says(ws)


def test_a_rebuilt_extension_re_runs_each_test_file_importing_it_itself(ws: Workspace) -> None:
    # a test file importing the extension itself, collected after the one whose import loaded
    # it, finds it in sys.modules: no load is seen for it, and its import resolved to nothing
    build(ws, 1)
    for name in ("test_ext_1", "test_ext_2"):
        ws.write(
            f"tests/{name}.py",
            "import _demo_ext\n\n\ndef test_value():\n    assert _demo_ext.VALUE == 1\n",
        )
    nodes = ["tests/test_ext_1.py::test_value", "tests/test_ext_2.py::test_value"]
    assert outcomes(ws.run()) == pytest_says(ws)
    assert ran(ws.run()) == []
    for value, outcome in ((2, "failed"), (1, "passed"), (2, "failed")):
        # from the second rebuild on, each file has a per-test record to judge by
        build(ws, value)
        truth = pytest_says(ws)
        assert [truth[n] for n in nodes] == [outcome, outcome]
        assert outcomes(ws.run()) == truth


def test_a_rebuilt_ignored_extension_loaded_before_the_session_re_runs_its_users(
    ws: Workspace,
) -> None:
    # time-machine 3.4 (its .gitignore holds `*.so`; the package is a pytest11 plugin, imported
    # before the session with its `_time_machine` extension built in place): after a change to
    # _time_machine.c and a rebuild, pytest failed 11 tests and Maestro served their passes.
    # A rootdir conftest is imported before the session as well.
    ws.write(".gitignore", "*.so\nbuild/\n")
    build(ws, 1)
    ws.write("pkg/__init__.py", "")
    ws.write("pkg/uses_ext.py", "from _demo_ext import VALUE\n")
    ws.write("conftest.py", "import pkg.uses_ext  # noqa: F401\n")
    ws.write(
        "tests/test_ext.py",
        "from pkg.uses_ext import VALUE\n\n\ndef test_value():\n    assert VALUE == 1\n",
    )
    node = "tests/test_ext.py::test_value"
    assert outcomes(ws.run()) == pytest_says(ws)
    build(ws, 2)
    truth = pytest_says(ws)
    assert truth[node] == "failed"
    assert outcomes(ws.run()) == truth
    build(ws, 1)
    assert outcomes(ws.run()) == pytest_says(ws)


def test_an_ignored_extension_each_test_file_imports_itself_is_an_input_of_each(
    ws: Workspace,
) -> None:
    # the second test file finds the module in sys.modules (no load seen): only the import
    # edge makes it an input, and an ignored file was no workspace file
    ws.write(".gitignore", "*.so\nbuild/\n")
    build(ws, 1)
    for name in ("test_ext_1", "test_ext_2"):
        ws.write(
            f"tests/{name}.py",
            "import _demo_ext\n\n\ndef test_value():\n    assert _demo_ext.VALUE == 1\n",
        )
    assert outcomes(ws.run()) == pytest_says(ws)
    build(ws, 2)
    truth = pytest_says(ws)
    assert truth["tests/test_ext_2.py::test_value"] == "failed"
    assert outcomes(ws.run()) == truth
