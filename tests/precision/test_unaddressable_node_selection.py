"""Node-level selection of a file with a test pytest cannot find by its node id.

A parametrize id holding "::" (python-dateutil's ``test_invalid_GNU_tzstr[...\\xf1::]``) makes a
node id pytest does not resolve: given as an argument, it finds nothing. A run of some tests of
a file names the file whole and deselects the tests it serves by their ids, so such a test can
run without the rest of its file; before, any change that gave it a reason re-ran its whole file
(dateutil: every test of test_tz.py after a change in the parser).
"""

from __future__ import annotations

from precision_helpers import Workspace, ran_nodes

from maestro.engine.summary import Summary

F_COLONS = "tests/test_colons.py::test_f[a::]"
F_PLAIN = "tests/test_colons.py::test_f[b]"
G = "tests/test_colons.py::test_g"


def _outcomes(summary: Summary) -> dict[str, str]:
    return {
        t.node_id: t.outcome
        for result, _ in summary.results()
        for t in result.tests
        if t.node_id.startswith("tests/test_colons.py")
    }


def _write(ws: Workspace) -> None:
    ws.write(
        "pkg/colons.py",
        """
        def f(x):
            return x


        def g(x):
            return x
        """,
    )
    ws.write(
        "tests/test_colons.py",
        """
        import pytest

        from pkg.colons import f, g


        @pytest.mark.parametrize("s", ["a::", "b"])
        def test_f(s):
            assert f(s) == s


        def test_g():
            assert g(1) == 1
        """,
    )
    assert ws.run().failed == 0


def test_a_test_named_with_colons_reruns_without_its_whole_file(ws: Workspace) -> None:
    """A change to ``f`` re-runs the two tests that ran it, the one whose id holds "::"
    included, and serves ``test_g`` (before: the whole file ran)."""
    _write(ws)
    ws.edit("pkg/colons.py", "def f(x):\n    return x", "def f(x):\n    return str(x)")
    summary = ws.run()
    assert ran_nodes(summary) == [F_COLONS, F_PLAIN]
    assert _outcomes(summary) == {F_COLONS: "passed", F_PLAIN: "passed", G: "passed"}


def test_its_failure_is_reported_as_plain_pytest_reports_it(ws: Workspace) -> None:
    """The same run when the change breaks ``f``: both of its tests fail (the failing one with
    "::" is confirmed by its whole file, as a failure in a partial run is), ``test_g`` passes."""
    _write(ws)
    ws.edit("pkg/colons.py", "def f(x):\n    return x", "def f(x):\n    return x * 2")
    summary = ws.run()
    assert {F_COLONS, F_PLAIN} <= set(ran_nodes(summary))
    assert _outcomes(summary) == {F_COLONS: "failed", F_PLAIN: "failed", G: "passed"}
