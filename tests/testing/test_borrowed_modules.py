"""A test may reach a workspace module it never imports: another test file's collection
imported it first, and importing a submodule binds it as an attribute of its package
(jsonpickle's ecdsa_test.py calls ``jsonpickle.ext.gmpy.register_handlers()`` after ``import
jsonpickle``; the doctest collection of jsonpickle/ext/gmpy.py is what imported it). A cached
result is the full run's answer: a file that runs again is collected with the file whose
collection imported such a module, and an edit of that file re-runs it. Real pytest children,
real LMDB; every check first asks plain pytest."""

from __future__ import annotations

import itertools

from project_python import plain_pytest, project_python
from testing_helpers import Workspace, outcomes, ran

from maestro.engine.pollution import held_by_packages

IMPORTER = "tests/test_a_gm.py"
USER = "tests/test_uses.py"
USES = """
import pytest

import pkg.ext


@pytest.fixture(scope="module", autouse=True)
def ext():
    try:
        pkg.ext.gm.register()
    except AttributeError:
        pytest.skip("gm not loaded")


def test_a():
    assert 1
"""


def pytest_says(ws: Workspace) -> dict[str, str]:
    done = plain_pytest(project_python(), ws.root, "-rA", "-q")
    found: dict[str, str] = {}
    for line in done.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR", "SKIPPED"):
            node = rest.split(" - ")[0].strip()
            found[node.removeprefix("[1] ").split(":")[0] if word == "SKIPPED" else node] = (
                word.lower()
            )
    return found


def write(ws: Workspace) -> None:
    ws.write("pkg/__init__.py", "")
    ws.write("pkg/ext/__init__.py", "")
    ws.write("pkg/ext/gm.py", "def register():\n    return 1\n")
    ws.write(IMPORTER, "import pkg.ext.gm\n\n\ndef test_gm():\n    assert pkg.ext.gm.register()\n")
    ws.write(USER, USES)


def test_a_module_another_file_imported_is_there_when_the_file_runs_again(
    ws: Workspace,
) -> None:
    write(ws)
    assert pytest_says(ws)[f"{USER}::test_a"] == "passed"
    assert outcomes(ws.run())[f"{USER}::test_a"] == "passed"
    ws.edit(USER, "assert 1", "assert 2")  # only this file changed: it runs, its importer not
    assert pytest_says(ws)[f"{USER}::test_a"] == "passed"
    summary = ws.run()
    assert outcomes(summary)[f"{USER}::test_a"] == "passed"  # was a false skip, and stored
    assert ran(summary) == [USER]
    assert ran(ws.run()) == []


def test_the_importer_no_longer_importing_it_re_runs_the_file(ws: Workspace) -> None:
    write(ws)
    assert outcomes(ws.run())[f"{USER}::test_a"] == "passed"
    ws.edit(USER, "assert 1", "assert 2")  # a run with a per-test record (3.11's first has none)
    assert outcomes(ws.run())[f"{USER}::test_a"] == "passed"
    ws.write(IMPORTER, "def test_gm():\n    pass\n")
    assert pytest_says(ws)[USER] == "skipped"
    summary = ws.run()
    assert USER in ran(summary)  # was a stale pass: nothing of its own changed
    assert outcomes(summary)[f"{USER}::test_a"] == "skipped"


def test_a_module_whose_doctests_are_collected_is_there_too(ws: Workspace) -> None:
    """Under --doctest-modules the module's own doctest collection imports it (jsonpickle)."""
    write(ws)
    ws.write("pytest.ini", "[pytest]\naddopts = --doctest-modules\n")
    ws.write(IMPORTER, "def test_gm():\n    pass\n")
    ws.write(
        "pkg/ext/gm.py",
        'def register():\n    """\n    >>> register()\n    1\n    """\n    return 1\n',
    )
    assert pytest_says(ws)[f"{USER}::test_a"] == "passed"
    assert outcomes(ws.run())[f"{USER}::test_a"] == "passed"
    ws.edit(USER, "assert 1", "assert 2")
    summary = ws.run()
    assert outcomes(summary)[f"{USER}::test_a"] == "passed"
    assert ran(summary) == [USER]


def test_a_module_is_held_by_its_package_whatever_the_order_they_are_given_in() -> None:
    """A package's ``__init__.py`` sits one folder deeper than it is as a module: its modules
    are judged after it, whatever order a set yields them in."""
    modules = [
        "pkg/ext/gm.py",
        "pkg/ext/__init__.py",
        "pkg/ext/sub/__init__.py",
        "pkg/ext/sub/x.py",
    ]
    for order in itertools.permutations(modules):
        assert held_by_packages(order, {"pkg/__init__.py"}) == set(modules)
        assert held_by_packages(order, {"pkg/__init__.py"}, {"ext", "gm"}) == {
            "pkg/ext/__init__.py",
            "pkg/ext/gm.py",
        }
