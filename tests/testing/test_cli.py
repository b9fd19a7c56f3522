"""`maestro test` / `maestro stale` through the command line (typer), as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from project_python import project_python
from testing_helpers import Workspace
from typer.testing import CliRunner

from maestro.cli import test_cmd, workspace_cmd
from maestro.cli.fast import parse_test_args

app = typer.Typer()
app.command("test", cls=test_cmd.TestCommand)(test_cmd.test)
app.command("stale", cls=test_cmd.TestCommand)(workspace_cmd.stale)


@pytest.fixture
def cli(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    monkeypatch.chdir(ws.root)
    return ws


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_exit_codes_summary_and_cache(cli: Workspace) -> None:
    code, out = invoke("test")
    assert code == 0, out
    assert "5 passed" in out and "ran 4 files, 0 cached" in out
    code, out = invoke("test", "--all")
    assert code == 0 and "ran 0 files, 4 cached" in out
    cli.edit("pkg/b.py", "return a * b", "return a + b")
    code, out = invoke("test")
    assert code == 1
    assert "inputs changed: pkg/b.py" in out
    assert "FAILED tests/test_b.py::test_mul" in out
    assert "tests/test_b.py:5: AssertionError: assert 5 == 6" in out
    code, out = invoke("stale", "--no-daemon")
    assert code == 0 and "tests/test_b.py" in out and "failed last time" in out


def test_stale_answers_for_the_run_s_pytest_arguments(
    cli: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`maestro stale` said every file was stale after a run with PYTEST_ADDOPTS set (its keys
    were those of a run without them) where `maestro test` served them all from the cache."""
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:randomly")
    code, out = invoke("test")
    assert code == 0 and "ran 4 files, 0 cached" in out, out
    code, out = invoke("stale", "--no-daemon")
    assert code == 0 and "0 of 4 test files stale" in out, out
    code, out = invoke("stale", "--no-daemon", "--", "-k", "square")
    assert code == 0 and "4 of 4 test files stale" in out, out
    monkeypatch.delenv("PYTEST_ADDOPTS")
    code, out = invoke("stale", "--no-daemon")
    assert code == 0 and "4 of 4 test files stale" in out, out


def test_stale_reads_the_paths_among_the_run_s_arguments_as_test_does(cli: Workspace) -> None:
    """After `maestro test -- tests/test_c.py` served or ran it, `maestro stale --
    tests/test_c.py` said 'tests/test_c.py  inputs changed: pytest arguments' and listed the
    other files (python-json-logger, ZB): the paths choose the files, as for `maestro test`,
    and are no pytest arguments of a file's key."""
    code, out = invoke("test", "--", "tests/test_c.py")
    assert code == 0 and "ran 1 file" in out, out
    code, out = invoke("stale", "--no-daemon", "--", "tests/test_c.py", "--junitxml=out.xml")
    assert code == 0 and "0 of the test files tests/test_c.py names stale" in out, out
    code, out = invoke("stale", "--no-daemon", "--", "tests")
    assert code == 0 and "3 of the test files tests names stale" in out, out


def test_pytest_args_after_double_dash(cli: Workspace) -> None:
    code, out = invoke("test", "tests/test_c.py", "--", "-k", "zero")
    assert code == 0, out
    assert "1 passed" in out


def test_usage_errors_and_no_tests(cli: Workspace) -> None:
    assert invoke("test", "tests/nope.py")[0] == 4
    assert invoke("test", "--all", "tests/test_a.py")[0] == 4
    code, out = invoke("test", "--", "--bogus")  # pytest's usage error, not an internal one
    assert code == 4 and "pytest refused the run: unrecognized arguments: --bogus" in out
    cli.write("tests/test_empty.py", "X = 1\n")
    assert invoke("test", "tests/test_empty.py")[0] == 5


def test_pytest_spellings_of_the_junit_option_and_a_pytest_option_before_the_dash(
    cli: Workspace, tmp_path: Path
) -> None:
    report = tmp_path / "junit.xml"
    code, out = invoke("test", "--junitxml", str(report))  # pytest's own spelling
    assert code == 0, out
    assert report.read_text().count("<testcase") == 5
    plain = parse_test_args(["test", "--junitxml", str(report)])
    assert plain is not None and plain.junit_xml == str(report)
    code, out = invoke("test", "--doctest-modules", "tests")
    assert code == 2
    assert "No such option: --doctest-modules" in out
    assert "pytest's own options go after `--`" in out
    assert "maestro test -- --doctest-modules" in out


def test_junit_merges_cached_and_fresh(cli: Workspace, tmp_path: Path) -> None:
    invoke("test", "tests/test_a.py")
    report = tmp_path / "junit.xml"
    code, out = invoke("test", "--junit-xml", str(report))
    assert code == 0, out
    xml = report.read_text()
    assert xml.count("<testcase") == 5
    assert 'tests="5"' in xml and xml.count('name="maestro.cached"') == 1


def test_junit_marks_the_served_tests_of_a_file_run_in_part(cli: Workspace, tmp_path: Path) -> None:
    # autopep8 2.3.2: "1 to run (565 of their tests cached)", and no test of the 567 in the
    # JUnit file had the maestro.cached property: a CI could not tell run from served
    import xml.etree.ElementTree as ET

    _impacted_with_a_file_run_in_part(cli)  # pkg/b.py changed: test_d.py's test_mul re-ran
    cli.edit("pkg/b.py", "return b * a", "return b * a * 1")
    report = tmp_path / "junit.xml"
    code, out = invoke("test", "--junit-xml", str(report))
    assert code == 0 and "tests/test_d.py  1 of 2 tests" in out, out
    cached = {
        f"{case.get('classname')}.{case.get('name')}"
        for case in ET.parse(report).iter("testcase")
        if any(p.get("name") == "maestro.cached" for p in case.iter("property"))
    }
    assert "tests.test_d.test_add" in cached  # served: its file ran in part
    assert "tests.test_d.test_mul" not in cached  # run
    assert {"tests.test_a.test_add", "tests.test_data.test_data"} <= cached  # files served
    assert not {"tests.test_b.test_mul", "tests.test_c.test_square"} & cached


def test_impacted_with_explicit_changed_paths(cli: Workspace) -> None:
    invoke("test")
    cli.edit("pkg/c.py", "mul(x, x)", "x * x")
    code, out = invoke("test", "--impacted", "pkg/c.py")
    assert code == 0, out
    # one file is "1 test file" and "ran 1 file", as pytest words one ("1 error")
    assert "1 test file: 0 cached (0 tests), 1 to run" in out and "ran 1 file, 0 cached" in out
    assert "1 files" not in out and "1 test files" not in out, out


def _impacted_with_a_file_run_in_part(cli: Workspace, more_tests: str = "") -> str:
    """`maestro test --impacted pkg/b.py` once tests/test_d.py (its tests, then test_mul)
    has per-test records: only test_mul of that file re-runs."""
    cli.write(
        "tests/test_d.py",
        """
        from pkg.a import add
        from pkg.b import mul


        def test_add():
            assert add(1, 2) == 3
        """
        + more_tests
        + """

        def test_mul():
            assert mul(2, 3) == 6
        """,
    )
    invoke("test")
    cli.edit("tests/test_d.py", "== 3", "== 3, 'add'")
    invoke("test")  # every node has a per-test record now
    cli.edit("pkg/b.py", "return a * b", "return b * a")
    code, out = invoke("test", "--impacted", "pkg/b.py")
    assert code == 0, out
    return out


def test_the_selection_note_counts_a_file_run_in_part_as_in_part(cli: Workspace) -> None:
    # marshmallow: "4 run whole, 0 in part" said of files whose lines read "13 of 396 tests"
    out = _impacted_with_a_file_run_in_part(cli)
    assert "tests/test_d.py  1 of 2 tests" in out
    assert "3 test files `maestro impacted` lists, 2 run whole, 1 in part, 0 not at all" in out


def test_the_plan_counts_the_cached_tests_of_a_file_run_in_part(cli: Workspace) -> None:
    # isort: "1 test files: 0 cached (0 tests), 1 to run" while 31 of its tests were served
    more = """

        def test_add_again():
            assert add(2, 2) == 4
        """
    out = _impacted_with_a_file_run_in_part(cli, more)
    assert "tests/test_d.py  1 of 3 tests" in out
    assert "3 test files: 0 cached (0 tests), 3 to run (2 of their tests cached)" in out, out


def test_parametrized_failure_ids_are_printed_verbatim(cli: Workspace) -> None:
    cli.write(
        "tests/test_p.py",
        "import pytest\n\n@pytest.mark.parametrize('x', ['hook1-ata'])\n"
        "def test_p(x):\n    assert x == '[dim]'\n",
    )
    code, out = invoke("test", "tests/test_p.py")
    assert code == 1
    assert "FAILED tests/test_p.py::test_p[hook1-ata]" in out
    assert "[dim]" in out  # the message is text, not markup
