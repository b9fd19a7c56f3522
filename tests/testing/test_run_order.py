"""Maestro runs the test files in the order plain pytest runs them: `testpaths` and the paths
named on the command line in the order given, each folder walked with its entries sorted by
name (files and folders together). Suites whose files depend on that order (semver's doctests
use names a fixture of tests/ put in the session's `doctest_namespace`) get pytest's outcomes.
Real pytest children; plain pytest says what is right."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from project_python import project_python
from test_fidelity_trials import outcomes, pytest_says
from testing_helpers import Workspace, ran

from maestro.cache.store import Cache
from maestro.engine import pollution, testing
from maestro.engine.core import Engine
from maestro.engine.order import FileOrder, full_run, named
from maestro.engine.retrace import retrace
from maestro.engine.runner import run_sync
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


def semver_docs(ws: Workspace) -> None:
    """semver 3.1.2's layout: testpaths = ["tests", "docs"]; an autouse fixture of
    tests/conftest.py fills doctest_namespace, which the doctests of docs/*.rst use."""
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


def test_testpaths_run_in_the_order_given(ws: Workspace) -> None:
    # Maestro named docs/ first (path order) and the doctests failed with a NameError where
    # pytest passes them
    semver_docs(ws)
    truth = pytest_says(ws)
    assert truth["docs/usage.rst::usage.rst"] == "passed"
    got = outcomes(ws.run())
    assert got == truth


def test_a_doctest_file_run_alone_gets_the_namespace_a_fixture_elsewhere_fills(
    ws: Workspace,
) -> None:
    # semver: after an edit of one docs/*.rst only that file ran, with no test of tests/
    # before it in the session, and its doctests failed with a NameError
    semver_docs(ws)
    ws.run()
    ws.write("docs/usage.rst", "Usage\n=====\n\nMore text.\n\n    >>> answer\n    42\n")
    truth = pytest_says(ws)
    assert truth["docs/usage.rst::usage.rst"] == "passed"
    summary = ws.run()
    assert outcomes(summary) == truth
    # a test file of tests/ ran before it, whole (its fixture filled the namespace)
    assert ran(summary) == ["docs/usage.rst", "tests/test_a.py"]
    # what the fixture puts there is in the doctests' key: dropping the name fails them
    ws.edit("tests/conftest.py", 'doctest_namespace["answer"] = 42', "pass")
    truth = pytest_says(ws)
    assert truth["docs/usage.rst::usage.rst"] == "failed"
    assert outcomes(ws.run()) == truth


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


def test_only_a_conftest_outside_the_doctests_folder_with_an_autouse_filler_counts() -> None:
    fills = b"@pytest.fixture(autouse=True)\ndef f(doctest_namespace):\n    pass\n"
    asked = b"@pytest.fixture\ndef f(doctest_namespace):\n    pass\n"
    test = b"def test_x():\n    pass\n"
    tests = ["docs/a.rst", "tests/helper.py", "tests/test_x.py", "z/test_doc.py", "z/b.rst"]

    def providers(conftest: str, text: bytes) -> dict[str, dict[str, str]]:
        sources = {conftest: text, "tests/helper.py": b"", "tests/test_x.py": test}
        return pollution.namespace_providers(
            [conftest], tests, sources.get, named(["tests", "docs", "z"]),
            lambda rel: rel.rpartition("/")[2].startswith("test_"),
        )  # fmt: skip

    # the first test module of its folder (not a helper), before files with doctests only
    assert providers("tests/conftest.py", fills) == {
        "docs/a.rst": {"tests/test_x.py": "tests/conftest.py"},
        "z/b.rst": {"tests/test_x.py": "tests/conftest.py"},
    }
    assert providers("tests/conftest.py", asked) == {}  # runs only for a test asking for it
    assert providers("conftest.py", fills) == {}  # the doctests' own fixture then


def test_fail_first_keeps_a_namespace_filler_before_the_doctests(ws: Workspace) -> None:
    # the daemon's fail-first order puts a file that failed first: a doctest file moved before
    # the test module that fills its namespace would fail where pytest passes it
    semver_docs(ws)
    ws.run()
    ws.write("docs/usage.rst", "Usage\n=====\n\nMore.\n\n    >>> answer\n    42\n")
    order = testing.RunOrder(("docs/usage.rst", "tests/test_a.py"))
    graph = ws.graph()
    with Cache.open() as cache:
        planned = testing.plan(graph, cache, ws.interpreter, testing.Selection())
        assert ran_planned(planned) == ["tests/test_a.py", "docs/usage.rst"]
        engine = Engine(graph, cache, ws.interpreter)
        summary = run_sync(engine.execute(planned, run_order=order))
    assert outcomes(summary)["docs/usage.rst::usage.rst"] == "passed"


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ traces every run")
def test_re_recording_runs_the_files_in_the_full_runs_order(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the daemon re-records untraced results naming the files sorted: docs/ first, its
    # doctests failed without their namespace and nothing was re-recorded
    monkeypatch.delenv("MAESTRO_TRACE", raising=False)
    semver_docs(ws)
    ws.run()
    with Cache.open() as cache:
        engine = Engine(ws.graph(), cache, ws.interpreter)
        summary = run_sync(retrace(engine, ["docs/usage.rst", "tests/test_a.py"]))
    assert summary is not None
    assert outcomes(summary)["docs/usage.rst::usage.rst"] == "passed"
    assert sorted(o.target for o in summary.files if o.stored) == [
        "docs/usage.rst", "tests/test_a.py"
    ]  # fmt: skip


def ran_planned(planned: testing.Plan) -> list[str]:
    return [f.target for f in planned.to_run]


def test_the_order_key_is_pytests_collection_order(ws: Workspace) -> None:
    for rel in (
        "tests/test_a-b.py", "tests/test_a/test_x.py", "tests/subpkg/__init__.py",
        "tests/subpkg/test_z.py", "tests/subpkg/sub/test_y.py", "tests/subpkg/_h/test_h.py",
        "tests/Zed/test_q.py", "tests/test_a_c.py", "tests/test_a0.py", "more/test_m.py",
    ):  # fmt: skip
        ws.write(rel, "def test_it():\n    pass\n")
    ws.write(
        "pyproject.toml",
        """
        [tool.pytest.ini_options]
        testpaths = ["more", "tests/subpkg", "tests"]
        """,
    )
    listed = subprocess.run(
        [str(project_python()), "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider"],
        cwd=ws.root, capture_output=True, text=True, timeout=120, check=False,
    ).stdout  # fmt: skip
    files = list(dict.fromkeys(line.split("::")[0] for line in listed.splitlines() if "::" in line))
    graph = ws.graph()
    assert full_run(graph.pytest, graph.root).sorted(graph.tests) == files
    assert list(testing.select(graph, testing.Selection())) == files


def test_a_companion_after_the_named_file_stays_after_it(ws: Workspace) -> None:
    # the full run's answer for F collects F's state polluters with it: one that a full run
    # collects after F (here it also turns warnings into errors) was named first, and F's
    # import warning became a collection error pytest never shows
    from test_fidelity_trials import REGISTRY

    ws.write("pkg/registry.py", REGISTRY)
    ws.write(
        "tests/test_b2.py",
        """
        import warnings

        from pkg import registry

        warnings.warn("at import", UserWarning)


        def test_b2():
            assert registry
        """,
    )
    ws.write(
        "tests/test_c2.py",
        """
        import warnings

        from pkg.registry import register

        warnings.simplefilter("error")


        @register
        class Foo:
            pass


        def test_c2():
            pass
        """,
    )
    ws.run()  # learns the polluters
    ws.edit("tests/test_b2.py", "assert registry", "assert registry is not None")
    paths = ("tests/test_b2.py",)
    as_full = testing.Selection(paths=paths, full_run_answer=True)  # the daemon's re-recording
    assert ws.plan(as_full).collect_only == ["tests/test_c2.py"]
    truth = pytest_says(ws)
    assert truth["tests/test_b2.py::test_b2"] == "passed"
    got = outcomes(ws.run(as_full))
    assert got == {"tests/test_b2.py::test_b2": "passed"}
    # `maestro test tests/test_b2.py` answers as `pytest tests/test_b2.py`: nothing else
    ws.edit("tests/test_b2.py", "is not None", "is not None, 'the registry'")
    assert ws.plan(testing.Selection(paths=paths)).collect_only == []
    assert outcomes(ws.run(testing.Selection(paths=paths))) == pytest_says(ws, *paths)


def test_a_named_run_in_another_order_stores_its_own_answer(ws: Workspace) -> None:
    # pyparsing: `maestro test tests examples/tiny/tests` (its tox command; a full run collects
    # examples/ first) stored nothing, and every run took the whole 3.5 minutes again. Named
    # paths answer as `pytest PATHS`, in their order, keyed by the polluters run before each
    # file in that order: stored, and served the next time.
    paths = ("tests/test_c.py", "tests/test_a.py")
    first = ws.run(testing.Selection(paths=paths))
    assert outcomes(first) == pytest_says(ws, *paths)
    assert [(f.planned.target, f.stored) for f in first.files] == [
        ("tests/test_c.py", True),
        ("tests/test_a.py", True),
    ]
    assert ran(ws.run(testing.Selection(paths=paths))) == []


def test_doctests_named_before_their_namespace_filler_fail_as_pytest_says(
    ws: Workspace,
) -> None:
    # semver: `pytest docs tests` runs the doctests before any test of tests/ filled their
    # namespace (a NameError); the full run passes them. Each answers as pytest does, and
    # neither answer is served for the other.
    semver_docs(ws)
    ws.run()  # learns the namespace filler
    ws.write("docs/usage.rst", "Usage\n=====\n\nMore text.\n\n    >>> answer\n    42\n")
    node = "docs/usage.rst::usage.rst"
    named = testing.Selection(paths=("docs", "tests"))
    assert pytest_says(ws, "docs", "tests")[node] == "failed"
    assert outcomes(ws.run(named))[node] == "failed"
    assert pytest_says(ws)[node] == "passed"
    assert outcomes(ws.run())[node] == "passed"
    assert outcomes(ws.run(named))[node] == "failed"
    assert pytest_says(ws, "docs/usage.rst")[node] == "failed"
    assert outcomes(ws.run(testing.Selection(paths=("docs/usage.rst",))))[node] == "failed"
    assert outcomes(ws.run())[node] == "passed"


def test_a_file_named_before_its_polluter_answers_as_pytest_given_that_order(
    ws: Workspace,
) -> None:
    # a full run collects test_a.py (warnings become errors at its import) before test_b.py,
    # whose import warns: a collection error. `pytest tests/test_b.py tests/test_a.py` collects
    # test_b.py first and it passes: that is the answer for those paths, never the full run's.
    ws.write(
        "tests/test_a.py",
        "import warnings\n\nwarnings.simplefilter('error')\n\n\ndef test_a():\n    pass\n",
    )
    ws.write(
        "tests/test_b.py",
        "import warnings\n\nwarnings.warn('at import')\n\n\ndef test_b():\n    pass\n",
    )
    node = "tests/test_b.py"
    assert pytest_says(ws) == {node: "error"}  # pytest stops at a collection error
    assert outcomes(ws.run())[node] == "error"  # learns the polluter
    ws.edit("tests/test_b.py", "def test_b():", "def test_b():  # edited")
    paths = ("tests/test_b.py", "tests/test_a.py")
    truth = pytest_says(ws, *paths)
    assert truth["tests/test_b.py::test_b"] == "passed"
    assert outcomes(ws.run(testing.Selection(paths=paths))) == truth
    assert outcomes(ws.run())[node] == "error"
    assert outcomes(ws.run(testing.Selection(paths=paths))) == truth
