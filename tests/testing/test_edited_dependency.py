"""A dependency edited in place in the workspace's site-packages (a print added, a bug patched
while debugging) is what the next run tests, under pytest; Maestro keyed an installed module by
its distribution's name and version alone and served the cached pass (jsonpatch: jsonpointer.py
edited, 2 failed under pytest, all 394 served as passed). Real venvs, real pytest children."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_fidelity_trials import pytest_says
from testing_helpers import Workspace, outcomes, ran

from maestro.cache.store import Cache
from maestro.engine import testing
from maestro.engine.interpreter import query_interpreter

TEST = """
import demo_dep
import loose_dep


def test_value():
    assert demo_dep.value() == 1


def test_loose():
    assert loose_dep.VALUE == "a"
"""


def _site(root: Path, venv: Path | None = None) -> Path:
    """The workspace's own .venv (where Maestro looks for installed code; or `venv`), on this
    test environment's packages, with `demo_dep` installed as pip would (its files, then a
    RECORD listing them) and `loose_dep.py` dropped in by hand (no distribution)."""
    venv = venv or root / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "host.pth").write_text(str(Path(pytest.__file__).parent.parent) + "\n")
    _install(
        site,
        "demo_dep",
        {
            "demo_dep/__init__.py": "from demo_dep.core import value\n",
            "demo_dep/core.py": "def value():\n    return 1\n",
        },
    )
    (site / "loose_dep.py").write_text('VALUE = "a"\n')
    return site


def _install(site: Path, name: str, files: dict[str, str]) -> None:
    """`files` installed as pip installs a wheel, an hour ago: the files, then the RECORD."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
    rows = [f"{rel},sha256=x,{len(text)}" for rel, text in files.items()]
    (info / "RECORD").write_text(
        "\n".join([*rows, f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"])
    )
    installed = (info / "RECORD").stat().st_mtime - 3600
    folders = {(site / rel).parent for rel in files} - {site}  # site's own time keys the map
    for path in [*(site / rel for rel in files), *folders]:
        os.utime(path, (installed, installed))
    for path in (info / "METADATA", info / "RECORD", info):
        os.utime(path, (installed, installed))


@pytest.fixture
def edited_ws(ws: Workspace) -> tuple[Workspace, Path]:
    site = _site(ws.root)
    ws.interpreter = query_interpreter(ws.root / ".venv" / "bin" / "python")
    ws.write("tests/test_dep.py", TEST)
    return ws, site


def test_a_dependency_edited_in_place_is_tested_as_pytest_tests_it(
    edited_ws: tuple[Workspace, Path],
) -> None:
    ws, site = edited_ws
    core = site / "demo_dep" / "core.py"
    assert outcomes(ws.run())["tests/test_dep.py::test_value"] == "passed"
    assert "tests/test_dep.py" not in ran(ws.run())
    core.write_text("def value():\n    return 2\n")  # debugging the dependency
    assert pytest_says(ws)["tests/test_dep.py::test_value"] == "failed"
    again = ws.run()
    assert outcomes(again)["tests/test_dep.py::test_value"] == "failed"
    why = next(f.planned for f in again.files if f.target == "tests/test_dep.py")
    assert "dist:demo_dep" in why.changed, why
    # installed code is not traced per test: every file that may run it runs (no other file
    # can here; a dependency's dependency is never imported by name)
    assert "@environment" in why.changed, why
    said = why.describe()
    assert "demo_dep (edited in place: demo_dep/core.py)" in said, said
    assert "a new import, version" not in said, said
    core.write_text("def value():\n    return 1\n")  # reverted: the installed code again
    back = ws.run()
    assert outcomes(back)["tests/test_dep.py::test_value"] == "passed"


def test_a_module_added_to_or_deleted_from_an_installed_package_is_an_edit(
    edited_ws: tuple[Workspace, Path],
) -> None:
    ws, site = edited_ws
    ws.run()
    package = site / "demo_dep"
    (package / "__init__.py").write_text("from demo_dep.extra import value\n")
    (package / "extra.py").write_text("def value():\n    return 3\n")
    assert outcomes(ws.run())["tests/test_dep.py::test_value"] == "failed"
    (package / "extra.py").write_text("def value():\n    return 1\n")
    assert outcomes(ws.run())["tests/test_dep.py::test_value"] == "passed"
    (package / "core.py").unlink()  # unused now, yet a deletion is an edit: the key says so
    assert "tests/test_dep.py" in ran(ws.run())


def test_a_module_no_distribution_installed_is_keyed_by_its_code(
    edited_ws: tuple[Workspace, Path],
) -> None:
    ws, site = edited_ws
    ws.run()
    (site / "loose_dep.py").write_text('VALUE = "b"\n')
    assert pytest_says(ws)["tests/test_dep.py::test_loose"] == "failed"
    assert outcomes(ws.run())["tests/test_dep.py::test_loose"] == "failed"


def test_one_graph_kept_across_runs_sees_the_edit(edited_ws: tuple[Workspace, Path]) -> None:
    # the daemon keeps its graph: what it read of the installed code is read again per plan
    ws, site = edited_ws
    graph = ws.graph()
    with Cache.open() as cache:
        testing.run(graph, cache, ws.interpreter, testing.Selection())
        (site / "demo_dep" / "core.py").write_text("def value():\n    return 2\n")
        again = testing.run(graph, cache, ws.interpreter, testing.Selection())
    assert outcomes(again)["tests/test_dep.py::test_value"] == "failed"


def test_a_dependency_s_own_dependency_edited_is_seen(edited_ws: tuple[Workspace, Path]) -> None:
    # jsonpatch's tests import jsonpatch, which imports jsonpointer: the one edited
    ws, site = edited_ws
    _install(site, "inner_dep", {"inner_dep.py": "VALUE = 1\n"})
    core = site / "demo_dep" / "core.py"
    installed = core.stat().st_mtime
    core.write_text("import inner_dep\n\n\ndef value():\n    return inner_dep.VALUE\n")
    os.utime(core, (installed, installed))  # as installed
    ws.run()
    assert "tests/test_dep.py" not in ran(ws.run())
    (site / "inner_dep.py").write_text("VALUE = 2\n")
    assert pytest_says(ws)["tests/test_dep.py::test_value"] == "failed"
    assert outcomes(ws.run())["tests/test_dep.py::test_value"] == "failed"


CHILD = """
import subprocess
import sys


def test_value_in_a_child():
    code = "import demo_dep; print(demo_dep.value())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "1", done.stderr
"""


def test_a_dependency_only_a_child_process_imports_edited_is_seen(
    edited_ws: tuple[Workspace, Path],
) -> None:
    # a test of a command line runs it in a child Python: the dependency it imports there is
    # loaded by no module of the pytest process
    ws, site = edited_ws
    ws.write("tests/test_dep.py", CHILD)
    node = "tests/test_dep.py::test_value_in_a_child"
    assert outcomes(ws.run())[node] == "passed"
    assert "tests/test_dep.py" not in ran(ws.run())
    (site / "demo_dep" / "core.py").write_text("def value():\n    return 2\n")
    assert pytest_says(ws)[node] == "failed"
    assert outcomes(ws.run())[node] == "failed"


def test_an_edit_a_run_loads_first_is_in_the_key_of_its_results(
    edited_ws: tuple[Workspace, Path],
) -> None:
    # a dependency's dependency patched before any run: the first run's plan could not know it
    # would load it; its result, kept under the clean install's key, was served once the patch
    # was undone (the file back with its install time), where pytest fails
    ws, site = edited_ws
    _install(site, "inner_dep", {"inner_dep.py": "VALUE = 2\n"})
    core = site / "demo_dep" / "core.py"
    inner = site / "inner_dep.py"
    installed = core.stat().st_mtime
    core.write_text("import inner_dep\n\n\ndef value():\n    return inner_dep.VALUE\n")
    os.utime(core, (installed, installed))  # as installed
    inner.write_text("VALUE = 1\n")  # the user's patch
    node = "tests/test_dep.py::test_value"
    assert outcomes(ws.run())[node] == "passed"
    inner.write_text("VALUE = 2\n")  # undone
    os.utime(inner, (installed, installed))
    assert pytest_says(ws)[node] == "failed"
    assert outcomes(ws.run())[node] == "failed"


DATA_TEST = """
import data_dep


def test_data():
    assert data_dep.value() == 1
"""


def test_a_data_file_of_an_installed_package_edited_is_seen(
    edited_ws: tuple[Workspace, Path],
) -> None:
    # certifi's bundle, a package's locale or zone data: read from beside its code at run time
    ws, site = edited_ws
    reader = (
        "import pathlib\n\n\ndef value():\n"
        "    return int((pathlib.Path(__file__).parent / 'data.txt').read_text())\n"
    )
    _install(site, "data_dep", {"data_dep/__init__.py": reader, "data_dep/data.txt": "1\n"})
    ws.write("tests/test_data_dep.py", DATA_TEST)
    node = "tests/test_data_dep.py::test_data"
    assert outcomes(ws.run())[node] == "passed"
    assert "tests/test_data_dep.py" not in ran(ws.run())
    (site / "data_dep" / "data.txt").write_text("2\n")
    assert pytest_says(ws)[node] == "failed"
    assert outcomes(ws.run())[node] == "failed"
    (site / "data_dep" / "data.txt").unlink()  # a deleted data file is an edit too
    assert pytest_says(ws)[node] == "failed"
    assert outcomes(ws.run())[node] == "failed"


NS_TEST = """
from nsdemo.second import value


def test_second():
    assert value() == 2
"""


def test_a_namespace_package_s_other_distribution_edited_is_seen(
    edited_ws: tuple[Workspace, Path],
) -> None:
    # jaraco.context, jaraco.functools and jaraco.text all install into `jaraco/`: the edit of
    # jaraco/functools/__init__.py is jaraco.functools' though "jaraco" names jaraco.context first
    ws, site = edited_ws
    _install(site, "nsdemo_first", {"nsdemo/first/__init__.py": "def value():\n    return 1\n"})
    second = "nsdemo/second/__init__.py"
    _install(site, "nsdemo_second", {second: "def value():\n    return 2\n"})
    ws.write("tests/test_ns.py", NS_TEST)
    node = "tests/test_ns.py::test_second"
    assert outcomes(ws.run())[node] == "passed"
    assert "tests/test_ns.py" not in ran(ws.run())
    (site / second).write_text("def value():\n    return 3\n")
    assert pytest_says(ws)[node] == "failed"
    assert outcomes(ws.run())[node] == "failed"


def test_a_dependency_of_a_configured_interpreter_s_venv_edited_is_seen(ws: Workspace) -> None:
    # the interpreter a setting names, in a virtualenv outside the workspace (no .venv in it):
    # its site-packages, not Maestro's own, hold the code the tests run
    venv = ws.root.parent / "envs" / "py"
    site = _site(ws.root, venv)
    ws.interpreter = query_interpreter(venv / "bin" / "python")
    ws.write("maestro.toml", f"interpreter = {str(venv / 'bin' / 'python')!r}\n")
    ws.write("tests/test_dep.py", TEST)
    node = "tests/test_dep.py::test_value"
    assert outcomes(ws.run())[node] == "passed"
    (site / "demo_dep" / "core.py").write_text("def value():\n    return 2\n")
    assert pytest_says(ws)[node] == "failed"
    assert outcomes(ws.run())[node] == "failed"
