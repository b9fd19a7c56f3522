"""`maestro test` end to end: real pytest children, a real LMDB cache, edits between runs."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import lmdb
import pytest
from testing_helpers import Workspace, ran

from maestro.cache import Cache
from maestro.engine import testing
from maestro.errors import ConfigError, PytestUsageError

ALL = ["tests/test_a.py", "tests/test_b.py", "tests/test_c.py", "tests/test_data.py"]


def test_second_run_with_nothing_changed_is_served_from_cache(ws: Workspace) -> None:
    first = ws.run()
    assert ran(first) == ALL
    assert (first.exit_code, first.passed, first.failed) == (0, 5, 0)
    second = ws.run()
    assert second.report is None  # no pytest process at all
    assert ran(second) == []
    assert (second.cached_files, second.passed, second.exit_code) == (4, 5, 0)
    # what the served run would have cost: its share of the first pytest process, start-up
    # included (the tests' own durations here are a few ms and read "saved 0.00s")
    assert first.report is not None
    assert second.time_saved_s == pytest.approx(first.report.wall_s, rel=0.05)


def test_source_change_reruns_exactly_its_importers(ws: Workspace) -> None:
    ws.run()
    ws.edit("pkg/b.py", "return a * b", "return b * a")
    summary = ws.run()
    assert ran(summary) == ["tests/test_b.py", "tests/test_c.py"]  # test_c imports b via pkg.c
    changed = {f.target: f.planned.changed for f in summary.files if not f.cached}
    assert changed["tests/test_b.py"] == ["pkg/b.py"]
    assert ran(ws.run()) == []


def test_data_file_change_reruns_the_test_that_read_it(ws: Workspace) -> None:
    ws.run()
    graph = ws.graph()
    assert "tests/data.txt" in graph.closure("tests/test_data.py")  # recorded, persisted
    ws.write("tests/data.txt", "not ok\n")
    summary = ws.run()
    assert ran(summary) == ["tests/test_data.py"]
    assert summary.failed == 1 and summary.exit_code == 1
    ((_, failure),) = summary.failures()
    assert failure.path == "tests/test_data.py" and failure.line == 4
    assert "AssertionError" in (failure.message or "")


def test_deleted_data_file_counts_as_a_change(ws: Workspace) -> None:
    ws.run()
    (ws.root / "tests/data.txt").unlink()
    plan = ws.plan()
    assert [f.target for f in plan.to_run] == ["tests/test_data.py"]
    assert plan.to_run[0].key.inputs["tests/data.txt"] == "absent"


def test_readme_and_ruff_config_rerun_nothing(ws: Workspace) -> None:
    ws.run()
    ws.write("README.md", "# demo, documented\n")
    ws.edit("pyproject.toml", "line-length = 100", "line-length = 120")
    summary = ws.run()
    assert ran(summary) == [] and summary.report is None


def test_pytest_config_change_reruns_everything(ws: Workspace) -> None:
    ws.run()
    ws.edit("pyproject.toml", 'testpaths = ["tests"]', 'testpaths = ["tests"]\naddopts = "-ra"')
    summary = ws.run()
    assert ran(summary) == ALL
    assert all("pyproject.toml#tool.pytest" in f.planned.changed for f in summary.files)
    # as a person reads it: the file and its section, not the key's own spelling
    assert summary.files[0].planned.describe() == "inputs changed: pyproject.toml [tool.pytest]"


def test_failed_test_reruns_next_time_and_flaky_is_labelled(ws: Workspace, tmp_path: Path) -> None:
    counter = tmp_path / "attempts"  # outside the workspace: not an input
    ws.write(
        "tests/test_flaky.py",
        f"""
        import pathlib

        def test_second_attempt_passes():
            counter = pathlib.Path({str(counter)!r})
            n = int(counter.read_text()) if counter.exists() else 0
            counter.write_text(str(n + 1))
            assert n >= 1
        """,
    )
    first = ws.run(testing.Selection(paths=("tests/test_flaky.py",)))
    assert first.failed == 1 and first.exit_code == 1
    plan = ws.plan(testing.Selection(paths=("tests/test_flaky.py",)))
    assert plan.to_run[0].reason == "failed last time"
    assert plan.to_run[0].cached is not None  # kept for display
    second = ws.run(testing.Selection(paths=("tests/test_flaky.py",)))
    assert ran(second) == ["tests/test_flaky.py"]
    assert second.passed == 1 and second.flaky == 1 and second.exit_code == 0
    third = ws.run(testing.Selection(paths=("tests/test_flaky.py",)))
    assert ran(third) == [] and third.flaky == 1  # the label stays with the cached result


def _stored_blob_keys(summary: testing.Summary) -> list[bytes]:
    return [
        d.key for f in summary.files if f.result for d in f.result.referenced_digests() if d.size
    ]


@pytest.mark.parametrize("damage", ["corrupt", "delete"])
def test_damaged_blob_makes_the_next_run_recompute(ws: Workspace, damage: str) -> None:
    first = ws.run(testing.Selection(paths=("tests/test_a.py",)))
    keys = _stored_blob_keys(first)
    assert keys
    with Cache.open() as cache:
        path = cache.path
    env = lmdb.open(str(path), max_dbs=16, map_size=1 << 30)
    try:
        with env.begin(write=True) as txn:
            db = env.open_db(b"cas", txn=txn)
            for key in keys:
                if damage == "corrupt":
                    value = bytes(txn.get(key, db=db))
                    txn.put(key, value[:-1] + b"X", db=db)
                else:
                    txn.delete(key, db=db)
    finally:
        env.close()
    summary = ws.run(testing.Selection(paths=("tests/test_a.py",)))
    assert ran(summary) == ["tests/test_a.py"]
    assert summary.files[0].planned.reason == "cached result unusable"
    assert ran(ws.run(testing.Selection(paths=("tests/test_a.py",)))) == []


def test_a_deleted_cache_says_there_is_no_cached_result(ws: Workspace) -> None:
    """The cache folder removed (`rm -rf $MAESTRO_CACHE_DIR`) while the state keeps each file's
    last key: the plan said "cached result unusable" for every file, as if a result were there."""
    ws.run()
    with Cache.open() as cache:
        path = cache.path
    shutil.rmtree(path)
    summary = ws.run()
    assert ran(summary) == ALL
    assert {f.planned.reason for f in summary.files} == {"no cached result"}


def test_env_allowlist_variable_change_reruns(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws.write("maestro.toml", 'env-allowlist = ["DEMO_FLAG"]\n')
    ws.write(
        "tests/test_env.py",
        "import os\n\n\ndef test_flag():\n    assert os.environ['DEMO_FLAG'] == 'on'\n",
    )
    selection = testing.Selection(paths=("tests/test_env.py",))
    monkeypatch.setenv("DEMO_FLAG", "on")
    assert ws.run(selection).passed == 1
    assert ran(ws.run(selection)) == []
    monkeypatch.setenv("DEMO_FLAG", "off")
    summary = ws.run(selection)
    assert ran(summary) == ["tests/test_env.py"] and summary.failed == 1
    assert summary.files[0].planned.changed == ["env:DEMO_FLAG"]
    assert summary.files[0].planned.describe() == "inputs changed: $DEMO_FLAG"
    monkeypatch.setenv("UNLISTED", "whatever")  # not allowlisted: no effect on keys
    monkeypatch.setenv("DEMO_FLAG", "on")
    assert ran(ws.run(selection)) == []


def test_node_id_selection_is_its_own_action(ws: Workspace) -> None:
    one = testing.Selection(paths=("tests/test_c.py::test_square",))
    summary = ws.run(one)
    assert summary.passed == 1 and ran(summary) == ["tests/test_c.py"]
    assert ran(ws.run(one)) == []
    whole = ws.plan(testing.Selection(paths=("tests/test_c.py",)))
    assert whole.to_run and whole.to_run[0].changed == ["@select"]
    assert whole.to_run[0].describe() == "inputs changed: the tests asked for"
    summary = ws.run(testing.Selection(paths=("tests/test_c.py",), pytest_args=("-k", "square")))
    assert (
        summary.files[0].planned.describe()
        == "inputs changed: pytest arguments, the tests asked for"
    )


def test_pytest_arguments_that_change_which_files_are_tests_are_refused(ws: Workspace) -> None:
    # pytest would collect every module's doctests: the graph's test files would miss them
    for args in (["--doctest-modules"], ["-o", "python_files=check_*.py"], ["--rootdir=/"]):
        with pytest.raises(ConfigError, match="would change which files pytest collects") as exc:
            ws.run(testing.Selection(pytest_args=tuple(args)))
        assert exc.value.hint and "[tool.pytest.ini_options]" in exc.value.hint
    # the hint is what to write in pyproject.toml, as pytest reads it: one word per addopts
    # item, an `-o` as its own ini line ("-p no:doctest" as one item is no plugin pytest knows)
    for args, line in (
        (["-p", "no:doctest"], 'addopts = ["-p", "no:doctest"] under'),
        (["-o", "python_files=check_*.py"], 'python_files = ["check_*.py"] under'),
        (["--override-ini=norecursedirs=a b"], 'norecursedirs = ["a", "b"] under'),
    ):
        with pytest.raises(ConfigError) as exc:
            ws.run(testing.Selection(pytest_args=tuple(args)))
        assert exc.value.hint and line in exc.value.hint
    for args in (["--lf"], ["--sw"], ["--last-failed-no-failures=none"]):
        # a result stored under them would be of the tests pytest's own cache picked
        with pytest.raises(ConfigError, match="from pytest's own cache"):
            ws.run(testing.Selection(pytest_args=tuple(args)))
    ws.write("pyproject.toml", '[tool.pytest.ini_options]\naddopts = "--doctest-modules"\n')
    ws.write(
        "pkg/a.py", 'def add(a, b):\n    """\n    >>> add(1, 2)\n    3\n    """\n    return a + b\n'
    )
    summary = ws.run(testing.Selection(pytest_args=("--doctest-modules", "-p", "no:cacheprovider")))
    assert summary.passed >= 1 and "pkg/a.py" in [f.target for f in summary.files]


def test_a_node_id_pytest_does_not_find_stores_nothing(ws: Workspace) -> None:
    # pytest refuses the whole command line (exit 4) and runs no test: test_a.py's "no tests"
    # was stored, and later runs served it with its tests gone
    both = testing.Selection(paths=("tests/test_c.py::nope", "tests/test_a.py"), no_cache=True)
    with pytest.raises(PytestUsageError, match=r"not found: tests/test_c\.py::nope"):
        ws.run(both)
    summary = ws.run(testing.Selection(paths=("tests/test_a.py",)))
    assert ran(summary) == ["tests/test_a.py"] and summary.passed == 1


def test_impacted_selection_from_explicit_changes(ws: Workspace) -> None:
    ws.run()
    ws.edit("pkg/a.py", "return a + b", "return b + a")
    summary = ws.run(testing.Selection(paths=("pkg/a.py",), impacted=True))
    assert [f.target for f in summary.files] == ["tests/test_a.py"]
    assert ran(summary) == ["tests/test_a.py"]


def test_input_changed_during_the_run_is_not_cached(ws: Workspace) -> None:
    ws.write(
        "tests/test_self_edit.py",
        """
        import pathlib
        from pkg.a import add

        def test_edits_its_input():
            path = pathlib.Path("pkg/a.py")
            path.write_text(path.read_text() + "# touched\\n")
            assert add(1, 1) == 2
        """,
    )
    selection = testing.Selection(paths=("tests/test_self_edit.py",))
    summary = ws.run(selection)
    assert summary.passed == 1 and not summary.files[0].stored
    assert ran(ws.run(selection)) == ["tests/test_self_edit.py"]


def test_collection_error_is_a_failure_that_reruns(ws: Workspace) -> None:
    ws.write("tests/test_broken.py", "import does_not_exist_anywhere\n")
    selection = testing.Selection(paths=("tests/test_broken.py",))
    summary = ws.run(selection)
    assert summary.errors == 1 and summary.exit_code == 1
    assert "collection failed" in (summary.failures()[0][1].message or "")
    assert ws.plan(selection).to_run[0].reason == "failed last time"


def test_a_collection_error_says_what_pytest_says(ws: Workspace) -> None:
    """The message of a file that fails to collect is the first line of pytest's crash line,
    as its short summary says it (`ERROR tests/test_assert.py - assert not True`), not the
    last `E` line of the report (dill's test_registered.py read "collection
    failed: +  where True = bool(['PrettyPrinterType', 'StreamHandlerType'])")."""
    ws.write("tests/test_assert.py", "FOUND = [1, 2]\nassert not bool(FOUND)\n")
    summary = ws.run(testing.Selection(paths=("tests/test_assert.py",)))
    message = summary.failures()[0][1].message or ""
    assert message == "collection failed: assert not True", message


def test_no_cache_runs_everything_and_stale_lists_uncached(ws: Workspace) -> None:
    ws.run(testing.Selection(paths=("tests/test_a.py",)))
    with Cache.open() as cache:
        stale = testing.stale(ws.graph(), cache, ws.interpreter)
    assert [f.target for f in stale] == ["tests/test_b.py", "tests/test_c.py", "tests/test_data.py"]
    summary = ws.run(testing.Selection(no_cache=True))
    assert ran(summary) == ALL
    assert all(f.planned.reason == "--no-cache" for f in summary.files)


def test_no_tests_selected_exits_5(ws: Workspace) -> None:
    ws.write("tests/test_empty.py", "X = 1\n")
    summary = ws.run(testing.Selection(paths=("tests/test_empty.py",)))
    assert summary.exit_code == 5
    assert ran(ws.run(testing.Selection(paths=("tests/test_empty.py",)))) == []


def test_a_test_file_other_tests_import_keeps_its_inputs_after_a_partial_run(
    ws: Workspace,
) -> None:
    # Python-Markdown's markdown/test_tools.py: a test file (pytest collects it) whose helpers
    # other test files import and call. What its code reads counts for its importers; a run
    # that did not collect it must not change its own inputs, nor a full run change them back
    # (every partial run re-ran the files after it).
    ws.write("tests/util.txt", "a\n")
    ws.write(
        "tests/test_util.py",
        """
        import pathlib

        DATA = pathlib.Path(__file__).parent / "util.txt"


        def load():
            return DATA.read_text()


        def test_util():
            assert True
        """,
    )
    ws.write(
        "tests/test_x.py",
        """
        from test_util import load


        def test_x():
            assert load() == "a\\n"
        """,
    )
    ws.run()
    assert ran(ws.run()) == []
    ws.run(testing.Selection(paths=("tests/test_x.py",), no_cache=True))
    assert ran(ws.run()) == []
    ws.run(testing.Selection(paths=("tests/test_x.py",), no_cache=True))
    assert ran(ws.run()) == []
    ws.edit("tests/test_util.py", "assert True", "assert 1")  # it runs without its importer
    ws.run()
    assert ran(ws.run()) == []
    ws.run(testing.Selection(paths=("tests/test_x.py",), no_cache=True))
    assert ran(ws.run()) == []


def test_a_file_without_a_per_test_record_says_why_it_reruns_whole(ws: Workspace) -> None:
    ws.run()
    ws.edit("pkg/b.py", "return a * b", "return b * a")
    planned = {f.target: f for f in ws.plan().files}["tests/test_b.py"]
    untraced = sys.version_info < (3, 12)  # before 3.12 a first run in process is untraced
    assert planned.untraced is untraced
    assert ("no per-test record yet" in planned.describe()) is untraced, planned.describe()


def test_a_reason_from_an_older_record_says_it_is_that_runs(ws: Workspace) -> None:
    # sqlparse: keywords.py broken (traced re-run, failures), restored (the untraced first
    # result served again), then a test edited: the file was judged against the broken run's
    # record and said "keywords.py changed", which it had not since the result the user saw
    ws.write(
        "tests/test_b.py",
        """
        from pkg.b import mul


        def test_mul():
            assert mul(2, 3) == 6


        def test_square():
            assert mul(3, 3) == 9
        """,
    )
    ws.run()
    ws.edit("pkg/b.py", "return a * b", "return a * b + 1")
    assert ws.run().failed
    ws.edit("pkg/b.py", "return a * b + 1", "return a * b")
    assert ran(ws.run()) == []
    ws.edit("tests/test_b.py", "mul(3, 3) == 9", "mul(3, 3) == 3 * 3")
    planned = {f.target: f for f in ws.plan().files}["tests/test_b.py"]
    assert planned.changed == ["tests/test_b.py"]
    if sys.version_info < (3, 12):  # the first run was untraced: an older record judged
        mul = planned.node_reasons["tests/test_b.py::test_mul"]
        assert mul.endswith("(as of the last run with a per-test record)"), mul
    assert all(
        "as of the last run" in why
        for why in planned.node_reasons.values()
        if "pkg/b.py" in why or why.startswith("failed last time")
    )


def test_the_hint_for_a_refused_argument_names_it_and_the_configuration_file(
    ws: Workspace,
) -> None:
    # schema: `--doctest-glob=README.rst` (its tox.ini) was refused with a hint to put
    # "--doctest-modules" under [tool.pytest.ini_options] "in pyproject.toml", though the
    # argument was another and the project configures pytest in setup.cfg
    ws.write("pyproject.toml", '[project]\nname = "demo"\nversion = "0"\n')
    ws.write("setup.cfg", "[tool:pytest]\ntestpaths = tests\n")
    with pytest.raises(ConfigError) as exc:
        ws.run(testing.Selection(pytest_args=("--doctest-glob=README.rst",)))
    assert exc.value.hint is not None
    assert "addopts = --doctest-glob=README.rst" in exc.value.hint
    assert "[tool:pytest] in setup.cfg" in exc.value.hint
    assert "pyproject.toml" not in exc.value.hint and "--doctest-modules" not in exc.value.hint
