"""A cached result must be what pytest would say for the same inputs, node for node.

Each test reproduces a way the cache once lied (a stale pass, a false failure, a miscount) on a
real workspace with a real pytest child, then checks the next run against the truth.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from project_python import project_python
from test_fidelity_trials import pytest_says
from testing_helpers import Workspace, ran
from typer.testing import CliRunner

from maestro.cli.app import app
from maestro.engine import testing
from maestro.engine.interpreter import Interpreter


def outcomes(summary: testing.Summary) -> dict[str, str]:
    return {t.node_id: t.outcome for r, _ in summary.results() for t in r.tests}


def test_code_run_in_a_python_subprocess_is_an_input(ws: Workspace) -> None:
    ws.write("pkg/child.py", "def answer():\n    return 42\n")
    ws.write(
        "tests/test_child.py",
        """
        import subprocess, sys

        def test_child_answer():
            out = subprocess.run(
                [sys.executable, "-c", "import pkg.child; print(pkg.child.answer())"],
                capture_output=True, text=True, check=True,
            ).stdout
            assert out.strip() == "42"
        """,
    )
    assert outcomes(ws.run())["tests/test_child.py::test_child_answer"] == "passed"
    assert "tests/test_child.py" not in ran(ws.run())
    ws.edit("pkg/child.py", "return 42", "return 41")
    summary = ws.run()
    assert "tests/test_child.py" in ran(summary)
    assert outcomes(summary)["tests/test_child.py::test_child_answer"] == "failed"


def test_a_workspace_script_run_by_path_in_a_python_child(ws: Workspace) -> None:
    """`python pkg/cli.py`: the interpreter itself opens the script, with no Python frame on
    the stack; the child's recorder once raised there, and the child failed to open its script
    ("[Errno 22] Invalid argument") under Maestro only (tabulate's CLI tests)."""
    ws.write("pkg/cli.py", 'if __name__ == "__main__":\n    print("hello")\n')
    ws.write(
        "tests/test_cli_script.py",
        """
        import subprocess, sys

        def test_script():
            out = subprocess.run(
                [sys.executable, "pkg/cli.py"], capture_output=True, text=True
            )
            assert out.returncode == 0, out.stderr
            assert out.stdout == "hello\\n"
        """,
    )
    assert outcomes(ws.run())["tests/test_cli_script.py::test_script"] == "passed"
    assert "tests/test_cli_script.py" not in ran(ws.run())
    ws.edit("pkg/cli.py", 'print("hello")', 'print("hello!")')
    summary = ws.run()
    assert "tests/test_cli_script.py" in ran(summary)
    assert outcomes(summary)["tests/test_cli_script.py::test_script"] == "failed"


def test_a_file_conftest_reads_at_import_is_an_input(ws: Workspace) -> None:
    ws.write("tests/conf.json", '{"expected": 3}\n')
    ws.write(
        "tests/conftest.py",
        """
        import json, pathlib

        CONF = json.loads((pathlib.Path(__file__).parent / "conf.json").read_text())
        """,
    )
    ws.write(
        "tests/test_conf.py",
        """
        from conftest import CONF

        def test_conf():
            assert CONF["expected"] == 3
        """,
    )
    assert outcomes(ws.run())["tests/test_conf.py::test_conf"] == "passed"
    ws.write("tests/conf.json", '{"expected": 4}\n')
    summary = ws.run()
    assert "tests/test_conf.py" in ran(summary)
    assert outcomes(summary)["tests/test_conf.py::test_conf"] == "failed"


def test_a_file_a_session_fixture_reads_counts_for_every_file_using_it(ws: Workspace) -> None:
    ws.write("tests/setting.txt", "on\n")
    ws.write(
        "tests/conftest.py",
        """
        import pathlib, pytest

        @pytest.fixture(scope="session")
        def setting():
            return (pathlib.Path(__file__).parent / "setting.txt").read_text().strip()
        """,
    )
    for name in ("one", "two"):
        ws.write(
            f"tests/test_{name}.py", f"def test_{name}(setting):\n    assert setting == 'on'\n"
        )
    first = outcomes(ws.run())
    assert first["tests/test_one.py::test_one"] == first["tests/test_two.py::test_two"] == "passed"
    ws.write("tests/setting.txt", "off\n")
    summary = ws.run()
    assert {"tests/test_one.py", "tests/test_two.py"} <= set(ran(summary))
    after = outcomes(summary)
    assert after["tests/test_one.py::test_one"] == after["tests/test_two.py::test_two"] == "failed"


def test_a_file_read_by_a_non_python_child_reruns_conservatively(ws: Workspace) -> None:
    ws.write("tests/words.txt", "hello\n")
    ws.write(
        "tests/test_cat.py",
        """
        import subprocess

        def test_cat():
            out = subprocess.run(["head", "tests/words.txt"], capture_output=True, text=True)
            assert out.stdout == "hello\\n"
        """,
    )
    assert outcomes(ws.run())["tests/test_cat.py::test_cat"] == "passed"
    assert "tests/test_cat.py" not in ran(ws.run())  # still cacheable while nothing changes
    ws.write("tests/words.txt", "bye\n")
    summary = ws.run()
    assert outcomes(summary)["tests/test_cat.py::test_cat"] == "failed"
    cat = next(t for r, _ in summary.results() for t in r.tests if t.node_id.endswith("test_cat"))
    assert any("head" in note for note in cat.opaque), cat.opaque
    said = CliRunner().invoke(
        app, ["explain", "tests/test_cat.py::test_cat", "--root", str(ws.root)],
    )  # fmt: skip
    assert said.exit_code == 0, said.output
    assert "depends on the whole workspace" in said.output and "not Python" in said.output


def test_a_module_outside_the_workspace_is_keyed_by_content(ws: Workspace, outside: Path) -> None:
    (outside / "extlib.py").write_text("def value():\n    return 1\n")
    ws.write(
        "tests/test_ext.py",
        f"""
        import sys
        sys.path.insert(0, {str(outside)!r})
        import extlib

        def test_ext():
            assert extlib.value() == 1
        """,
    )
    assert outcomes(ws.run())["tests/test_ext.py::test_ext"] == "passed"
    # another size: the same size within the bytecode's second would import the stale .pyc
    # (under plain pytest too: outside the workspace the bytecode is left to the interpreter)
    (outside / "extlib.py").write_text("def value():\n    return 22\n")
    summary = ws.run()
    assert outcomes(summary)["tests/test_ext.py::test_ext"] == "failed"


def test_collect_ignore_is_honoured(ws: Workspace) -> None:
    ws.write("tests/conftest.py", 'collect_ignore = ["test_legacy.py"]\n')
    ws.write("tests/test_legacy.py", "def test_legacy():\n    assert False\n")
    summary = ws.run()
    assert not any("test_legacy" in node for node in outcomes(summary))
    assert summary.failed == 0 and summary.errors == 0


def test_collect_ignore_with_pytest_8_runs_the_other_files(
    ws: Workspace, interpreter_pytest8: Interpreter
) -> None:
    ws.write("tests/conftest.py", 'collect_ignore = ["test_legacy.py"]\n')
    ws.write("tests/test_legacy.py", "import not_installed_anywhere\n")
    summary = Workspace(ws.root, interpreter_pytest8).run()
    assert summary.errors == summary.failed == 0
    assert outcomes(summary)["tests/test_a.py::test_add"] == "passed"
    assert not any("test_legacy" in node for node in outcomes(summary))


def test_a_conftest_ignoring_paths_is_asked_only_below_its_folder(ws: Workspace) -> None:
    # PyYAML 6.0.4's tests/legacy_tests/conftest.py: its pytest_ignore_collect ignores every
    # path but two file names, its own folder included. pytest's walk asks a folder's conftest
    # about what is in the folder, never about the folder itself nor about other folders:
    # asked of every path (and of its own folder), nothing ran, exit 5, "0 passed" cached
    ws.write(
        "tests/legacy/conftest.py",
        "def pytest_ignore_collect(collection_path):\n"
        "    return collection_path.name not in ('test_keep.py',)\n",
    )
    ws.write("tests/legacy/test_keep.py", "def test_kept():\n    assert True\n")
    ws.write("tests/legacy/test_helper.py", "def test_never_collected():\n    assert False\n")
    expected = pytest_says(ws)
    assert expected["tests/legacy/test_keep.py::test_kept"] == "passed"
    assert not any("test_helper" in node for node in expected)
    for _ in range(2):  # first run, then from the cache
        summary = ws.run()
        assert outcomes(summary) == {node: "passed" for node in expected}
        assert summary.exit_code == 0


def test_module_level_skip_counts_as_pytest_counts_it(ws: Workspace) -> None:
    ws.write(
        "tests/test_optional.py",
        """
        import pytest

        pytest.skip("twisted is not installed", allow_module_level=True)

        def test_never():
            pass
        """,
    )
    for _ in range(2):  # first run, then from the cache
        summary = ws.run()
        assert outcomes(summary).get("tests/test_optional.py") == "skipped"
        assert summary.skipped == 1
    junit = next(r for r, _ in summary.results() if r.tests[0].node_id.startswith("tests/test_opt"))
    assert junit.junit is not None


def test_revert_of_a_data_file_read_at_import_is_not_flaky(ws: Workspace) -> None:
    ws.write("tests/limits.txt", "3\n")
    ws.write(
        "tests/test_limits.py",
        """
        import pathlib

        LIMIT = int(pathlib.Path("tests/limits.txt").read_text())

        def test_limit():
            assert LIMIT == 3
        """,
    )
    node = "tests/test_limits.py::test_limit"
    assert outcomes(ws.run())[node] == "passed"
    ws.write("tests/limits.txt", "4\n")
    assert outcomes(ws.run())[node] == "failed"
    ws.write("tests/limits.txt", "3\n")
    summary = ws.run()
    assert outcomes(summary)[node] == "passed"
    assert summary.flaky == 0


def test_scratch_files_written_during_the_run_are_not_inputs(ws: Workspace) -> None:
    ws.write(".gitignore", ".scratch/\n")
    ws.write(
        "tests/test_scratch.py",
        """
        import os, pathlib, uuid

        def test_scratch():
            d = pathlib.Path(".scratch"); d.mkdir(exist_ok=True)
            p = d / uuid.uuid4().hex
            p.write_text("x")
            assert p.read_text() == "x"
            assert os.listdir(d)
        """,
    )
    ws.run()
    assert "tests/test_scratch.py" not in ran(ws.run())


def test_path_is_not_a_raw_input(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    ws.run()
    monkeypatch.setenv("PATH", f"/nonexistent/bin{os.pathsep}{os.environ['PATH']}")
    assert ran(ws.run()) == []


def test_a_python_child_without_a_record_is_conservative(ws: Workspace) -> None:
    ws.write("pkg/isolated.py", "X = 1\n")
    ws.write(
        "tests/test_isolated.py",
        """
        import subprocess, sys

        def test_isolated():
            code = "import sys; sys.path.insert(0, '.'); import pkg.isolated as m; print(m.X)"
            out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True,
                                 text=True, check=True).stdout
            assert out.strip() == "1"
        """,
    )
    assert outcomes(ws.run())["tests/test_isolated.py::test_isolated"] == "passed"
    ws.write("pkg/isolated.py", "X = 2\n")
    assert outcomes(ws.run())["tests/test_isolated.py::test_isolated"] == "failed"


def test_sitecustomize_of_the_environment_still_runs(ws: Workspace, tmp_path: Path) -> None:
    """Our child recorder rides on sitecustomize: a user's own must still run after it."""
    site = tmp_path / "usersite"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import os\nos.environ['USER_SITE_RAN'] = '1'\n")
    ws.write(
        "tests/test_site.py",
        f"""
        import subprocess, sys, os

        def test_site():
            env = dict(os.environ)
            env["PYTHONPATH"] = env.get("PYTHONPATH", "") + os.pathsep + {str(site)!r}
            out = subprocess.run(
                [sys.executable, "-c", "import os; print(os.environ.get('USER_SITE_RAN'))"],
                capture_output=True, text=True, env=env, check=True,
            ).stdout
            assert out.strip() == "1"
        """,
    )
    assert outcomes(ws.run())["tests/test_site.py::test_site"] == "passed"


def test_pytest_agrees_on_the_subprocess_workspace(ws: Workspace) -> None:
    """Sanity: the workspace's own tests pass under plain pytest (the truth we compare with)."""
    proc = subprocess.run(
        [str(project_python()), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=ws.root, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_revert_after_a_collection_error_from_a_data_file_is_not_flaky(ws: Workspace) -> None:
    ws.write("tests/limits.json", '{"limit": 3}\n')
    ws.write(
        "tests/test_limits.py",
        """
        import json, pathlib

        LIMIT = json.loads(pathlib.Path("tests/limits.json").read_text())["limit"]

        def test_limit():
            assert LIMIT == 3

        def test_other():
            assert True
        """,
    )
    assert ws.run().passed >= 2
    ws.write("tests/limits.json", '{"limit": \n')  # broken: the module does not import
    broken = ws.run()
    assert broken.errors == 1
    ws.write("tests/limits.json", '{"limit": 3}\n')
    summary = ws.run()
    assert outcomes(summary)["tests/test_limits.py::test_limit"] == "passed"
    assert summary.flaky == 0
    assert summary.failed == summary.errors == 0


def test_a_file_a_shared_module_reads_at_import_counts_for_every_importer(ws: Workspace) -> None:
    ws.write("tests/limit.txt", "3\n")
    ws.write(
        "tests/shared.py",
        "import pathlib\n\nLIMIT = int(pathlib.Path('tests/limit.txt').read_text())\n",
    )
    for name in ("s1", "s2"):
        ws.write(f"tests/test_{name}.py", f"from shared import LIMIT\n\ndef test_{name}():\n"
                 "    assert LIMIT == 3\n")  # fmt: skip
    ws.run()
    ws.write("tests/limit.txt", "4\n")
    out = outcomes(ws.run())
    assert out["tests/test_s1.py::test_s1"] == out["tests/test_s2.py::test_s2"] == "failed"


def test_a_file_a_library_memoises_counts_for_every_test_file_using_it(ws: Workspace) -> None:
    """python-dateutil's zoneinfo: the tarball is read once, by the first test that needs it,
    then served from a module global to every later test file."""
    ws.write("pkg/table.txt", "3\n")
    ws.write(
        "pkg/table.py",
        """
        import pathlib

        _CACHE = {}

        def limit():
            if "limit" not in _CACHE:
                _CACHE["limit"] = int((pathlib.Path(__file__).parent / "table.txt").read_text())
            return _CACHE["limit"]
        """,
    )
    for name in ("t1", "t2", "t3"):
        ws.write(f"tests/test_{name}.py", f"from pkg.table import limit\n\ndef test_{name}():\n"
                 "    assert limit() == 3\n")  # fmt: skip
    ws.run()
    assert ran(ws.run()) == []
    ws.write("pkg/table.txt", "4\n")
    out = outcomes(ws.run())
    assert {out[f"tests/test_{n}.py::test_{n}"] for n in ("t1", "t2", "t3")} == {"failed"}
    ws.write("pkg/table.txt", "3\n")
    ws.run()
    assert ran(ws.run()) == []  # and it settles: no run re-runs the others for ever


def test_source_read_by_library_code_chains_no_module_to_a_test(ws: Workspace) -> None:
    """Code that reads Python sources (inspect, linecache, tracebacks) is not an import: it must
    not make a library module depend on a test file, nor every test on an opaque one."""
    ws.write(
        "pkg/show.py", "import inspect\n\n\ndef source_of(f):\n    return inspect.getsource(f)\n"
    )
    ws.write(
        "tests/test_show.py",
        "import subprocess\nfrom pkg.show import source_of\n\n\ndef test_show():\n"
        "    subprocess.run(['true'])\n    assert 'def test_show' in source_of(test_show)\n",
    )
    ws.run()
    ws.edit("pkg/a.py", "return a + b", "return b + a")
    assert ran(ws.run()) == ["tests/test_a.py", "tests/test_show.py"]  # opaque: it ran `true`
    graph = ws.graph()
    assert "tests/test_show.py" not in graph.index.dynamic.get("pkg/show.py", [])


def _edit_within_the_bytecodes_second(path: Path, old: str, new: str) -> None:
    """A same-size edit in the very second the last run wrote the file's bytecode, made
    deterministic: both the source and its `__pycache__` entries get that second's mtime."""
    assert len(old) == len(new)
    cached = list((path.parent / "__pycache__").glob(path.stem + ".*.pyc"))
    assert cached, "the first run wrote no bytecode for " + path.name
    second = int(path.stat().st_mtime)
    path.write_text(path.read_text().replace(old, new))
    os.utime(path, ns=(second * 10**9 + 900_000_000,) * 2)
    for pyc in cached:
        os.utime(pyc, ns=(second * 10**9 + 500_000_000,) * 2)


def test_a_same_size_edit_in_the_bytecodes_second_runs_the_new_code(ws: Workspace) -> None:
    # (pytest >= 8.4 checks its rewritten test files' bytecode by content; imported code is
    # checked by the interpreter, by mtime and size only)
    assert ws.run().failed == 0
    _edit_within_the_bytecodes_second(ws.root / "pkg/a.py", "a + b", "a - b")
    summary = ws.run()
    assert outcomes(summary)["tests/test_a.py::test_add"] == "failed"
    # nor was the old code's pass stored under the new content's key
    assert outcomes(ws.run())["tests/test_a.py::test_add"] == "failed"


def test_a_data_file_changed_while_the_tests_ran_keeps_no_pass(
    ws: Workspace, tmp_path: Path
) -> None:
    """The editor saves a file the first run's tests read while the run goes on: the passes of
    the old content must not be stored under the new content's key (the file is first hashed
    after the run)."""
    ready, go = tmp_path / "ready", tmp_path / "go"
    ws.write(
        "tests/test_slow.py",
        f"""
        import os, pathlib, time

        def test_reads_then_waits():
            seen = pathlib.Path("tests/data.txt").read_text().strip()
            os.mkdir({str(ready)!r})
            deadline = time.monotonic() + 30
            while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert seen == "ok"
        """,
    )

    def save_while_it_waits() -> None:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        (ws.root / "tests/data.txt").write_text("no\n")
        go.mkdir()

    saver = threading.Thread(target=save_while_it_waits)
    saver.start()
    try:
        first = outcomes(ws.run())
    finally:
        saver.join()
    assert first["tests/test_slow.py::test_reads_then_waits"] == "passed"
    assert first["tests/test_data.py::test_data"] == "passed"
    second = outcomes(ws.run())
    assert second["tests/test_slow.py::test_reads_then_waits"] == "failed"
    assert second["tests/test_data.py::test_data"] == "failed"


def test_a_case_file_added_to_a_directory_a_collection_walks_runs(ws: Workspace) -> None:
    # tomlkit's conftest parametrizes from os.walk over a data directory: a new case file is a
    # new test, which pytest runs and a cache keyed only by the files read never saw.
    ws.write("tests/cases/one.txt", "1\n")
    ws.write(
        "tests/conftest.py",
        """
        import os

        CASES = os.path.join(os.path.dirname(__file__), "cases")

        def pytest_generate_tests(metafunc):
            if "case" in metafunc.fixturenames:
                names = []
                for root, _, files in os.walk(CASES):
                    names += sorted(files)
                metafunc.parametrize("case", names)
        """,
    )
    ws.write(
        "tests/test_cases.py",
        """
        import os

        def test_case(case):
            with open(os.path.join(os.path.dirname(__file__), "cases", case)) as f:
                assert f.read().strip() == "1"
        """,
    )
    assert outcomes(ws.run())["tests/test_cases.py::test_case[one.txt]"] == "passed"
    assert ran(ws.run()) == []  # the import system's and pytest's own listings are no inputs
    ws.write("tests/cases/two.txt", "2\n")
    summary = ws.run()
    assert "tests/test_cases.py" in ran(summary)
    assert outcomes(summary)["tests/test_cases.py::test_case[two.txt]"] == "failed"
    (ws.root / "tests/cases/two.txt").unlink()
    summary = ws.run()
    assert "tests/test_cases.py::test_case[two.txt]" not in outcomes(summary)
    assert outcomes(summary)["tests/test_cases.py::test_case[one.txt]"] == "passed"


def test_a_file_added_where_a_test_globs_reruns_it(ws: Workspace) -> None:
    ws.write("data/a.csv", "x\n")
    ws.write(
        "tests/test_glob.py",
        """
        import pathlib

        DATA = pathlib.Path(__file__).parent.parent / "data"

        def test_one_table():
            assert len(list(DATA.glob("*.csv"))) == 1

        def test_unrelated():
            assert True
        """,
    )
    assert outcomes(ws.run())["tests/test_glob.py::test_one_table"] == "passed"
    assert ran(ws.run()) == []
    ws.write("data/b.csv", "y\n")
    summary = ws.run()
    assert outcomes(summary)["tests/test_glob.py::test_one_table"] == "failed"


def test_a_directory_a_python_child_lists_is_an_input(ws: Workspace) -> None:
    ws.write("data/a.csv", "x\n")
    ws.write(
        "tests/test_child_lists.py",
        """
        import subprocess, sys

        def test_one_table():
            out = subprocess.run(
                [sys.executable, "-c", "import os; print(len(os.listdir('data')))"],
                capture_output=True, text=True, check=True,
            ).stdout
            assert out.strip() == "1"
        """,
    )
    assert outcomes(ws.run())["tests/test_child_lists.py::test_one_table"] == "passed"
    assert "tests/test_child_lists.py" not in ran(ws.run())
    ws.write("data/b.csv", "y\n")
    assert outcomes(ws.run())["tests/test_child_lists.py::test_one_table"] == "failed"


def test_a_collection_error_then_a_pass_with_the_same_inputs_is_flagged(ws: Workspace) -> None:
    # A test module blocks a module at import, so a later file fails to collect in a full run;
    # run alone, it collects and passes. (Warnings filters changed at import are handled:
    # test_collection_context.py; other process state is not.)
    ws.write("pkg/extra.py", "VALUE = 1\n")
    ws.write("tests/test_a_blocks.py", "import sys\n\nsys.modules['pkg.extra'] = None\n")
    ws.write(
        "tests/test_b_collect.py",
        """
        import pkg.extra

        def test_ok():
            assert pkg.extra.VALUE == 1
        """,
    )
    first = outcomes(ws.run())
    assert first.get("tests/test_b_collect.py") == "error"  # as the full pytest run says
    second = ws.run()
    assert "tests/test_b_collect.py" in ran(second)
    flaky = [t.node_id for r, _ in second.results() for t in r.tests if t.flaky]
    assert flaky == ["tests/test_b_collect.py::test_ok"]


def test_undoing_an_edit_that_broke_collection_serves_a_non_python_childs_file(
    ws: Workspace,
) -> None:
    """A test running a non-Python program depends on the whole workspace; its file's last run
    (a collection error) recorded no such dependency, and the undo once re-ran the file although
    the result of these exact inputs was kept (toolz's test_parallel after a broken `__all__`)."""
    ws.write("pkg/words.py", "WORD = 'hello'\n")
    ws.write(
        "tests/test_echo.py",
        """
        import subprocess
        from pkg.words import WORD

        def test_echo():
            out = subprocess.run(["echo", WORD], capture_output=True, text=True)
            assert out.stdout == WORD + "\\n"
        """,
    )
    assert outcomes(ws.run())["tests/test_echo.py::test_echo"] == "passed"
    ws.write("pkg/words.py", "WORD = \n")  # the test file no longer imports
    assert ws.run().errors == 1
    ws.write("pkg/words.py", "WORD = 'hello'\n")
    summary = ws.run()
    assert outcomes(summary)["tests/test_echo.py::test_echo"] == "passed"
    assert "tests/test_echo.py" not in ran(summary)


def test_a_file_a_program_the_test_ran_wrote_for_it_is_no_input(ws: Workspace) -> None:
    """A test runs a non-Python program that writes an untracked file (a key, a report) and
    reads what it wrote: the file is the run's output, new each run, and must not keep the
    test from being cached. What the run did not write stays an input."""
    ws.write(".gitignore", "out/\n")
    ws.write("out/given.txt", "ok\n")
    ws.write(
        "tests/test_tool.py",
        """
        import pathlib, subprocess

        def test_tool():
            subprocess.run(["sh", "-c", "mkdir -p out; date +%s%N > out/stamp.txt"], check=True)
            assert pathlib.Path("out/stamp.txt").read_text().strip().isdigit()
            assert pathlib.Path("out/given.txt").read_text() == "ok\\n"
        """,
    )
    node = "tests/test_tool.py::test_tool"
    assert outcomes(ws.run())[node] == "passed"
    second = ws.run()
    assert "tests/test_tool.py" not in ran(second), second.notes
    (ws.root / "out/given.txt").write_text("no\n")
    third = ws.run()
    assert "tests/test_tool.py" in ran(third)
    assert outcomes(third)[node] == "failed"
