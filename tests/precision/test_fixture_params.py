"""A change to the ``params`` of a conftest fixture (attrs' ``@pytest.fixture(name="slots",
params=(True, False))``) re-runs, of the tests that use the fixture (directly or through a
fixture requesting it), the nodes whose element changed and the new elements' nodes; a removed
element's nodes disappear, the rest is served, as plain pytest would say. What cannot be judged
per node re-runs the files that use it, whole; any other change to the conftest's module level
still re-runs every file in its scope."""

from __future__ import annotations

import pytest
from precision_helpers import Workspace, ran_nodes

from maestro.engine import fixture_params
from maestro.engine.summary import Summary
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
    assert planned["tests/test_uses.py"].describe() == (
        "1 given to pytest, 1 served: tests/test_uses.py::test_number uses the fixture whose "
        "params changed "
        "(tests.conftest.number, changed at tests/conftest.py:4)"
    )
    assert planned["tests/test_uses.py"].node_reasons["tests/test_uses.py::test_number[2]"] == (
        "got a fixture parameter whose value or id changed (tests.conftest.number, changed at "
        "tests/conftest.py:4)"
    )
    summary = fixtured.run()
    # the node of the new element runs, and fails as plain pytest does; [1] is served
    assert ran_nodes(summary) == ["tests/test_uses.py::test_number[3]"]
    assert (summary.failed, summary.passed) == (1, 7)


def test_a_test_that_did_not_pass_reruns(fixtured: Workspace) -> None:
    # skipped before its fixtures were set up: re-run with the nodes of the new element
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


@pytest.mark.parametrize(
    ("decorator", "known"),
    [
        ("@pytest.fixture(params=(1, 'a', None, 2.5, -3))", True),
        ("@pytest.fixture(params=[(1, 2)], ids=['pair'])", True),
        ("@pytest.fixture(params=[1, None], ids=['x', None])", True),
        # pytest makes repeated ids unique by adding a suffix that depends on the others
        ("@pytest.fixture(params=(True, True))", False),
        ("@pytest.fixture(params=(1, '1'))", False),
        # pytest's id is the argument's name and index, or escaped
        ("@pytest.fixture(params=[(1, 2)])", False),
        ("@pytest.fixture(params=['a b'])", False),
        ("@pytest.fixture(params=(1, 2), ids=['a'])", False),
        ("@pytest.fixture(ids=['a'])", False),
    ],
)
def test_the_elements_of_params_are_known_with_their_ids(decorator: str, known: bool) -> None:
    source = f"import pytest\n\n\n{decorator}\ndef f(request):\n    pass\n"
    elements = fingerprint_source(source.encode()).fixture_params.get("f")
    assert (elements is not None) is known
    other = f"import pytest\n\n\ndef wrap(f):\n    return f\n\n\n{decorator}\n@wrap\n"
    other += "def f(request):\n    pass\n"
    assert "f" not in fingerprint_source(other.encode()).fixture_params  # another function


def test_a_wider_fixtures_params_rerun_their_nodes_in_every_file(ws: Workspace) -> None:
    # set up once, by the first test that uses it: charged to each test that uses it
    ws.write(
        "tests/conftest.py", CONFTEST.replace("params=(1, 2)", "scope='session', params=(1, 2)")
    )
    for name in ("a", "b"):
        ws.write(f"tests/test_{name}.py", f"def test_{name}(number):\n    assert number < 3\n")
    ws.run()
    ws.edit("tests/conftest.py", "params=(1, 2)", "params=(1, 3)")
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_a.py::test_a[3]", "tests/test_b.py::test_b[3]"]
    assert summary.failed == 2  # as plain pytest says


def _outcomes(summary: Summary) -> dict[str, str]:
    """Every node's outcome in the run's results, served or run, of the files under tests/u."""
    return {
        t.node_id: t.outcome
        for f in summary.files
        if f.result is not None and f.target.startswith("tests/u/")
        for t in f.result.tests
    }


PER_NODE = """
    import pytest


    @pytest.fixture(params=(1, 2))
    def number(request):
        return request.param


    @pytest.fixture
    def doubled(number):
        return 2 * number
    """


@pytest.fixture
def per_node(ws: Workspace) -> Workspace:
    ws.write("tests/u/conftest.py", PER_NODE)
    ws.write(
        "tests/u/test_uses.py",
        "def test_number(number):\n    assert number < 3\n\n\ndef test_plain():\n    pass\n",
    )
    ws.write("tests/u/test_deep.py", "def test_doubled(doubled):\n    assert doubled < 6\n")
    ws.run()
    return ws


def test_a_changed_param_reruns_only_its_nodes(per_node: Workspace) -> None:
    per_node.edit("tests/u/conftest.py", "params=(1, 2)", "params=(1, 3)")
    summary = per_node.run()
    # [1] is the same value under the same id: served; [3] is new and [2] gone; through the
    # fixture requesting it, in another file, the same
    assert ran_nodes(summary) == [
        "tests/u/test_deep.py::test_doubled[3]",
        "tests/u/test_uses.py::test_number[3]",
    ]
    expected = {
        "tests/u/test_uses.py::test_number[1]": "passed",
        "tests/u/test_uses.py::test_number[3]": "failed",
        "tests/u/test_uses.py::test_plain": "passed",
        "tests/u/test_deep.py::test_doubled[1]": "passed",
        "tests/u/test_deep.py::test_doubled[3]": "failed",
    }
    assert _outcomes(summary) == expected
    # what was stored is what pytest collects now: nothing of [2]; the failures re-run
    again = per_node.run()
    assert ran_nodes(again) == ran_nodes(summary)
    assert _outcomes(again) == expected


def test_a_new_param_runs_only_its_nodes(per_node: Workspace) -> None:
    per_node.edit("tests/u/conftest.py", "params=(1, 2)", "params=(1, 2, 4)")
    summary = per_node.run()
    assert ran_nodes(summary) == [
        "tests/u/test_deep.py::test_doubled[4]",
        "tests/u/test_uses.py::test_number[4]",
    ]
    assert len(_outcomes(summary)) == 7
    assert summary.failed == 2


def test_a_removed_param_disappears(per_node: Workspace) -> None:
    per_node.edit("tests/u/conftest.py", "params=(1, 2)", "params=(2,)")
    summary = per_node.run()
    # the element at index 0 is now 2: a changed value under another id
    assert ran_nodes(summary) == [
        "tests/u/test_deep.py::test_doubled[2]",
        "tests/u/test_uses.py::test_number[2]",
    ]
    per_node.edit("tests/u/conftest.py", "params=(2,)", "params=(2, 3)")
    per_node.run()
    per_node.edit("tests/u/conftest.py", "params=(2, 3)", "params=(2,)")
    summary = per_node.run()
    assert ran_nodes(summary) == []
    assert sorted(_outcomes(summary)) == [
        "tests/u/test_deep.py::test_doubled[2]",
        "tests/u/test_uses.py::test_number[2]",
        "tests/u/test_uses.py::test_plain",
    ]


def test_the_same_id_with_another_value_reruns(per_node: Workspace) -> None:
    per_node.edit("tests/u/conftest.py", "params=(1, 2)", "params=(1, 2), ids=['one', 'two']")
    per_node.run()
    per_node.edit("tests/u/conftest.py", "params=(1, 2)", "params=(1, 5)")
    summary = per_node.run()
    # test_number[two] keeps its id and gets 5: it runs, and fails as pytest says
    assert ran_nodes(summary) == [
        "tests/u/test_deep.py::test_doubled[two]",
        "tests/u/test_uses.py::test_number[two]",
    ]
    assert summary.failed == 2


def test_a_test_giving_the_fixture_its_own_values_reruns_its_file(ws: Workspace) -> None:
    # pytest ignores the fixture's params for that test: its index is not theirs
    ws.write("tests/u/conftest.py", PER_NODE)
    ws.write(
        "tests/u/test_uses.py",
        "import pytest\n\n\ndef test_number(number):\n    pass\n\n\n"
        "@pytest.mark.parametrize('number', [7], indirect=True)\n"
        "def test_own(number):\n    assert number == 7\n",
    )
    ws.run()
    ws.edit("tests/u/conftest.py", "params=(1, 2)", "params=(1, 3)")
    assert ran_nodes(ws.run()) == [
        "tests/u/test_uses.py::test_number[1]",
        "tests/u/test_uses.py::test_number[3]",
        "tests/u/test_uses.py::test_own[7]",
    ]


def test_a_fixture_changed_with_the_params_reruns_the_files(per_node: Workspace) -> None:
    per_node.edit("tests/u/conftest.py", "params=(1, 2)", "params=(1, 3)")
    per_node.edit("tests/u/conftest.py", "return 2 * number", "return 3 * number")
    assert ran_nodes(per_node.run()) == [
        "tests/u/test_deep.py::test_doubled[1]",
        "tests/u/test_deep.py::test_doubled[3]",
        "tests/u/test_uses.py::test_number[1]",
        "tests/u/test_uses.py::test_number[3]",
        "tests/u/test_uses.py::test_plain",
    ]


def test_a_served_node_pytest_no_longer_has_leaves_the_result(
    per_node: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # were an element taken for unchanged wrongly (pytest named its node otherwise), the node
    # pytest no longer collects must not stay in the result under its old id
    monkeypatch.setattr(fixture_params, "_element_change", lambda old, new, index: None)
    per_node.edit("tests/u/conftest.py", "params=(1, 2)", "params=(1, 3)")
    summary = per_node.run()
    assert ran_nodes(summary) == [
        "tests/u/test_deep.py::test_doubled[3]",
        "tests/u/test_uses.py::test_number[3]",
    ]
    assert not any("[2]" in n for n in _outcomes(summary))
