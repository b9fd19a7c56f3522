"""Node-level selection end to end: real pytest children, a real LMDB cache, edits between runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from precision_helpers import Workspace, ran_nodes

from maestro.cli.explain_cmd import node_verdict
from maestro.engine.interpreter import Interpreter
from maestro.engine.runner import run_pytest_sync
from maestro.engine.testing import FINGERPRINTS_DIR
from maestro.graph import fingerprints
from maestro.paths import workspace_state_dir

CALC = [
    "tests/test_calc.py::test_combo",
    "tests/test_calc.py::test_double",
    "tests/test_calc.py::test_triple",
]
ALL = sorted(
    [*CALC, "tests/test_data.py::test_does_not_read", "tests/test_data.py::test_reads",
     "tests/test_other.py::test_imports_only"]
)  # fmt: skip


def test_change_inside_one_function_reruns_only_its_executors(ws: Workspace) -> None:
    assert ran_nodes(ws.run()) == ALL
    ws.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    plan = ws.plan()
    calc = next(f for f in plan.files if f.target == "tests/test_calc.py")
    assert calc.run_nodes == ("tests/test_calc.py::test_triple",)
    assert calc.describe() == (
        "1 of 3 tests: tests/test_calc.py::test_triple executed pkg.calc.triple, "
        "changed at pkg/calc.py:8"
    )
    # the speculation model's change symbols, from the same fingerprints
    assert calc.symbols == ("triple",)
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_calc.py::test_triple"]
    assert (summary.exit_code, summary.passed) == (0, 6)  # the others served from the cache
    assert ran_nodes(ws.run()) == []  # the merged result is stored under the new key


def test_callee_change_reaches_callers(ws: Workspace) -> None:
    ws.run()
    ws.edit("pkg/calc.py", "return x * RATE", "return RATE * x")
    assert ran_nodes(ws.run()) == [
        "tests/test_calc.py::test_combo",
        "tests/test_calc.py::test_double",
    ]


def test_module_constant_reruns_the_tests_that_read_it(ws: Workspace) -> None:
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    plan = ws.plan()
    calc = next(f for f in plan.files if f.target == "tests/test_calc.py")
    assert calc.node_reasons["tests/test_calc.py::test_double"].startswith(
        "executed pkg.calc.double, which reads the changed pkg.calc.RATE"
    )
    summary = ws.run()
    # test_triple executed nothing that reads RATE; test_imports_only reads it itself.
    assert ran_nodes(summary) == [
        "tests/test_calc.py::test_combo",
        "tests/test_calc.py::test_double",
        "tests/test_other.py::test_imports_only",
    ]
    assert summary.exit_code == 0


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        # a value computed by code that is not evaluated (graph/module_values.py) may raise at
        # import: every importer re-runs
        (("RATE = 2", "RATE = round(5.0)"), "module-level code changed"),
        # names reachable without being named
        (("RATE = 2", "RATE = 5\nTABLE = globals()"), "module-level code changed"),
    ],
)
def test_module_constant_falls_back_to_every_importer(
    ws: Workspace, edit: tuple[str, str], why: str
) -> None:
    ws.run()
    ws.edit("pkg/calc.py", *edit)
    other = next(f for f in ws.plan().files if f.target == "tests/test_other.py")
    assert why in other.describe()
    assert ran_nodes(ws.run()) == [*CALC, "tests/test_other.py::test_imports_only"]


def test_module_constant_read_at_import_reruns_every_importer(ws: Workspace) -> None:
    ws.write("tests/test_other.py", "from pkg.calc import RATE\n\n\ndef test_imports_only():\n"
             "    assert RATE > 0\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    assert "tests/test_other.py::test_imports_only" in ran_nodes(ws.run())


def test_module_constant_reached_by_a_computed_name_reruns_its_users(ws: Workspace) -> None:
    ws.write("pkg/helper.py", "import pkg.calc as c\n\nNAME = 'RA' + 'TE'\n\n\n"
             "def rate():\n    return getattr(c, NAME)\n")  # fmt: skip
    ws.write("tests/test_other.py", "from pkg import helper\n\n\ndef test_imports_only():\n"
             "    assert helper.rate() == 2\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    summary = ws.run()
    assert "tests/test_other.py::test_imports_only" in ran_nodes(summary)
    assert summary.failed >= 1  # it now fails, as plain pytest says


def test_comment_and_formatting_change_reruns_nothing(ws: Workspace) -> None:
    ws.run()
    ws.edit(
        "pkg/calc.py",
        "def triple(x):\n    return x * 3",
        "def triple(x):  # three\n\n    return (x *\n            3)",
    )
    summary = ws.run()
    assert summary.report is None and ran_nodes(summary) == []
    assert summary.passed == 6
    assert all(f.planned.reason is None for f in summary.files)
    assert ran_nodes(ws.run()) == []


def test_typing_only_code_reruns_nothing(ws: Workspace) -> None:
    # Code under `if TYPE_CHECKING:` never runs: editing a type alias there re-runs nothing.
    source = (ws.root / "pkg/calc.py").read_text()
    ws.write(
        "pkg/calc.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    Number = int\n" + source,
    )
    ws.run()
    ws.edit("pkg/calc.py", "Number = int", "Number = int | float")
    summary = ws.run()
    assert summary.report is None and ran_nodes(summary) == []
    assert summary.passed == 6
    # ... while the code that runs is still module-level code
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    assert "tests/test_other.py::test_imports_only" in ran_nodes(ws.run())


def test_data_file_change_reruns_only_the_node_that_read_it(ws: Workspace) -> None:
    ws.run()
    (ws.root / "tests/values.txt").write_text("fine\n")
    plan = ws.plan()
    data = next(f for f in plan.files if f.target == "tests/test_data.py")
    assert data.run_nodes == ("tests/test_data.py::test_reads",)
    assert data.node_reasons["tests/test_data.py::test_reads"] == "read tests/values.txt, changed"
    assert ran_nodes(ws.run()) == ["tests/test_data.py::test_reads"]
    # a file that is gone is said to be (wrapt: a removed extension module read "changed")
    (ws.root / "tests/values.txt").unlink()
    data = next(f for f in ws.plan().files if f.target == "tests/test_data.py")
    assert data.node_reasons["tests/test_data.py::test_reads"] == (
        "read tests/values.txt, since deleted"
    )


def test_a_python_file_read_as_text_reruns_its_reader_on_a_comment_change(ws: Workspace) -> None:
    # a linter's fixture (parso's normalizer_issue_files): a .py file the test reads, never
    # runs, whose comments are the expectations; a comment-only change was "formatting"
    ws.write("tests/cases/case_one.py", "# expect: E1\nx = 1\n")
    ws.write(
        "tests/test_cases.py",
        "from pathlib import Path\n\n\n"
        "def test_case():\n"
        "    text = (Path(__file__).parent / 'cases' / 'case_one.py').read_text()\n"
        "    assert text.startswith('# expect: E1')\n\n\n"
        "def test_other():\n"
        "    assert True\n",
    )
    ws.run()
    ws.run()  # a per-test record
    ws.edit("tests/cases/case_one.py", "# expect: E1", "# expect: E2")
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_cases.py::test_case"]
    assert summary.failed == 1


def test_a_python_file_whose_code_ran_and_was_read_as_text_reruns_on_a_comment_change(
    ws: Workspace,
) -> None:
    # the test runs helper and judges the traceback it formats, which shows helper's source:
    # its comment changes no code, only the text the test read
    ws.write(
        "tests/test_tb.py",
        "import pytest\n\n\n"
        "def helper():\n"
        "    # the marker line\n"
        "    raise ValueError('boom')\n\n\n"
        "def test_shows_the_marker():\n"
        "    with pytest.raises(ValueError) as info:\n"
        "        helper()\n"
        "    assert 'the marker line' in str(info.getrepr(style='long'))\n\n\n"
        "def test_other():\n"
        "    assert True\n",
    )
    assert ws.run().failed == 0
    ws.edit("tests/test_tb.py", "# the marker line", "# another line")
    summary = ws.run()
    # before: 'cached (no executed code changed)', a pass where pytest fails it
    assert ran_nodes(summary) == ["tests/test_tb.py::test_shows_the_marker"]
    assert summary.failed == 1


def test_new_function_called_from_an_existing_one(ws: Workspace) -> None:
    ws.run()
    ws.edit(
        "pkg/calc.py",
        "def combo(x):\n    return double(x) + 1",
        "def plus_one(x):\n    return x + 1\n\n\ndef combo(x):\n    return plus_one(double(x))",
    )
    summary = ws.run()
    # The caller changed and a new def is a module-level change: every importer re-runs.
    assert "tests/test_calc.py::test_combo" in ran_nodes(summary)
    assert summary.exit_code == 0
    # Now only the new function changes: its caller's test re-runs through the new record.
    ws.edit("pkg/calc.py", "return x + 1", "return 1 + x")
    assert ran_nodes(ws.run()) == ["tests/test_calc.py::test_combo"]


def test_a_test_that_failed_last_time_always_reruns(ws: Workspace) -> None:
    ws.edit("pkg/calc.py", "return x * 3", "return x * 4")
    first = ws.run()
    assert first.exit_code == 1
    again = ws.run()  # nothing changed: only the failed node re-runs
    assert ran_nodes(again) == ["tests/test_calc.py::test_triple"]
    assert again.failed == 1 and again.passed == 5
    ws.edit("tests/values.txt", "ok", "fine")  # an unrelated change: the failure still re-runs
    assert ran_nodes(ws.run()) == [
        "tests/test_calc.py::test_triple",
        "tests/test_data.py::test_reads",
    ]
    ws.edit("pkg/calc.py", "return x * 4", "return x * 3")
    fixed = ws.run()
    assert ran_nodes(fixed) == ["tests/test_calc.py::test_triple"]
    assert fixed.exit_code == 0
    assert ran_nodes(ws.run()) == []


def test_function_run_at_import_time_reruns_the_whole_file(ws: Workspace) -> None:
    ws.edit("pkg/calc.py", "RATE = 2", "def _rate():\n    return 2\n\n\nRATE = _rate()")
    ws.run()
    ws.edit("pkg/calc.py", "return 2", "return 1 + 1")
    plan = ws.plan()
    other = next(f for f in plan.files if f.target == "tests/test_other.py")
    assert "ran at import or collection time" in other.describe()
    assert ran_nodes(ws.run()) == [*CALC, "tests/test_other.py::test_imports_only"]


def test_default_value_change_reruns_only_the_callers(ws: Workspace) -> None:
    ws.edit(
        "pkg/calc.py",
        "def combo(x):",
        "def scale(x, factor=2):\n    return x * factor\n\n\ndef combo(x):",
    )
    ws.write(
        "tests/test_scale.py",
        """
        from pkg import calc


        def test_scale():
            assert calc.scale(3) == 6
        """,
    )
    ws.run()
    # An inert default value is part of the function: only a call can see it.
    ws.edit("pkg/calc.py", "factor=2", "factor=3")
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_scale.py::test_scale"]
    assert (summary.exit_code, summary.failed) == (1, 1)  # the change is caught
    # Dropping the default changes what calls can bind: every importer re-runs.
    ws.edit("pkg/calc.py", "factor=3", "factor")
    assert ran_nodes(ws.run()) == [
        *CALC,
        "tests/test_other.py::test_imports_only",
        "tests/test_scale.py::test_scale",
    ]


def test_decorator_change_reruns_every_importer(ws: Workspace) -> None:
    ws.edit("pkg/calc.py", "def triple(x):", "@functools.lru_cache(maxsize=2)\ndef triple(x):")
    ws.edit("pkg/calc.py", "RATE = 2", "import functools\n\nRATE = 2")
    ws.run()
    # A decorator runs at import and may register the function: module-level code.
    ws.edit("pkg/calc.py", "maxsize=2", "maxsize=3")
    plan = ws.plan()
    other = next(f for f in plan.files if f.target == "tests/test_other.py")
    assert "whose module-level code changed at pkg/calc.py:" in other.describe()
    # one reason for every node of a file is said of the file, not of its first node
    calc = next(f for f in plan.files if f.target == "tests/test_calc.py")
    assert calc.describe().startswith(
        "inputs changed: pkg/calc.py: the whole file: imports or runs pkg.calc, whose "
        "module-level code changed at pkg/calc.py:"
    )
    assert ran_nodes(ws.run()) == [*CALC, "tests/test_other.py::test_imports_only"]


def test_a_test_files_own_module_level_change_is_said_of_the_file(ws: Workspace) -> None:
    ws.write(
        "tests/test_own.py",
        """
        import functools


        @functools.lru_cache(maxsize=2)
        def half(x):
            return x // 2


        def test_one():
            assert half(2) == 1


        def test_two():
            assert half(4) == 2
        """,
    )
    ws.run()
    ws.edit("tests/test_own.py", "maxsize=2", "maxsize=3")
    own = next(f for f in ws.plan().files if f.target == "tests/test_own.py")
    assert own.describe() == (
        "inputs changed: tests/test_own.py: the whole file: its own module-level code "
        "changed at tests/test_own.py:4"
    )
    assert node_verdict(own, "tests/test_own.py::test_one") == (
        True,
        f"tests/test_own.py::test_one runs with its whole file: {own.describe()}",
    )


def test_memoised_function_change_reruns_tests_served_from_its_cache(ws: Workspace) -> None:
    ws.edit("pkg/calc.py", "RATE = 2", "import functools\n\nRATE = 2")
    ws.edit("pkg/calc.py", "def triple(x):", "@functools.lru_cache\ndef triple(x):")
    # A class body is recorded as code that ran (at import): module-level, not a caller.
    ws.edit("pkg/calc.py", "def combo(x):", "class Box:\n    size = 1\n\n\ndef combo(x):")
    ws.write(
        "tests/test_memo.py",
        """
        from pkg import calc


        def test_first():
            assert calc.triple(5) == 15


        def test_second():
            assert calc.triple(5) == 15  # an lru_cache hit: triple does not run
        """,
    )
    ws.run()
    ws.edit("pkg/calc.py", "return x * 3", "return x * 4")
    memo = next(f for f in ws.plan().files if f.target == "tests/test_memo.py")
    assert memo.node_reasons["tests/test_memo.py::test_second"].startswith(
        "executed tests.test_memo.test_second, which names the memoised pkg.calc.triple, "
        "changed at pkg/calc.py:"
    )
    summary = ws.run()
    # Only the tests whose code names `triple` (served from its cache or not) re-run.
    assert ran_nodes(summary) == [
        "tests/test_calc.py::test_triple",
        "tests/test_memo.py::test_first",
        "tests/test_memo.py::test_second",
    ]
    assert summary.failed == 3


def test_escaping_memoised_function_reruns_every_importer(ws: Workspace) -> None:
    # Handed out under another name, its cache can be reached by code that never names it.
    ws.edit("pkg/calc.py", "RATE = 2", "import functools\n\nRATE = 2")
    ws.edit("pkg/calc.py", "def triple(x):", "@functools.lru_cache\ndef triple(x):")
    ws.edit("pkg/calc.py", "def combo(x):", "thrice = triple\n\n\ndef combo(x):")
    ws.run()
    ws.edit("pkg/calc.py", "return x * 3", "return x * 4")
    assert ran_nodes(ws.run()) == [*CALC, "tests/test_other.py::test_imports_only"]


def test_explain_says_it_in_words(ws: Workspace) -> None:
    from maestro.cli.explain_cmd import node_verdict

    ws.run()
    ws.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    calc = next(f for f in ws.plan().files if f.target == "tests/test_calc.py")
    assert node_verdict(calc, "tests/test_calc.py::test_triple") == (
        True,
        "tests/test_calc.py::test_triple executed pkg.calc.triple, changed at pkg/calc.py:8",
    )
    runs, text = node_verdict(calc, "tests/test_calc.py::test_double")
    assert not runs and "executed nothing that changed" in text


def _traces(
    root: Path, interpreter: Interpreter, env: dict[str, str]
) -> tuple[str, dict[str, dict[str, list[str]]]]:
    report = run_pytest_sync(root, interpreter, ["-q", "-p", "no:cacheprovider"], extra_env=env)
    assert report.session_trace is not None
    return report.session_trace.mode, {n: t.functions for n, t in report.traces.items()}


EXPECTED = {
    "tests/test_calc.py::test_double": {
        "pkg/calc.py": ["double"],
        "tests/test_calc.py": ["test_double"],
    },
    "tests/test_calc.py::test_combo": {
        "pkg/calc.py": ["combo", "double"],
        "tests/test_calc.py": ["test_combo"],
    },
}


@pytest.mark.parametrize("hook", ["lsprof", "profile"])
def test_311_hooks_record_functions(ws: Workspace, hook: str) -> None:
    mode, traces = _traces(ws.root, ws.interpreter, {"MAESTRO_TRACE": hook})
    assert mode == hook
    for node, functions in EXPECTED.items():
        assert traces[node] == functions


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ defaults to sys.monitoring")
def test_cprofile_hook_is_the_311_default(ws: Workspace) -> None:
    mode, traces = _traces(ws.root, ws.interpreter, {})
    assert mode == "lsprof"
    for node, functions in EXPECTED.items():
        assert traces[node] == functions


@pytest.mark.slow
def test_sys_monitoring_path_on_312(ws: Workspace, interpreter312: Interpreter) -> None:
    mode, traces = _traces(ws.root, interpreter312, {})
    assert mode == "monitoring"
    for node, functions in EXPECTED.items():
        assert traces[node] == functions
    # And node-level selection end to end on that interpreter.
    ws312 = Workspace(ws.root, interpreter312)
    assert ran_nodes(ws312.run()) == ALL
    ws312.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    assert ran_nodes(ws312.run()) == ["tests/test_calc.py::test_triple"]


def test_312_code_run_by_several_files_counts_for_each(
    ws: Workspace, interpreter312: Interpreter, outside: Path
) -> None:
    """sys.monitoring sees a code object's first start once per session: a function (in the
    workspace, or outside it where no interpreter key covers it) that a later test or a later
    file runs again must still count for that test."""
    (outside / "extlib.py").write_text("def value():\n    return 1\n")
    ws.write("tests/conftest.py", f"import sys\nsys.path.insert(0, {str(outside)!r})\n")
    for name in ("a", "b"):
        ws.write(
            f"tests/test_ext_{name}.py",
            "import extlib\nfrom pkg import calc\n\n"
            f"def test_{name}():\n    assert extlib.value() == 1 and calc.triple(1) == 3\n",
        )
    ws312 = Workspace(ws.root, interpreter312)
    ext = ["tests/test_ext_a.py::test_a", "tests/test_ext_b.py::test_b"]
    assert set(ext) <= set(ran_nodes(ws312.run()))
    # another size: the same size within the same second would import the stale .pyc
    (outside / "extlib.py").write_text("def value():\n    return 22\n")
    summary = ws312.run()
    assert set(ext) <= set(ran_nodes(summary)) and summary.failed == 2
    (outside / "extlib.py").write_text("def value():\n    return 1\n")
    assert ws312.run().failed == 0  # the first run's results, for the first content
    ws312.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    assert ran_nodes(ws312.run()) == ["tests/test_calc.py::test_triple", *ext]


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ traces every run (cheap)")
def test_cold_run_before_312_is_untraced_and_the_next_run_traced(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAESTRO_TRACE")
    first = ws.run()
    assert first.report is not None and first.report.session_trace is None
    ws.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    second = ws.run()  # file level (no record yet): whole files, traced this time
    assert ran_nodes(second) == [*CALC, "tests/test_other.py::test_imports_only"]
    assert second.report is not None and second.report.session_trace is not None
    ws.edit("pkg/calc.py", "return 3 * x", "return x + x + x")
    assert ran_nodes(ws.run()) == ["tests/test_calc.py::test_triple"]


def test_tracing_can_be_switched_off(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    report = run_pytest_sync(ws.root, ws.interpreter, ["-q"], extra_env={"MAESTRO_TRACE": "off"})
    assert report.session_trace is None and report.traces == {}
    # The user's MAESTRO_TRACE reaches the child although it is not in the env allowlist.
    monkeypatch.setenv("MAESTRO_TRACE", "off")
    report = run_pytest_sync(ws.root, ws.interpreter, ["-q"])
    assert report.session_trace is None and report.traces == {}
    assert sys.version_info >= (3, 11)


HIJACK = {
    "pkg/work.py": """\
        def in_thread():
            return 1


        def after():
            return 2
        """,
    "tests/test_hooks.py": """\
        import cProfile
        import sys
        import threading

        from pkg.work import after, in_thread


        def test_a_thread_runs_code():
            t = threading.Thread(target=in_thread)
            t.start()
            t.join()


        def test_takes_the_profiler():
            cProfile.Profile().enable()  # replaces any profile hook, never disabled
            sys.setprofile(None)


        def test_after_the_hijack():
            assert after() == 2
        """,
}


@pytest.mark.parametrize("hook", ["lsprof", "profile"])
def test_threads_and_hijacked_hooks(ws: Workspace, hook: str) -> None:
    """Code a test runs in a thread is its own; a test that replaces the profile hook loses
    only its own record, never the next test's."""
    for rel, text in HIJACK.items():
        ws.write(rel, text)
    mode, traces = _traces(ws.root, ws.interpreter, {"MAESTRO_TRACE": hook})
    assert mode == hook
    assert "in_thread" in traces["tests/test_hooks.py::test_a_thread_runs_code"]["pkg/work.py"]
    assert traces["tests/test_hooks.py::test_after_the_hijack"]["pkg/work.py"] == ["after"]


@pytest.mark.parametrize("doctest_modules", [False, True], ids=["plain", "doctest-modules"])
def test_a_file_a_module_memoises_reruns_every_node_using_it(
    ws: Workspace, doctest_modules: bool
) -> None:
    """Only the first test reads the file; the others get it from the module's memo (python-
    dateutil's zoneinfo tarball): per-node reads alone would carry their stale passes. With
    --doctest-modules (humanize's gettext catalogs, kept by humanize.i18n) the memoising module
    is a test file too, and its read still reaches every node of the test files importing it;
    before, only the node that read the file first re-ran there (stale passes)."""
    if doctest_modules:
        ws.write(
            "pyproject.toml",
            '[project]\nname = "demo"\nversion = "0"\n\n[tool.pytest.ini_options]\n'
            'testpaths = ["pkg", "tests"]\naddopts = "--doctest-modules"\n',
        )
    ws.write("pkg/table.txt", "3\n")
    ws.write(
        "pkg/table.py",
        "import pathlib\n\n_MEMO = {}\n\n\ndef limit():\n    if 'v' not in _MEMO:\n"
        "        _MEMO['v'] = int((pathlib.Path(__file__).parent / 'table.txt').read_text())\n"
        "    return _MEMO['v']\n",
    )
    ws.write(
        "tests/test_memo.py",
        "from pkg.table import limit\n\n\ndef test_one():\n    assert limit() == 3\n\n\n"
        "def test_two():\n    assert limit() == 3\n",
    )
    ws.run()
    ws.write("pkg/table.txt", "4\n")
    summary = ws.run()
    assert {"tests/test_memo.py::test_one", "tests/test_memo.py::test_two"} <= set(
        ran_nodes(summary)
    )
    assert summary.failed == 2


def test_a_hand_written_memo_reruns_the_nodes_it_served(ws: Workspace) -> None:
    """marshmallow's validate.URL keeps each regex _regex_generator builds in a dict its
    __call__ checks first: after a change to the generator, the nodes served from that dict
    never executed it. Before, only the first node re-ran (16 stale passes there)."""
    ws.write(
        "pkg/patterns.py",
        """
        import re


        class _Memo:
            def __init__(self):
                self._memo = {}

            def __call__(self, flags):
                if flags not in self._memo:
                    self._memo[flags] = self._build(flags)
                return self._memo[flags]

            def _build(self, flags):
                return re.compile("localhost", flags)


        matcher = _Memo()


        def is_local(text):
            return matcher(re.I).match(text) is not None
        """,
    )
    ws.write(
        "tests/test_urls.py",
        "from pkg.patterns import is_local\n\n\ndef test_one():\n"
        "    assert is_local('localhost')\n\n\ndef test_two():\n"
        "    assert is_local('LOCALHOST')\n",
    )
    ws.run()
    ws.edit("pkg/patterns.py", 're.compile("localhost"', 're.compile("localhostx"')
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_urls.py::test_one", "tests/test_urls.py::test_two"]
    assert summary.failed == 2


@pytest.mark.parametrize(
    ("raised", "rerun"),
    [
        ('raise ValueError("expected " + describe(want))', ["test_mismatch"]),
        # a call under `or` may not run: what the memo kept is raised instead
        ("raise ValueError(KEPT.get(want) or describe(want))", ["test_match", "test_mismatch"]),
    ],
    ids=["called", "maybe-called"],
)
def test_a_builder_named_only_in_what_a_function_raises(
    ws: Workspace, raised: str, rerun: list[str]
) -> None:
    """jinja2's TokenStream.expect names describe_token_expr only in the error it raises: a
    test that never reached the raise never ran it and cannot have been served its result (the
    hand-written-memo rule re-ran every test that ran expect)."""
    ws.write(
        "pkg/tokens.py",
        f"""
        KEPT = {{}}


        def describe(kind):
            return f"'{{kind}}'"


        def expect(kind, want):
            if kind != want:
                {raised}
            return kind
        """,
    )
    ws.write(
        "tests/test_tokens.py",
        "import pytest\nfrom pkg.tokens import expect\n\n\ndef test_match():\n"
        "    assert expect('a', 'a') == 'a'\n\n\ndef test_mismatch():\n"
        "    with pytest.raises(ValueError, match=\"expected 'b'\"):\n        expect('a', 'b')\n",
    )
    ws.run()
    ws.edit("pkg/tokens.py", "return f\"'{kind}'\"", 'return f"<{kind}>"')
    summary = ws.run()
    assert ran_nodes(summary) == [f"tests/test_tokens.py::{n}" for n in rerun]
    assert summary.failed == 1  # test_mismatch: the message changed


@pytest.mark.parametrize(
    ("expect", "rerun"),
    [
        (
            # the result only in a local that only the raise reads (jinja2's TokenStream.expect)
            "def expect(kind, want):\n    if kind != want:\n        text = describe(want)\n"
            "        raise ValueError('expected ' + text)\n    return kind\n",
            ["test_mismatch"],
        ),
        (
            # the local is also kept: test_mismatch raises what test_fill's describe returned
            "def expect(kind, want):\n    if want not in KEPT:\n        text = describe(want)\n"
            "        KEPT[want] = text\n    if kind != want:\n"
            "        raise ValueError('expected ' + KEPT[want])\n    return kind\n",
            ["test_fill", "test_match", "test_mismatch"],
        ),
    ],
    ids=["carried", "kept"],
)
def test_a_builder_whose_result_only_a_raise_reads_through_a_local(
    ws: Workspace, expect: str, rerun: list[str]
) -> None:
    """A function keeping the changed builder's result in a local that only its raise statements
    read holds nothing for a later call: a test that never ran the builder is served (the
    hand-written-memo rule re-ran every test that ran expect). Kept in a dict as well, the
    test served from it re-runs and fails as under plain pytest."""
    ws.write(
        "pkg/tokens.py",
        "KEPT = {}\n\n\ndef describe(kind):\n    return f\"'{kind}'\"\n\n\n" + expect,
    )
    ws.write(
        "tests/test_tokens.py",
        "import pytest\nfrom pkg.tokens import expect\n\n\ndef test_fill():\n"
        "    assert expect('b', 'b') == 'b'\n\n\ndef test_match():\n"
        "    assert expect('a', 'a') == 'a'\n\n\ndef test_mismatch():\n"
        "    with pytest.raises(ValueError, match=\"expected 'b'\"):\n        expect('a', 'b')\n",
    )
    assert ws.run().failed == 0
    ws.edit("pkg/tokens.py", "return f\"'{kind}'\"", 'return f"<{kind}>"')
    summary = ws.run()
    assert ran_nodes(summary) == [f"tests/test_tokens.py::{n}" for n in rerun]
    assert summary.failed == 1  # test_mismatch: the message changed


def test_a_conftest_hook_run_at_collection_reruns_every_node(ws: Workspace) -> None:
    ws.write(
        "tests/conftest.py",
        "def pytest_collection_modifyitems(items):\n    for item in items:\n"
        "        if item.name or item.nodeid:\n            pass\n",
    )
    ws.run()
    ws.edit("tests/conftest.py", "item.name or item.nodeid", "item.name and item.nodeid")
    assert ran_nodes(ws.run()) == ALL


def test_an_undone_edit_is_not_the_baseline_of_the_next_one(ws: Workspace) -> None:
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = int('2')")  # every importer re-runs
    ws.run()
    ws.edit("pkg/calc.py", "RATE = int('2')", "RATE = 2")  # undone: served from the cache
    assert ran_nodes(ws.run()) == []
    ws.edit("pkg/calc.py", "return x * 3", "return 3 * x")  # diffed against the served result
    assert ran_nodes(ws.run()) == ["tests/test_calc.py::test_triple"]


def test_module_constant_read_through_a_literal_getattr_reruns_its_reader(ws: Workspace) -> None:
    ws.write("tests/test_other.py", "import pkg.calc as c\n\n\ndef test_imports_only():\n"
             "    assert getattr(c, 'RATE') == 2\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    summary = ws.run()
    assert "tests/test_other.py::test_imports_only" in ran_nodes(summary)
    assert summary.failed == 1


def test_instance_dict_is_no_escape_but_module_vars_is() -> None:
    from maestro.graph.fingerprints import fingerprint_source

    plain = b"class A:\n    def f(self):\n        return self.__dict__, getattr(self, name)\n"
    assert not fingerprint_source(plain).escapes
    for code in (b"import os\nX = vars(os)\n", b"import os\ndef f(n):\n    return getattr(os, n)\n",
                 b"import sys\nX = getattr(sys.modules[__name__], n)\n"):  # fmt: skip
        assert fingerprint_source(code).escapes, code
    # this module's own names only, and the names of the module star-imported
    own = fingerprint_source(b"X = globals()\n")
    assert (own.escapes, own.own_escapes) == (False, True)
    assert fingerprint_source(b"from os import *\nfrom .tz import *\n").stars == (".tz", "os")
    # a call of what getattr returned, a method named like a namespace reader: no escape
    for code in (
        b"import io\nX = getattr(io, 'open', None)()\n",
        b"import t\nX = t.f.getmembers()\n",
    ):
        found = fingerprint_source(code)
        assert not (found.escapes or found.own_escapes), code


def test_a_star_import_of_another_module_does_not_widen_a_constant_change(ws: Workspace) -> None:
    # python-dateutil: `from .tz import *` in tz/__init__.py made every rrule.py constant
    # re-run the whole suite; a star import reads the names of the module it names only
    ws.write("pkg/other.py", "OTHER = 1\n")
    ws.write("pkg/api.py", "from .other import *\n")
    ws.write("tests/test_other.py", "import pkg.api\nimport pkg.calc\n\n\n"
             "def test_imports_only():\n    assert pkg.calc.RATE > 0\n\n\n"
             "def test_api():\n    assert pkg.api.OTHER == 1\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    assert ran_nodes(ws.run()) == [
        "tests/test_calc.py::test_combo",
        "tests/test_calc.py::test_double",
        "tests/test_other.py::test_imports_only",
    ]


def test_a_star_import_of_the_changed_module_reruns_every_importer(ws: Workspace) -> None:
    # the star import copies RATE into pkg.api, whose namespace a test reads without naming it
    ws.write("pkg/api.py", "from .calc import *\n\n\ndef names():\n    return dict(globals())\n")
    ws.write("tests/test_other.py", "from pkg import api\n\n\ndef test_imports_only():\n"
             "    assert api.names()['RA' + 'TE'] == 2\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    other = next(f for f in ws.plan().files if f.target == "tests/test_other.py")
    assert "star-imports .calc" in other.describe()
    summary = ws.run()
    assert "tests/test_other.py::test_imports_only" in ran_nodes(summary)
    assert summary.failed == 1  # as plain pytest says


def test_annotated_constant_reruns_only_its_readers(ws: Workspace) -> None:
    # jinja2's `DEFAULT_POLICIES: t.Dict[str, t.Any] = {...}`: the annotation is evaluated, but
    # it is the same code before and after; only the value changed
    ws.edit("pkg/calc.py", "RATE = 2", "import typing\n\nRATE: typing.Final[int] = 2")
    ws.run()
    ws.edit("pkg/calc.py", "RATE: typing.Final[int] = 2", "RATE: typing.Final[int] = 5")
    assert ran_nodes(ws.run()) == [
        "tests/test_calc.py::test_combo",
        "tests/test_calc.py::test_double",
        "tests/test_other.py::test_imports_only",
    ]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        # a new annotation is code run at import: here it raises NameError
        ("RATE = 2", "RATE = 5\nLIMIT: Undefined = 3"),
        # an unchanged constant moved below the code that reads it at import: NameError
        ("SCALE = 3\nRATE = 2\nFACTOR = SCALE * 2", "RATE = 5\nFACTOR = SCALE * 2\nSCALE = 3"),
    ],
)
def test_constant_change_with_other_import_time_effects_reruns_every_importer(
    ws: Workspace, before: str, after: str
) -> None:
    ws.edit("pkg/calc.py", "RATE = 2", before)
    ws.run()
    ws.edit("pkg/calc.py", before, after)
    for target in ("tests/test_calc.py", "tests/test_other.py"):
        planned = next(f for f in ws.plan().files if f.target == target)
        assert planned.run_nodes is None  # the whole file
        assert "module-level code changed" in planned.describe()
    summary = ws.run()
    assert summary.errors == 2  # both importers fail at collection now, as plain pytest says


def test_a_constant_imported_by_name_reruns_only_the_code_that_reads_it(ws: Workspace) -> None:
    # jinja2's environment.py does `from .defaults import DEFAULT_POLICIES`: that binds the
    # same value under the same name, whose readers spell it; it is no read at import
    ws.write("pkg/helper.py", "from pkg.calc import RATE\n\n\ndef rate():\n    return RATE\n\n\n"
             "def other():\n    return 1\n")  # fmt: skip
    ws.write("tests/test_other.py", "from pkg import helper\n\n\ndef test_imports_only():\n"
             "    assert helper.other() == 1\n\n\ndef test_reads():\n"
             "    assert helper.rate() == 2\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    summary = ws.run()
    assert ran_nodes(summary) == [
        "tests/test_calc.py::test_combo",
        "tests/test_calc.py::test_double",
        "tests/test_other.py::test_reads",
    ]
    assert summary.failed == 1  # test_reads, as plain pytest says


@pytest.mark.parametrize(
    ("helper", "test", "edit"),
    [
        # the importer's namespace is read without naming RATE
        (
            "from pkg.calc import RATE\n\n\ndef names():\n    return dict(globals())\n",
            "    assert helper.names()['RA' + 'TE'] == 2\n",
            ("RATE = 2", "RATE = 5"),
        ),
        # through a second module that imports it by name too, then a star import
        (
            "from pkg.again import *\n\n\ndef names():\n    return dict(globals())\n",
            "    assert helper.names()['RA' + 'TE'] == 2\n",
            ("RATE = 2", "RATE = 5"),
        ),
        # the name is gone: the import raises
        ("from pkg.calc import RATE\n", "    assert helper\n", ("RATE = 2", "RAT = 2")),
    ],
)
def test_a_constant_imported_by_name_and_read_without_it_reruns_every_importer(
    ws: Workspace, helper: str, test: str, edit: tuple[str, str]
) -> None:
    ws.write("pkg/again.py", "from pkg.calc import RATE\n")
    ws.write("pkg/helper.py", helper)
    ws.write("tests/test_other.py", f"from pkg import helper\n\n\ndef test_imports_only():\n{test}")
    ws.run()
    ws.edit("pkg/calc.py", *edit)
    other = next(f for f in ws.plan().files if f.target == "tests/test_other.py")
    assert other.run_nodes is None or other.run_nodes == ("tests/test_other.py::test_imports_only",)
    summary = ws.run()
    assert summary.failed + summary.errors >= 1
    assert "tests/test_other.py::test_imports_only" in ran_nodes(summary) or summary.errors


CAT_TESTS = """
import subprocess


def test_cat():
    out = subprocess.run(["head", "tests/values.txt"], capture_output=True, text=True).stdout
    assert out.strip() in ("ok", "fine")


def test_plain():
    assert True
"""


def test_only_the_nodes_that_ran_a_non_python_program_depend_on_the_whole_workspace(
    ws: Workspace,
) -> None:
    # click's test_utils.py: 60 of its 142 tests run a pager; the others re-ran on any edit
    ws.write("tests/test_cat.py", CAT_TESTS)
    ws.run()
    ws.write("notes.txt", "an unrelated file\n")
    planned = next(f for f in ws.plan().files if f.target == "tests/test_cat.py")
    assert planned.run_nodes == ("tests/test_cat.py::test_cat",)
    assert "depends on the whole workspace, which changed: ran " in planned.describe()
    assert ran_nodes(ws.run()) == ["tests/test_cat.py::test_cat"]
    # what the program read changes: it re-runs, and fails as plain pytest says
    ws.write("tests/values.txt", "bad\n")
    summary = ws.run()
    assert "tests/test_cat.py::test_cat" in ran_nodes(summary)
    assert "tests/test_cat.py::test_plain" not in ran_nodes(summary)
    assert summary.failed == 2  # test_cat and test_data's reader


def test_a_program_run_outside_any_test_keeps_the_whole_file_on_the_workspace(
    ws: Workspace,
) -> None:
    # pluggy: pytest-benchmark runs git when pytest starts; here a conftest keeps cat's output
    ws.write("tests/conftest.py", "import subprocess\n\nSEEN = subprocess.run(['head', "
             "'tests/values.txt'], capture_output=True, text=True).stdout\n")  # fmt: skip
    ws.write("tests/test_cat.py", "from conftest import SEEN\n\n\n"
             "def test_seen():\n    assert SEEN.strip() == 'ok'\n\n\n"
             "def test_plain():\n    assert True\n")  # fmt: skip
    ws.run()
    ws.write("tests/values.txt", "fine\n")
    planned = next(f for f in ws.plan().files if f.target == "tests/test_cat.py")
    assert planned.run_nodes is None  # the whole file
    summary = ws.run()
    assert "tests/test_cat.py::test_seen" in ran_nodes(summary)
    assert summary.failed == 1


URLS = """
def test_with_credentials():
    assert "http://user:pa55word@host/".startswith("http")


def test_plain():
    assert 1 + 1 == 2
"""


def test_a_test_holding_a_secret_is_served_after_an_edit_elsewhere(ws: Workspace) -> None:
    """Maestro keeps the previous version of a file with each secret-looking text sealed (a
    digest keyed by a private key, graph/fingerprints.py `keep`): after an edit elsewhere in
    the file, a test function holding such text compares equal once the current file is sealed
    alike, and is served (itsdangerous 2.2.0: a `secret_key="secret_key"` fixture re-ran all
    297 tests of 3 files at every edit of its file, "cannot tell whether it changed"); an edit
    of the secret itself re-runs it."""
    ws.write("tests/test_urls.py", URLS)
    ws.run()
    ws.edit("tests/test_urls.py", "1 + 1 == 2", "2 + 2 == 4")
    urls = next(f for f in ws.plan().files if f.target == "tests/test_urls.py")
    assert urls.node_reasons == {
        "tests/test_urls.py::test_plain": (
            "executed tests.test_urls.test_plain, changed at tests/test_urls.py:5"
        )
    }
    ws.run()
    ws.edit("tests/test_urls.py", "pa55word", "pa66word")
    urls = next(f for f in ws.plan().files if f.target == "tests/test_urls.py")
    assert urls.node_reasons == {
        "tests/test_urls.py::test_with_credentials": (
            "executed tests.test_urls.test_with_credentials, changed at tests/test_urls.py:1"
        )
    }


def test_a_version_kept_redacted_cannot_be_compared_and_its_secret_holder_reruns(
    ws: Workspace,
) -> None:
    """A previous version kept before versions were sealed (each secret a marker with 4 hex
    digits) or sealed with a key since lost cannot be compared: the test holding the secret
    re-runs (never served from a guess); for the redacted one, its reason says why instead of
    naming a line nobody touched."""
    import hashlib
    import os

    from maestro.engine.testing import fingerprint_store
    from maestro.redaction import Redactor

    ws.write("tests/test_urls.py", URLS)
    ws.run()
    store = fingerprint_store(ws.root)
    assert store.seal_key_path.stat().st_mode & 0o777 == 0o600
    text = (ws.root / "tests/test_urls.py").read_bytes()
    digest = hashlib.sha256(text).hexdigest()
    kept = store.directory / digest[:2] / f"{digest}.src"
    assert "[SEALED:" in kept.read_text() and "pa55word" not in kept.read_text()
    kept.write_text(str(Redactor.from_environ(os.environ).redact(text.decode())))
    ws.edit("tests/test_urls.py", "1 + 1 == 2", "2 + 2 == 4")
    urls = next(f for f in ws.plan().files if f.target == "tests/test_urls.py")
    assert urls.node_reasons["tests/test_urls.py::test_plain"] == (
        "executed tests.test_urls.test_plain, changed at tests/test_urls.py:5"
    )
    assert urls.node_reasons["tests/test_urls.py::test_with_credentials"] == (
        "executed tests.test_urls.test_with_credentials, which holds text that looks like a "
        "secret (tests/test_urls.py:1): Maestro keeps no copy of it, so cannot tell whether it "
        "changed"
    )


def test_a_version_sealed_with_a_lost_key_reruns_its_secret_holder(ws: Workspace) -> None:
    from maestro.engine.testing import fingerprint_store

    ws.write("tests/test_urls.py", URLS)
    ws.run()
    fingerprint_store(ws.root).seal_key_path.unlink()
    ws.edit("tests/test_urls.py", "1 + 1 == 2", "2 + 2 == 4")
    urls = next(f for f in ws.plan().files if f.target == "tests/test_urls.py")
    assert set(urls.node_reasons) == {
        "tests/test_urls.py::test_plain",
        "tests/test_urls.py::test_with_credentials",
    }


def test_an_older_results_input_the_key_no_longer_names_counts_as_it_is_now(
    ws: Workspace,
) -> None:
    """The result a change is judged by may be an older one whose inputs name a file the key
    no longer does (cattrs 26.2.1 on 3.11: an undone edit served the cold result, whose inputs
    became the graph's again). The file is there, unchanged: no change, and not "was deleted"
    (the whole file re-ran, saying `src/cattr/__init__.py was deleted`; it was there)."""
    from maestro.cache.keys import changed_inputs
    from maestro.cache.store import Cache
    from maestro.engine.node_level import node_reasons

    ws.write("pkg/extra.py", "def value():\n    return 1\n")
    ws.run()
    last = ws.plan().last.get("tests/test_calc.py")
    assert last is not None
    previous, inputs = last
    older = {**inputs, "pkg/extra.py": ws.graph().file_digest("pkg/extra.py") or ""}
    ws.edit("tests/test_calc.py", "calc.triple(2) == 6", "calc.triple(2) == 2 * 3")
    planned = ws.plan()
    now = next(f for f in planned.files if f.target == "tests/test_calc.py").key.inputs
    assert planned.fingerprints is not None and "pkg/extra.py" not in now
    with Cache.open() as cache:
        found = node_reasons(
            ws.graph(), cache, planned.fingerprints, previous, older, now,
            changed_inputs(older, now),
        )  # fmt: skip
    assert found is not None
    assert found[1] == {
        "tests/test_calc.py::test_triple": (
            "executed tests.test_calc.test_triple, changed at tests/test_calc.py:8"
        )
    }
    ws.edit("tests/test_calc.py", "calc.triple(2) == 2 * 3", "calc.triple(2) == 6")
    (ws.root / "pkg/extra.py").unlink()  # deleted since: that is a change, and says so
    planned = ws.plan()
    now = next(f for f in planned.files if f.target == "tests/test_calc.py").key.inputs
    with Cache.open() as cache:
        found = node_reasons(
            ws.graph(), cache, planned.fingerprints, previous, older, now,
            changed_inputs(older, now),
        )  # fmt: skip
    assert found is not None and set(found[1].values()) == {"pkg/extra.py was deleted"}


def test_a_new_import_of_an_installed_module_is_named_as_one(ws: Workspace) -> None:
    ws.run()
    ws.write("tests/conftest.py", "import pytest\n\nMARK = pytest.mark.slow\n")
    calc = next(f for f in ws.plan().files if f.target == "tests/test_calc.py")
    # not "dist:pytest", which reads as the pytest distribution having changed
    assert "pytest (imported from outside the workspace: a new import, version or edit)" in (
        calc.describe()
    )
    assert "dist:" not in calc.describe()


def test_a_change_without_a_fingerprint_of_the_previous_version_says_so_once(
    ws: Workspace,
) -> None:
    ws.run()
    # a stored version unreadable (an upgrade changed the format): nothing to judge nodes by
    shutil.rmtree(workspace_state_dir(ws.root) / FINGERPRINTS_DIR)
    ws.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    calc = next(f for f in ws.plan().files if f.target == "tests/test_calc.py")
    assert calc.describe() == (
        "inputs changed: pkg/calc.py: the whole file: pkg/calc.py changed, and its previous "
        "version has no fingerprint to judge by"
    )


def test_an_upgrade_that_changes_the_fingerprint_format_keeps_node_selection(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws.run()
    ws.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    assert ran_nodes(ws.run()) == ["tests/test_calc.py::test_triple"]
    # Maestro upgraded to a version whose fingerprints have another format: the versions the
    # kept results ran are judged again from their kept sources, not the whole suite re-run
    monkeypatch.setattr(fingerprints, "FORMAT", fingerprints.FORMAT + 1)
    ws.edit("pkg/calc.py", "return 3 * x", "return x + x + x")
    calc = next(f for f in ws.plan().files if f.target == "tests/test_calc.py")
    assert calc.run_nodes == ("tests/test_calc.py::test_triple",), calc.describe()
    assert ran_nodes(ws.run()) == ["tests/test_calc.py::test_triple"]


def test_an_upgrade_that_cannot_judge_a_change_says_why_everything_runs(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws.run()
    ws.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    ws.run()
    # an older Maestro kept no source of the versions it fingerprinted
    for kept in (workspace_state_dir(ws.root) / FINGERPRINTS_DIR).rglob("*.src"):
        kept.unlink()
    monkeypatch.setattr(fingerprints, "FORMAT", fingerprints.FORMAT + 1)
    ws.edit("pkg/calc.py", "return 3 * x", "return x + x + x")
    calc = next(f for f in ws.plan().files if f.target == "tests/test_calc.py")
    assert calc.describe() == (
        "inputs changed: pkg/calc.py: the whole file: pkg/calc.py changed, and its previous "
        "version was fingerprinted by an older Maestro (fingerprints changed format on "
        "upgrade): re-run whole this once"
    )


def test_an_upgrade_judges_a_change_from_the_committed_version(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws.run()
    ws.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    ws.run()
    git = ["git", "-C", str(ws.root), "-c", "user.name=u", "-c", "user.email=u@x"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "pkg/calc.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "calc"], check=True)
    for kept in (workspace_state_dir(ws.root) / FINGERPRINTS_DIR).rglob("*.src"):
        kept.unlink()  # as an older Maestro left them
    monkeypatch.setattr(fingerprints, "FORMAT", fingerprints.FORMAT + 1)
    ws.edit("pkg/calc.py", "return 3 * x", "return x + x + x")
    calc = next(f for f in ws.plan().files if f.target == "tests/test_calc.py")
    assert calc.run_nodes == ("tests/test_calc.py::test_triple",), calc.describe()


def test_a_computed_name_read_in_a_function_reruns_only_its_executors(ws: Workspace) -> None:
    # jinja2: utils.import_string reads any module's names (`getattr(__import__(m), obj)`); a
    # changed constant re-ran every node of every file importing it, though only the tests
    # that ran import_string can have read the constant through it
    ws.write("pkg/helper.py", "import pkg.calc as c\n\nNAME = 'RA' + 'TE'\n\n\n"
             "def rate():\n    return getattr(c, NAME)\n")  # fmt: skip
    ws.write("tests/test_other.py", "from pkg import helper\n\n\ndef test_imports_only():\n"
             "    assert helper.rate() == 2\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    other = next(f for f in ws.plan().files if f.target == "tests/test_other.py")
    assert other.node_reasons["tests/test_other.py::test_imports_only"] == (
        "executed pkg.helper.rate, which reads names it builds at run time (getattr(module, "
        "name) or such), maybe the changed one: pkg.calc.RATE, changed at pkg/calc.py"
    )
    summary = ws.run()
    # test_triple ran neither a reader of RATE nor pkg.helper.rate: served
    assert ran_nodes(summary) == [
        "tests/test_calc.py::test_combo",
        "tests/test_calc.py::test_double",
        "tests/test_other.py::test_imports_only",
    ]
    assert summary.failed == 1  # test_imports_only, as plain pytest says


def test_a_kept_lambda_reading_a_computed_name_reruns_its_callers(ws: Workspace) -> None:
    # the lambda reads a module's name without spelling it; the second test calls the kept
    # lambda without running the function that made it (the recorder names the lambda's code
    # as that function's)
    ws.write("pkg/helper.py", "import pkg.calc as c\n\nNAME = 'RA' + 'TE'\nKEPT = []\n\n\n"
             "def reader():\n    if not KEPT:\n        KEPT.append(lambda: getattr(c, NAME))\n"
             "    return KEPT[0]\n")  # fmt: skip
    ws.write("tests/test_other.py", "from pkg import helper\n\n\ndef test_imports_only():\n"
             "    assert helper.reader()() == 2\n\n\ndef test_kept():\n"
             "    assert helper.KEPT[0]() == 2\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    summary = ws.run()
    assert {"tests/test_other.py::test_imports_only", "tests/test_other.py::test_kept"} <= set(
        ran_nodes(summary)
    )
    assert summary.failed == 2  # both, as plain pytest says


def test_a_computed_name_read_at_module_level_reruns_every_importer(ws: Workspace) -> None:
    # (test_calc.py does not import pkg.helper: judged as before)
    ws.write("pkg/helper.py", "import pkg.calc as c\n\nNOW = getattr(c, 'RA' + 'TE')\n")
    ws.write("tests/test_other.py", "from pkg import helper\n\n\ndef test_imports_only():\n"
             "    assert helper.NOW == 2\n\n\ndef test_runs_nothing():\n    pass\n")  # fmt: skip
    ws.run()
    ws.edit("pkg/calc.py", "RATE = 2", "RATE = 5")
    other = next(f for f in ws.plan().files if f.target == "tests/test_other.py")
    assert (
        "pkg.calc.RATE, changed at pkg/calc.py, and code in pkg/helper.py reads names it builds"
        " at run time (getattr(module, name), globals(), exec or such): it may read the"
        " changed one"
    ) in other.describe(), other.describe()
    summary = ws.run()
    assert ran_nodes(summary) == [
        "tests/test_calc.py::test_combo",
        "tests/test_calc.py::test_double",
        "tests/test_other.py::test_imports_only",
        "tests/test_other.py::test_runs_nothing",
    ]
    assert summary.failed == 1


def test_where_code_reaches_any_module_names() -> None:
    from maestro.graph.fingerprints import fingerprint_source

    code = (
        b"import os\n"
        b"class A:\n    def f(self, n):\n        return getattr(os, n)\n"
        b"def g(n):\n    def inner():\n        return vars(os)\n"
        b"    return [getattr(os, m) for m in n], lambda: os.__dict__\n"
        b"def h(n=getattr(os, 'a' + 'b')):\n    return n\n"
    )
    found = fingerprint_source(code)
    # a default is evaluated where the def statement runs: module level
    assert found.escaping == ("<module>", "A.f", "g", "g.<locals>.inner")
    assert fingerprint_source(b"import os\nclass B:\n    X = getattr(os, n)\n").escaping == (
        "<module>",
    )


SKIPPED_WHEN_ABSENT = (
    "import pytest\n\nfrom pkg import calc\n\ntry:\n    import no_such_module_here\n"
    "except ImportError:\n    pytest.skip('needs no_such_module_here', allow_module_level=True)\n"
    "\n\ndef test_with_it():\n    assert calc.triple(1) == 3\n"
)


def test_a_file_skipped_at_import_is_served_after_a_change_its_import_never_ran(
    ws: Workspace,
) -> None:
    # structlog's test_twisted.py (skipped without twisted) re-ran on every edit of the package
    ws.write("tests/test_skipped.py", SKIPPED_WHEN_ABSENT)
    ws.run()
    ws.edit("pkg/calc.py", "return x * 3", "return 3 * x")
    skipped = next(f for f in ws.plan().files if f.target == "tests/test_skipped.py")
    assert skipped.reason is None  # served
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_calc.py::test_triple"]
    assert summary.skipped == 1


def test_a_file_skipped_by_what_its_import_ran_reruns_when_that_changes(ws: Workspace) -> None:
    ws.write(
        "tests/test_skipped.py",
        "import pytest\n\nfrom pkg import calc\n\nif calc.triple(1) == 3:\n"
        "    pytest.skip('triple works', allow_module_level=True)\n"
        "\n\ndef test_runs_once_triple_breaks():\n    assert calc.triple(1) == 3\n",
    )
    ws.run()
    ws.edit("pkg/calc.py", "return x * 3", "return x * 4")
    skipped = next(f for f in ws.plan().files if f.target == "tests/test_skipped.py")
    assert skipped.node_reasons["tests/test_skipped.py"] == (
        "executed pkg.calc.triple, changed at pkg/calc.py:8 (ran at import or collection time)"
    )
    summary = ws.run()
    # as plain pytest: no skip now, and the test fails
    assert "tests/test_skipped.py::test_runs_once_triple_breaks" in ran_nodes(summary)
    assert summary.failed == 2 and summary.skipped == 0  # with test_calc.py::test_triple
