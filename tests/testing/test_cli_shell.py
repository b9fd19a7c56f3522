"""`maestro` as a person or a CI job runs it: the real console script in a subprocess, its
stdout a pipe (not a terminal), started from the project, a subfolder or outside any project."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from project_python import project_python
from testing_helpers import Workspace
from workspace_procs import waiting_pytest

MAESTRO = str(Path(sys.executable).with_name("maestro"))
LONG_ID = "a" * 60


@pytest.fixture
def cli(ws: Workspace) -> Workspace:
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    return ws


def maestro(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # rich's width when piped
    env["MAESTRO_DAEMON"] = "off"
    return subprocess.run(
        [MAESTRO, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_piped_output_keeps_node_ids_and_messages_on_one_line(cli: Workspace) -> None:
    cli.write(
        "tests/test_long.py",
        f"""
        import pytest

        @pytest.mark.parametrize("x", ["{LONG_ID}"])
        def test_a_rather_long_name_for_a_parametrized_test(x):
            assert x == "b" * 70
        """,
    )
    done = maestro(cli.root, "test", "tests/test_long.py")
    assert done.returncode == 1, done.stdout + done.stderr
    node = f"tests/test_long.py::test_a_rather_long_name_for_a_parametrized_test[{LONG_ID}]"
    assert f"FAILED {node}\n" in done.stdout
    assert (
        any(
            line.startswith("    tests/test_long.py:5: AssertionError") and line.endswith("'bbbbb'")
            for line in done.stdout.splitlines()
        )
        or "tests/test_long.py:5: AssertionError: assert" in done.stdout
    )
    summary = [line for line in done.stdout.splitlines() if " failed" in line]
    assert summary and "ran 1 file," in summary[-1] and "pytest" in summary[-1]


def test_impacted_with_nothing_impacted_exits_0_and_says_so(cli: Workspace) -> None:
    assert maestro(cli.root, "test").returncode == 0
    done = maestro(cli.root, "test", "--impacted", "README.md")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing impacted" in done.stdout


def test_from_a_subfolder_runs_that_folders_tests_like_pytest(cli: Workspace) -> None:
    cli.write("tests/unit/test_u.py", "def test_u():\n    assert True\n")
    done = maestro(cli.root / "tests" / "unit", "test")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tests under tests/unit/" in done.stdout
    assert "1 test file:" in done.stdout and "1 passed" in done.stdout
    whole = maestro(cli.root / "tests" / "unit", "test", "--all")
    assert "6 passed" in whole.stdout, whole.stdout
    source = maestro(cli.root / "pkg", "test")
    assert source.returncode == 5, source.stdout + source.stderr
    assert "no test files under pkg/" in source.stdout


def test_outside_a_project_is_an_error_saying_where_and_how_to_fix(tmp_path: Path) -> None:
    bare = tmp_path / "not-a-project"
    bare.mkdir()
    done = maestro(bare, "test")
    assert done.returncode == 4
    assert f"{bare}: not inside a project" in done.stderr
    assert "pyproject.toml" in done.stderr and "hint:" in done.stderr
    assert "--root" in done.stderr and "maestro.toml" in done.stderr
    assert maestro(bare, "impacted").returncode == 2
    assert not (bare / ".maestro").exists() and list(bare.iterdir()) == []


def test_version_and_help_without_internal_notes(tmp_path: Path) -> None:
    from maestro import __version__

    done = maestro(tmp_path, "--version")
    assert done.returncode == 0 and done.stdout.strip() == f"maestro {__version__}"
    helped = maestro(tmp_path, "test", "--help")
    assert helped.returncode == 0
    assert "via_daemon" not in helped.stdout and "RunTestsResult" not in helped.stdout
    assert "subfolder" in helped.stdout


def test_syntax_error_in_a_test_file_has_its_line(cli: Workspace) -> None:
    cli.write("tests/test_broken.py", "import os\n\n\ndef test_x(:\n    pass\n")
    done = maestro(cli.root, "test", "tests/test_broken.py")
    assert done.returncode == 1
    assert "tests/test_broken.py:4: collection failed: SyntaxError" in done.stdout


def test_a_deleted_module_is_named_as_imported_not_from_the_root(cli: Workspace) -> None:
    cli.write("src/lib/__init__.py", "")
    cli.write("src/lib/gone.py", "def f():\n    return 1\n")
    cli.write("tests/test_gone.py", "from lib.gone import f\n\n\ndef test_f():\n    pass\n")
    (cli.root / "src/lib/gone.py").unlink()
    done = maestro(cli.root, "impacted", "src/lib/gone.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "imports lib.gone → src/lib/gone.py" in done.stdout
    assert "src.lib" not in done.stdout


def test_why_test_impacted_runs_fewer_files_than_impacted_lists(cli: Workspace) -> None:
    cli.write("pkg/b.py", "def mul(a, b):\n    return a * b\n\n\ndef unused():\n    return 1\n")
    assert maestro(cli.root, "test").returncode == 0
    cli.edit("pkg/b.py", "def unused", "# traced from the second run on\ndef unused")
    assert maestro(cli.root, "test").returncode == 0  # before 3.12: a first run is untraced
    cli.edit("pkg/b.py", "return 1", "return 2")
    listed = maestro(cli.root, "impacted", "pkg/b.py")
    assert "2 test files impacted" in listed.stdout, listed.stdout
    done = maestro(cli.root, "test", "--impacted", "pkg/b.py")
    assert done.returncode == 0, done.stdout + done.stderr
    notes = [line for line in done.stdout.splitlines() if "node-level selection" in line]
    assert len(notes) == 1, done.stdout
    assert "of the 2 test files `maestro impacted` lists" in notes[0]
    assert "2 not at all" in notes[0]


def test_after_a_revert_inputs_changed_names_only_what_differs_from_a_kept_result(
    cli: Workspace,
) -> None:
    assert maestro(cli.root, "test").returncode == 0
    original = (cli.root / "pkg/b.py").read_text()
    cli.edit("pkg/b.py", "return a * b", "return b * a")
    assert maestro(cli.root, "test").returncode == 0
    (cli.root / "pkg/b.py").write_text(original)  # undone...
    cli.edit("pkg/c.py", "return mul(x, x)", "return x * x")  # ...and another edit made
    done = maestro(cli.root, "test")
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("  tests/test_c.py"))
    assert "inputs changed: pkg/c.py" in line and "pkg/b.py" not in line, done.stdout
    assert not any(ln.startswith("  tests/test_b.py") for ln in done.stdout.splitlines())


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="checks processes through /proc")
def test_a_run_served_from_the_cache_leaves_no_pytest_process_behind(cli: Workspace) -> None:
    first = maestro(cli.root, "test", "--no-daemon")
    assert first.returncode == 0 and "0 cached" in first.stdout, first.stdout + first.stderr
    again = maestro(cli.root, "test", "--no-daemon")
    assert again.returncode == 0 and "ran 0 files" in again.stdout, again.stdout + again.stderr
    assert not waiting_pytest(cli.root.resolve())


def test_explain_keeps_parameter_ids_in_its_text(cli: Workspace) -> None:
    cli.write(
        "tests/test_params.py",
        """
        import pytest

        @pytest.mark.parametrize("x", ["case0", "bold"])
        def test_x(x):
            assert x != "bold"
        """,
    )
    assert maestro(cli.root, "test", "tests/test_params.py").returncode == 1
    done = maestro(cli.root, "explain", "tests/test_params.py")
    assert done.returncode == 0, done.stdout + done.stderr
    # rich read `[case0]` as a markup tag: every parameter set printed as plain `test_x`
    assert "tests/test_params.py::test_x[case0] is served from the cache" in done.stdout
    assert "tests/test_params.py::test_x[bold] failed last time" in done.stdout, done.stdout


def test_explain_says_once_what_many_tests_share(cli: Workspace) -> None:
    cli.write(
        "tests/test_many.py",
        "".join(f"def test_{i}():\n    assert True\n\n\n" for i in range(40)),
    )
    assert maestro(cli.root, "test", "tests/test_many.py").returncode == 0
    done = maestro(cli.root, "explain", "tests/test_many.py")
    lines = done.stdout.splitlines()
    assert lines[1:] == [
        "  cached 40 tests (test_0, test_1, test_2 and 37 more) are served from the cache: "
        "no input changed since its last run"
    ], done.stdout
    one = maestro(cli.root, "explain", "tests/test_many.py::test_7").stdout
    assert (
        "tests/test_many.py::test_7 is served from the cache: no input changed since its last run"
        in one
    )


def test_explain_of_a_module_says_it_is_not_a_test_file(cli: Workspace) -> None:
    assert maestro(cli.root, "test").returncode == 0
    done = maestro(cli.root, "explain", "pkg/b.py")
    # it said "pkg/b.py: no cached result / the file runs as a whole", as if it were a test
    # file about to run (cachetools' src/cachetools/keys.py in a user trial)
    assert done.returncode != 0, done.stdout + done.stderr
    out = done.stdout + done.stderr
    assert "pkg/b.py is not a test file" in out and "runs as a whole" not in out, out
    assert "maestro impacted pkg/b.py" in out
    # a test file never run yet still has its answer
    cli.write("tests/test_new.py", "def test_new():\n    assert True\n")
    fresh = maestro(cli.root, "explain", "tests/test_new.py")
    assert fresh.returncode == 0 and "no cached result" in fresh.stdout, fresh.stdout


def test_explain_after_an_undone_edit_says_a_stored_result_has_these_inputs(
    cli: Workspace,
) -> None:
    # docopt-ng: after a revert, explain said "served from the cache: no input changed",
    # though the file had changed since the last run (a result for its inputs was stored)
    assert maestro(cli.root, "test", "tests/test_a.py").returncode == 0
    cli.edit("pkg/a.py", "return a + b", "return b + a")
    assert maestro(cli.root, "test", "tests/test_a.py").returncode == 0  # a per-test record
    cli.edit("pkg/a.py", "return b + a", "return b + a + 0")
    assert maestro(cli.root, "test", "tests/test_a.py").returncode == 0
    cli.edit("pkg/a.py", "return b + a + 0", "return b + a")
    told = maestro(cli.root, "explain", "tests/test_a.py::test_add").stdout
    said = " ".join(told.split())
    assert "tests/test_a.py::test_add is served from the cache: pkg/a.py changed since the " in said
    assert "and a result for these exact inputs is stored (from the run of " in said, told
    # served once, the result is the baseline of the next change; the file still last ran
    # with the other content (itsdangerous, under the daemon, which plans on every save)
    assert "0 to run" in maestro(cli.root, "test", "tests/test_a.py").stdout
    again = " ".join(maestro(cli.root, "explain", "tests/test_a.py::test_add").stdout.split())
    assert again == said, again


def test_explain_of_a_failed_file_with_no_change_says_no_input_changed(cli: Workspace) -> None:
    # itsdangerous: with nothing changed, the passing tests of a file whose failed test runs
    # again were "served from the cache: it executed nothing that changed"
    cli.write("tests/test_two.py", "def test_ok():\n    pass\n\n\ndef test_bad():\n    assert 0\n")
    assert maestro(cli.root, "test", "tests/test_two.py").returncode == 1
    told = maestro(cli.root, "explain", "tests/test_two.py").stdout
    assert (
        "tests/test_two.py::test_ok is served from the cache: no input changed since its last run"
        in told
    ), told
    assert "tests/test_two.py::test_bad failed last time" in told, told


def test_explain_of_a_node_the_file_does_not_have_says_so(cli: Workspace) -> None:
    # itsdangerous: `explain FILE::test_nope` said the test "is served from the cache", exit 0;
    # `explain FILE::test_base64` (a parametrized function) did too, of no node of the file
    cli.write(
        "tests/test_p.py",
        "import pytest\n\n\n@pytest.mark.parametrize('x', [1, 2])\ndef test_p(x):\n    pass\n",
    )
    assert maestro(cli.root, "test", "tests/test_p.py").returncode == 0
    missing = maestro(cli.root, "explain", "tests/test_p.py::test_nope")
    assert missing.returncode == 4, missing.stdout
    assert "tests/test_p.py::test_nope is not a test of tests/test_p.py" in missing.stderr
    both = " ".join(maestro(cli.root, "explain", "tests/test_p.py::test_p").stdout.split())
    assert "2 tests (test_p[1], test_p[2]) are served from the cache" in both, both


def test_stale_keeps_parameter_ids_in_its_text(cli: Workspace) -> None:
    cli.write(
        "tests/test_params.py",
        """
        import pytest

        @pytest.mark.parametrize("x", ["case0", "bold"])
        def test_x(x):
            assert x != "bold"
        """,
    )
    assert maestro(cli.root, "test", "tests/test_params.py").returncode == 1
    done = maestro(cli.root, "stale")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tests/test_params.py::test_x[bold] failed last time" in done.stdout, done.stdout


def test_files_that_did_not_finish_say_what_pytest_said(cli: Workspace) -> None:
    cli.write(
        "tests/conftest.py",
        "def pytest_runtest_logreport(report):\n    raise RuntimeError('boom in a hook')\n",
    )
    done = maestro(cli.root, "test", "tests/test_a.py")
    assert done.returncode != 0
    assert "1 file did not finish" in done.stdout
    assert "pytest said:" in done.stdout
    assert "RuntimeError: boom in a hook" in done.stdout


# A coverage gate as pytest-cov's: after the tests, it fails the session without failing a test.
GATE = """
import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session):
    result = yield
    session.testsfailed += 1
    return result


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line("FAIL Required test coverage of 99% not reached.")
"""


def test_a_session_failed_by_a_plugin_with_no_test_failing_is_told(cli: Workspace) -> None:
    """pytest exits 1 when a plugin fails the session after the tests (pytest-cov's
    --cov-fail-under); a gate over the tests that ran is no gate over a run served partly from
    the cache, so the exit code stays the tests' outcome, and the run says what pytest said."""
    cli.write("tests/conftest.py", GATE)
    plain = subprocess.run(
        [str(project_python()), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_a.py"],
        cwd=cli.root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert plain.returncode == 1
    done = maestro(cli.root, "test", "tests/test_a.py")
    assert done.returncode == 0, done.stdout
    assert "pytest failed its session with no test failing" in done.stdout
    assert "FAIL Required test coverage of 99% not reached." in done.stdout
