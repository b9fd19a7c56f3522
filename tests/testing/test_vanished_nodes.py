"""A test file whose parametrize ids change at every collection with no edit of the file
(marshmallow's `test_invalid_datetime_deserialization[<datetime.now()>]`): after a change to
code one of those nodes ran, a run of part of the file must not name pytest an id it no longer
collects (pytest refuses the whole run: "not found"), and a node pytest no longer collects
leaves the file's result instead of being served beside its new id (the counts grew by one
node per run, where pytest's stay the same)."""

from __future__ import annotations

from test_fidelity_trials import outcomes, pytest_says
from testing_helpers import Workspace

FILES = {
    "pkg/lib.py": """
        def f(x):
            return x + 1


        def g(x):
            return x * 2
        """,
    "tests/test_t.py": """
        import time

        import pytest

        from pkg.lib import f, g


        @pytest.mark.parametrize("v", [1, 2, str(time.time_ns())])
        def test_g(v):
            assert g(v)


        def test_f():
            assert f(1) == 2
        """,
}


def _ours(found: dict[str, str]) -> list[tuple[str, str]]:
    """The nodes of tests/test_t.py, the id made at collection time said as `test_g[now]`."""
    return sorted(
        (n if n.endswith(("[1]", "[2]")) or "test_g" not in n else "test_g[now]", o)
        for n, o in found.items()
        if n.startswith("tests/test_t.py")
    )


def _prepared(ws: Workspace) -> None:
    for rel, text in FILES.items():
        ws.write(rel, text)
    ws.run()
    ws.edit("tests/test_t.py", "assert f(1) == 2", "assert f(1) == 2, 'f'")
    ws.run()  # every node has a per-test record now


def test_a_partial_run_of_a_node_whose_id_changed_is_not_refused(ws: Workspace) -> None:
    _prepared(ws)
    ws.edit("pkg/lib.py", "return x * 2", "return x * 3")  # every test_g node ran g
    truth = _ours(pytest_says(ws))
    summary = ws.run()
    assert _ours(outcomes(summary)) == truth
    assert summary.exit_code == 0


def test_a_node_pytest_no_longer_collects_leaves_the_result(ws: Workspace) -> None:
    _prepared(ws)
    ws.edit("pkg/lib.py", "return x + 1", "return x + 2")  # test_f fails: its file confirms it
    truth = _ours(pytest_says(ws))
    assert len(truth) == 4
    for _ in range(2):
        summary = ws.run()
        assert _ours(outcomes(summary)) == truth
