"""Module constants computed from constants (``M = tuple([1] * 31 + ...)``, ``N = list(M)``,
``del N[59]``: python-dateutil's rrule.py masks): a change re-runs the tests that read a name
whose value changed, not every importer; one that makes the import raise still re-runs every
importer."""

from __future__ import annotations

import textwrap

import pytest
from precision_helpers import Workspace, ran_nodes

from maestro.graph.fingerprints import diff, fingerprint_source

MASKS = """
    MASK = tuple([1] * 3 + [2] * 2)
    LATER = list(MASK)
    OTHER = (0, 1)
    del LATER[3]
    LATER = tuple(LATER)


    def mask():
        return MASK


    def later():
        return LATER


    def other():
        return OTHER
    """

TESTS = """
    from pkg import masks


    def test_mask():
        assert len(masks.mask()) == 5


    def test_later():
        assert len(masks.later()) == 4


    def test_other():
        assert masks.other() == (0, 1)
    """


@pytest.fixture
def masked(ws: Workspace) -> Workspace:
    ws.write("pkg/masks.py", MASKS)
    ws.write("tests/test_masks.py", TESTS)
    ws.write("tests/test_imports.py", "import pkg.masks\n\n\ndef test_imports():\n    pass\n")
    ws.run()
    return ws


def test_a_computed_constant_reruns_the_readers_of_the_names_it_changes(masked: Workspace) -> None:
    masked.edit("pkg/masks.py", "[2] * 2", "[2] * 3")
    planned = next(f for f in masked.plan().files if f.target == "tests/test_masks.py")
    assert planned.node_reasons["tests/test_masks.py::test_later"].startswith(
        "executed pkg.masks.later, which reads the changed pkg.masks.LATER"
    )
    summary = masked.run()
    # test_later reads only LATER, built from MASK: it re-runs and fails, as in plain pytest;
    # test_other and the importer that reads nothing of it stay cached
    assert ran_nodes(summary) == [
        "tests/test_masks.py::test_later",
        "tests/test_masks.py::test_mask",
    ]
    assert (summary.failed, summary.passed) == (2, 8)


def test_a_computed_constant_whose_change_breaks_the_import_reruns_every_importer(
    masked: Workspace,
) -> None:
    masked.edit("pkg/masks.py", "[1] * 3 + [2] * 2", "[1] * 3")  # del LATER[3]: IndexError
    for target in ("tests/test_masks.py", "tests/test_imports.py"):
        planned = next(f for f in masked.plan().files if f.target == target)
        assert planned.run_nodes is None  # the whole file
        assert "module-level code changed" in planned.describe()
    assert masked.run().errors == 2  # both importers fail at collection, as plain pytest says


def test_a_computed_constant_read_by_other_module_level_code_reruns_every_importer(
    ws: Workspace,
) -> None:
    ws.write("pkg/masks.py", textwrap.dedent(MASKS) + "\n\nclass Table:\n    size = len(LATER)\n")
    ws.write("tests/test_masks.py", TESTS)
    ws.run()
    ws.edit("pkg/masks.py", "[2] * 2", "[2] * 3")
    assert len(ran_nodes(ws.run())) == 3  # the class body read the changed LATER at import


def _names(source: str, old: str, new: str) -> tuple[str, ...] | None:
    source = textwrap.dedent(source)
    before = fingerprint_source(source.encode())
    return diff(before, fingerprint_source(source.replace(old, new).encode())).module_names


def test_names_whose_values_follow_a_changed_one_count_as_changed() -> None:
    assert _names(MASKS, "[2] * 2", "[2] * 3") == ("LATER", "MASK")
    # the same values written otherwise: only the statement's own name counts
    assert _names(MASKS, "[2] * 2", "[2, 2]") == ("MASK",)
    # a del through another name changes the list both hold
    aliased = "A = [1, 2, 3]\nB = A\nAT = 0\ndel B[AT]\n"
    assert _names(aliased, "AT = 0", "AT = 1") == ("A", "AT", "B")
    # a del of names other code bound: the names it deletes count as changed
    imported = "from m import U, V\nA = [1]\ndel U, A[0]\n"
    assert _names(imported, "del U", "del V") == ("A", "U", "V")
    deleted = fingerprint_source(b"A = [1]\nB = list(A)\ndel A\n")
    assert (deleted.values.keys(), deleted.unbound) == ({"A", "B"}, ("A",))


@pytest.mark.parametrize(
    ("source", "old", "new"),
    [
        # range is not the builtin here
        ("from six.moves import range\nA = list(range(3))\n", "3", "4"),
        # rebound by code that is not evaluated
        ("A = list((3,))\nA = compute()\n", "3", "4"),
        # a function may rebind it at any time
        ("A = list((3,))\n\n\ndef reset():\n    global A\n    A = []\n", "3", "4"),
        # any name may come from there
        ("from os.path import *\nA = list((3,))\n", "3", "4"),
        # the new version raises at import
        ("A = [1, 2, 3]\nB = A[2]\n", "[1, 2, 3]", "[1, 2]"),
        # a value too big to evaluate
        ("A = [3] * (10 ** 9)\n", "3", "4"),
    ],
)
def test_code_that_is_not_evaluated_stays_module_level(source: str, old: str, new: str) -> None:
    assert _names(source, old, new) is None


def test_the_reads_of_evaluated_statements_are_no_module_level_reads() -> None:
    found = fingerprint_source(b"A = (1, 2)\nB = list(A) + [3]\nC = f(B)\n")
    assert "A" not in found.module_loads
    assert "B" in found.module_loads  # read by code that is not evaluated
