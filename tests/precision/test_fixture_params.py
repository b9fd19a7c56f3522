"""A change to the ``params`` of a conftest fixture (attrs' ``@pytest.fixture(name="slots",
params=(True, False))``) re-runs the test files whose tests use the fixture, whole (their node
ids change), and no other file; any other change to the conftest's module level still re-runs
every file in its scope."""

from __future__ import annotations

import pytest
from precision_helpers import Workspace, ran_nodes

from maestro.graph.fingerprints import diff, fingerprint_source

CONFTEST = """
    import pytest


    @pytest.fixture(params=(1, 2))
    def number(request):
        return request.param
    """


@pytest.fixture
def fixtured(ws: Workspace) -> Workspace:
    ws.write("tests/conftest.py", CONFTEST)
    ws.write("tests/test_uses.py", "def test_number(number):\n    assert number in (1, 2)\n")
    ws.run()
    return ws


def test_a_fixtures_params_rerun_only_the_files_that_use_it(fixtured: Workspace) -> None:
    fixtured.edit("tests/conftest.py", "params=(1, 2)", "params=(1, 3)")
    planned = {f.target: f for f in fixtured.plan().files}
    assert "uses the fixture tests.conftest.number" in planned["tests/test_uses.py"].describe()
    summary = fixtured.run()
    # the file that uses it runs whole, under its new ids, and fails as plain pytest does
    assert ran_nodes(summary) == [
        "tests/test_uses.py::test_number[1]",
        "tests/test_uses.py::test_number[3]",
    ]
    assert (summary.failed, summary.passed) == (1, 7)


def test_a_test_that_did_not_run_the_fixture_reruns_its_file(fixtured: Workspace) -> None:
    # skipped before its fixtures were set up: it may use the fixture, and its ids change
    fixtured.write(
        "tests/test_skips.py",
        "import pytest\n\n\n@pytest.mark.skip(reason='later')\ndef test_later(number):\n"
        "    pass\n\n\ndef test_plain():\n    pass\n",
    )
    fixtured.run()
    fixtured.edit("tests/conftest.py", "params=(1, 2)", "params=(1, 3)")
    summary = fixtured.run()
    assert [n for n in ran_nodes(summary) if "test_skips" in n] == [
        "tests/test_skips.py::test_later[1]",
        "tests/test_skips.py::test_later[3]",
        "tests/test_skips.py::test_plain",
    ]
    assert summary.skipped == 2  # as plain pytest says


@pytest.mark.parametrize(
    "edit",
    [
        # every test in the conftest's scope uses it now
        ("params=(1, 2)", "params=(1, 2), autouse=True"),
        # the values come from code that may raise at import
        ("params=(1, 2)", "params=tuple(range(1, 3))"),
    ],
)
def test_other_changes_of_a_fixture_rerun_every_file(
    fixtured: Workspace, edit: tuple[str, str]
) -> None:
    fixtured.edit("tests/conftest.py", *edit)
    ran = ran_nodes(fixtured.run())
    # a file that does not name the fixture (autouse: under new ids)
    assert any(n.startswith("tests/test_calc.py::test_double") for n in ran)


def _fixtures(source: str, old: str, new: str) -> tuple[str, ...] | None:
    before = fingerprint_source(source.encode())
    return diff(before, fingerprint_source(source.replace(old, new).encode())).fixtures


def test_only_inert_params_and_ids_of_pytests_fixture_count() -> None:
    source = (
        "import pytest\n\n\n@pytest.fixture(params=(1, 2), ids=['a', 'b'])\n"
        "def f(request):\n    pass\n"
    )
    assert _fixtures(source, "(1, 2)", "(1, 3)") == ("f",)
    assert _fixtures(source, "['a', 'b']", "['a', 'c']") == ("f",)
    assert _fixtures(source, "(1, 2)", "(1, 3), scope='module'") is None
    assert _fixtures(source, "pass", "return 1") is None  # no module-level change
    assert _fixtures(source, "(1, 2)", "(1, 3)\n\nX = 1") is None  # something else too
    assert _fixtures(source.replace("pytest.fixture", "other.fixture"), "(1, 2)", "(1, 3)") is None
    renamed = source.replace("import pytest", "import pytest\nfrom x import pytest")
    assert _fixtures(renamed, "(1, 2)", "(1, 3)") is None  # not pytest's
    named = "from pytest import fixture\n\n\n@fixture(params=[1])\ndef f(request):\n    pass\n"
    assert _fixtures(named, "[1]", "[2]") == ("f",)


def test_a_wider_fixtures_params_rerun_every_file_that_uses_it(ws: Workspace) -> None:
    # set up once, by the first test that uses it: charged to each test that uses it
    ws.write(
        "tests/conftest.py", CONFTEST.replace("params=(1, 2)", "scope='session', params=(1, 2)")
    )
    for name in ("a", "b"):
        ws.write(f"tests/test_{name}.py", f"def test_{name}(number):\n    assert number < 3\n")
    ws.run()
    ws.edit("tests/conftest.py", "params=(1, 2)", "params=(1, 3)")
    summary = ws.run()
    assert ran_nodes(summary) == [
        "tests/test_a.py::test_a[1]",
        "tests/test_a.py::test_a[3]",
        "tests/test_b.py::test_b[1]",
        "tests/test_b.py::test_b[3]",
    ]
    assert summary.failed == 2  # as plain pytest says
