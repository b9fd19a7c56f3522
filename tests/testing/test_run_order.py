"""Maestro runs the test files in the order plain pytest runs them: `testpaths` and the paths
named on the command line in the order given, each folder walked with its entries sorted by
name (files and folders together). Suites whose files depend on that order (semver's doctests
use names a fixture of tests/ put in the session's `doctest_namespace`) get pytest's outcomes.
Real pytest children; plain pytest says what is right."""

from __future__ import annotations

from pathlib import Path

from test_fidelity_trials import outcomes, pytest_says
from testing_helpers import Workspace

from maestro.engine import testing
from maestro.engine.order import FileOrder, full_run, named
from maestro.graph.pytest_config import PytestConfig

FIRST = """
from pkg import a


def test_first():
    a.SEEN = True
"""

SECOND = """
from pkg import a


def test_second():
    assert getattr(a, "SEEN", False), "the other file did not run first"
"""


def test_testpaths_run_in_the_order_given(ws: Workspace) -> None:
    # semver 3.1.2: testpaths = ["tests", "docs"]; an autouse fixture of tests/conftest.py
    # fills doctest_namespace, which docs/*.rst use. Maestro named docs/ first (path order)
    # and the doctests failed with a NameError where pytest passes them.
    ws.write(
        "pyproject.toml",
        """
        [tool.pytest.ini_options]
        testpaths = ["tests", "docs"]
        addopts = "--doctest-glob=*.rst"
        """,
    )
    ws.write(
        "tests/conftest.py",
        """
        import pytest


        @pytest.fixture(autouse=True)
        def add_names(doctest_namespace):
            doctest_namespace["answer"] = 42
        """,
    )
    ws.write("docs/usage.rst", "Usage\n=====\n\n    >>> answer\n    42\n")
    truth = pytest_says(ws)
    assert truth["docs/usage.rst::usage.rst"] == "passed"
    got = outcomes(ws.run())
    assert got == truth


def test_a_folder_runs_before_a_file_whose_name_it_begins(ws: Workspace) -> None:
    # pytest walks a folder's entries sorted by name: folder `test_a` ("test_a") before file
    # `test_a-b.py`, though the path `tests/test_a-b.py` sorts before `tests/test_a/...`
    ws.write("tests/test_a/test_x.py", FIRST)
    ws.write("tests/test_a-b.py", SECOND)
    truth = pytest_says(ws)
    assert truth["tests/test_a-b.py::test_second"] == "passed"
    assert outcomes(ws.run()) == truth


def test_named_paths_run_in_the_order_named(ws: Workspace) -> None:
    # `pytest tests/test_z.py tests/test_y.py` runs test_z.py first; Maestro sorted the paths
    ws.write("tests/test_z.py", FIRST)
    ws.write("tests/test_y.py", SECOND)
    paths = ("tests/test_z.py", "tests/test_y.py")
    truth = pytest_says(ws, *paths)
    assert truth == {
        "tests/test_z.py::test_first": "passed",
        "tests/test_y.py::test_second": "passed",
    }
    assert outcomes(ws.run(testing.Selection(paths=paths))) == truth
    # a folder named after a file inside it collects that file in its own walk (pytest 9)
    wanted = ("tests/test_z.py", "tests")
    truth = pytest_says(ws, *wanted)
    assert truth["tests/test_y.py::test_second"] == "failed"
    assert outcomes(ws.run(testing.Selection(paths=wanted))) == truth


def test_the_order_key_follows_pytests_walk(tmp_path: Path) -> None:
    walk = FileOrder()
    files = ["a-b.py", "a/test_x.py", "a/b/test_y.py", "a/__init__.py", "a/_a.py", "a/z.py"]
    assert walk.sorted(files) == [
        "a/__init__.py", "a/_a.py", "a/b/test_y.py", "a/test_x.py", "a/z.py", "a-b.py",
    ]  # fmt: skip
    # arguments in the order given; one inside another is collected by the outer one
    order = named(["docs", "tests/test_b.py::test_x", "./tests/", "tests"])
    assert order.sorted(["tests/test_b.py", "tests/test_a.py", "docs/x.rst", "other.py"]) == [
        "other.py", "docs/x.rst", "tests/test_a.py", "tests/test_b.py",
    ]  # fmt: skip
    # testpaths are globs, their matches sorted; none matching: the root
    for folder in ("tests/unit", "tests/func", "docs"):
        (tmp_path / folder).mkdir(parents=True)
    config = PytestConfig(testpaths=["tests/*", "docs"])
    assert full_run(config, tmp_path).roots == ("tests/func", "tests/unit", "docs")
    assert full_run(PytestConfig(testpaths=["nothing"]), tmp_path).roots == ("",)
