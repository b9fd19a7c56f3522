"""A test file whose import changes the warnings filters changes how every file pytest collects
after it collects (Python-Markdown's tests/test_legacy.py makes warnings errors at import, so a
later file's collection warning fails it in a full run). A full run's cached result must be the
full run's answer whichever files run, and change when the polluting file does; a file named
alone answers as `pytest FILE` does, without it."""

from __future__ import annotations

import subprocess

from project_python import project_python
from testing_helpers import Workspace, ran

from maestro.cache import Cache
from maestro.engine import testing

POLLUTER = "tests/test_a_filters.py"
VICTIM = "tests/test_b_collect.py"


def outcomes(summary: testing.Summary) -> dict[str, str]:
    return {t.node_id: t.outcome for r, _ in summary.results() for t in r.tests}


def pytest_says(ws: Workspace, *args: str) -> dict[str, str]:
    """Plain pytest's outcome per node (and per file for a collection error)."""
    done = subprocess.run(
        [str(project_python()), "-m", "pytest", "-rA", "-q", "-p", "no:cacheprovider",
         "--continue-on-collection-errors", *args],
        cwd=ws.root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    found: dict[str, str] = {}
    for line in done.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR"):
            node = rest.split(" - ")[0].strip()
            found[node] = word.lower()
    return found


def write(ws: Workspace) -> None:
    ws.write(
        POLLUTER,
        """
        import warnings

        warnings.simplefilter("error")


        def test_filters():
            assert True
        """,
    )
    ws.write(
        VICTIM,
        """
        class TestLooksLikeATest:
            def __init__(self):
                pass


        def test_ok():
            assert 1 + 1 == 2
        """,
    )


def has_error(found: dict[str, str]) -> bool:
    return any(n.startswith(VICTIM) and o == "error" for n, o in found.items())


def test_a_file_rerun_alone_is_collected_as_in_the_full_run(ws: Workspace) -> None:
    write(ws)
    assert has_error(pytest_says(ws))  # the full run: the collection warning is an error
    first = ws.run()
    assert has_error(outcomes(first))
    assert not any(t.flaky for r, _ in first.results() for t in r.tests)

    # the victim changes (its test still passes): it re-runs, collected after the polluter
    ws.edit(VICTIM, "1 + 1 == 2", "2 + 2 == 4")
    second = ws.run()
    assert VICTIM in ran(second)
    assert has_error(outcomes(second)), outcomes(second)
    assert not any(t.flaky for r, _ in second.results() for t in r.tests)
    assert has_error(pytest_says(ws))

    # asked for alone, it answers as `pytest VICTIM`: collected without the polluter, no error
    alone = ws.run(testing.Selection(paths=(VICTIM,)))
    assert not has_error(outcomes(alone)), outcomes(alone)
    assert outcomes(alone) == pytest_says(ws, VICTIM)
    # the polluter runs only with it: its own result is no stale one
    with Cache.open() as cache:
        stale = testing.stale(ws.graph(), cache, ws.interpreter)
    assert [f.target for f in stale] == [VICTIM]  # it failed last time


def test_a_file_asked_for_alone_shows_only_its_tests_not_its_polluters(ws: Workspace) -> None:
    """`maestro test F` neither shows nor counts the polluter's tests, as `pytest F` does
    (deepdiff: its package's import sets a warnings filter, so the first test file collected,
    tests/test_anyset.py, is a polluter; `maestro test tests/test_multiprocessing.py` said
    "61 passed" where pytest says 56, and "54 deselected" under -k where pytest says 49)."""
    write(ws)
    ws.write("tests/test_c_more.py", "def test_more():\n    assert True\n")
    assert has_error(outcomes(ws.run()))
    more = "tests/test_c_more.py"
    ws.edit(more, "assert True", "assert 1")
    alone = ws.run(testing.Selection(paths=(more,)))
    assert more in ran(alone)
    assert set(outcomes(alone)) == {f"{more}::test_more"}, outcomes(alone)
    assert (alone.passed, alone.errors, alone.deselected) == (1, 0, 0)
    ws.edit(more, "assert 1", "assert 2")
    picked = ws.run(testing.Selection(paths=(more,), pytest_args=("-k", "more")))
    assert set(outcomes(picked)) == {f"{more}::test_more"}, outcomes(picked)
    assert (picked.passed, picked.deselected) == (1, 0)
    # the victim asked for alone gets `pytest VICTIM`'s answer: no polluter before it
    ws.edit(VICTIM, "1 + 1 == 2", "2 + 2 == 4")
    victim = ws.run(testing.Selection(paths=(VICTIM,)))
    assert not any(n.startswith(POLLUTER) for n in outcomes(victim)), outcomes(victim)
    alone = pytest_says(ws, VICTIM)
    assert outcomes(victim) == alone
    assert victim.passed == sum(1 for o in alone.values() if o == "passed") > 0


def test_a_change_to_the_polluting_file_reruns_the_files_collected_after_it(
    ws: Workspace,
) -> None:
    write(ws)
    assert has_error(outcomes(ws.run()))
    ws.edit(POLLUTER, 'warnings.simplefilter("error")', 'warnings.simplefilter("default")')
    summary = ws.run()
    assert VICTIM in ran(summary)
    assert not has_error(outcomes(summary)), outcomes(summary)
    assert not has_error(pytest_says(ws))
    assert outcomes(summary)[f"{VICTIM}::test_ok"] == "passed"
    # and back: the polluter makes the victim fail to collect again
    ws.edit(POLLUTER, 'warnings.simplefilter("default")', 'warnings.simplefilter("error")')
    again = ws.run()
    assert VICTIM in ran(again)
    assert has_error(outcomes(again))


def test_a_file_that_keeps_failing_to_collect_is_not_flaky(ws: Workspace) -> None:
    # A collection error that comes back at every re-run (same inputs) is no flip: its tests
    # that passed both times are not flaky.
    ws.write(
        "pyproject.toml",
        """
        [project]
        name = "demo"
        version = "0"

        [tool.pytest.ini_options]
        testpaths = ["tests"]
        filterwarnings = ["error::pytest.PytestCollectionWarning"]
        """,
    )
    write(ws)
    ws.write(POLLUTER, "def test_filters():\n    assert True\n")
    first = ws.run()
    assert has_error(outcomes(first))
    second = ws.run()
    assert VICTIM in ran(second)  # failed last time
    assert has_error(outcomes(second))
    assert not [t.node_id for r, _ in second.results() for t in r.tests if t.flaky]


def test_a_file_whose_module_name_an_earlier_file_has_fails_to_import_as_in_the_full_run(
    ws: Workspace,
) -> None:
    """Two test modules of one name (no __init__.py, pytest's prepend import mode): a full run
    fails to import the second ("import file mismatch"); run alone after an edit it would
    import, a pass pytest never gives."""
    first, second = "tests/a/test_same.py", "tests/b/test_same.py"
    ws.write(first, "def test_first():\n    assert True\n")
    ws.write(second, "def test_second():\n    assert True\n")
    assert pytest_says(ws)[second] == "error"
    assert outcomes(ws.run())[second] == "error"
    ws.edit(second, "assert True", "assert 1")
    again = ws.run()
    assert second in ran(again)
    assert outcomes(again)[second] == "error", outcomes(again)
    # without the first, the second imports: its key followed the first's presence
    (ws.root / first).unlink()
    assert pytest_says(ws)[f"{second}::test_second"] == "passed"
    gone = ws.run()
    assert outcomes(gone)[f"{second}::test_second"] == "passed"


FLAG = "tests/test_c_flag.py"


def test_a_test_rerun_by_its_id_is_imported_after_the_polluter_as_in_the_full_run(
    ws: Workspace,
) -> None:
    """pytest imports the files named by a test id while it resolves its arguments, before the
    files named whole: with the polluter named whole and a test of the victim by its id, the
    victim is imported first, without the polluter's filters (a pass the full run never
    gives)."""
    write(ws)
    ws.write(
        FLAG,
        """
        import warnings

        try:
            warnings.warn("at import")
            RAISED = False
        except UserWarning:
            RAISED = True


        def test_one():
            assert RAISED


        def test_two():
            assert not RAISED
        """,
    )
    full = pytest_says(ws)
    assert full[f"{FLAG}::test_one"] == "passed" and full[f"{FLAG}::test_two"] == "failed"
    first = outcomes(ws.run())
    assert first[f"{FLAG}::test_two"] == "failed", first
    ws.edit(FLAG, "assert RAISED\n", "assert RAISED, 'one'\n")
    assert outcomes(ws.run())[f"{FLAG}::test_two"] == "failed"  # the whole file, traced
    ws.edit(FLAG, "assert not RAISED", "assert not RAISED, 'the filters'")
    again = ws.run()
    assert FLAG in ran(again)
    assert outcomes(again)[f"{FLAG}::test_two"] == "failed", outcomes(again)
    assert pytest_says(ws)[f"{FLAG}::test_two"] == "failed"
