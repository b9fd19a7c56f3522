"""Divergences from plain pytest found by trying `maestro test` as a new user on real projects
(marshmallow, sqlparse, packaging), each reduced to a small workspace: real pytest children, real
LMDB. Every test first asks plain pytest for the truth, then checks that Maestro says the same."""

from __future__ import annotations

import pytest
from project_python import plain_pytest
from testing_helpers import Workspace, ran

from maestro.engine import testing
from maestro.errors import UnknownTargetError


def outcomes(summary: testing.Summary) -> dict[str, str]:
    return {t.node_id: t.outcome for r, _ in summary.results() for t in r.tests}


def pytest_says(ws: Workspace, *args: str) -> dict[str, str]:
    """Plain pytest's outcome per node id, for the whole suite (or `args`)."""
    done = plain_pytest(ws.interpreter.path, ws.root, "-rA", "-q", *args, timeout=120)
    found: dict[str, str] = {}
    for line in done.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR", "SKIPPED"):
            found[rest.split(" - ")[0].strip()] = word.lower()
    return found


REGISTRY = """
_registry: dict[str, list[type]] = {}


def register(cls):
    _registry.setdefault(cls.__name__, []).append(cls)
    return cls


def lookup(name):
    found = _registry[name]
    if len(found) > 1:
        raise LookupError(f"{len(found)} classes named {name!r}")
    return found[0]
"""


def test_a_new_file_registering_a_class_at_import_changes_another_files_outcome(
    ws: Workspace,
) -> None:
    # marshmallow: every Schema subclass registers by name at class creation; adding a test
    # file with a second `FooSerializer` fails tests/test_registry.py::
    # test_multiple_classes_with_all under pytest, while Maestro served its cached pass.
    ws.write("pkg/registry.py", REGISTRY)
    ws.write(
        "tests/test_lookup.py",
        """
        from pkg.registry import lookup, register


        @register
        class Foo:
            pass


        def test_lookup():
            assert lookup("Foo") is Foo
        """,
    )
    node = "tests/test_lookup.py::test_lookup"
    assert outcomes(ws.run())[node] == "passed"
    ws.write(
        "tests/test_other.py",
        """
        from pkg.registry import register


        @register
        class Foo:
            pass


        def test_other():
            assert Foo.__name__ == "Foo"
        """,
    )
    assert pytest_says(ws)[node] == "failed"  # both files are imported before any test runs
    assert outcomes(ws.run())[node] == "failed"


DOCTEST_PYPROJECT = """
[project]
name = "demo"
version = "0"

[tool.pytest.ini_options]
testpaths = ["pkg", "tests"]
addopts = ["--doctest-modules"]
"""


def test_doctest_modules_in_addopts_are_run_as_pytest_runs_them(ws: Workspace) -> None:
    # jaraco's project skeleton (zipp, inflect, jaraco.*) and many others put
    # --doctest-modules in addopts: pytest then collects every module's doctests; Maestro
    # collected only test_*.py files, so a broken docstring example was never run.
    ws.write("pyproject.toml", DOCTEST_PYPROJECT)
    ws.write(
        "pkg/a.py",
        '''
        def add(a, b):
            """
            >>> add(1, 2)
            3
            """
            return a + b
        ''',
    )
    node = "pkg/a.py::pkg.a.add"
    truth = pytest_says(ws)
    assert truth[node] == "passed"
    first = outcomes(ws.run())
    assert {n: first.get(n) for n in truth} == truth
    assert outcomes(ws.run())[node] == "passed"  # served from the cache
    ws.edit("pkg/a.py", "return a + b", "return a - b")
    truth = pytest_says(ws)
    assert truth[node] == "failed"
    after = outcomes(ws.run())
    assert {n: after.get(n) for n in truth} == truth


def test_a_text_file_doctest_is_run_as_pytest_runs_it(ws: Workspace) -> None:
    # pytest's doctest plugin collects test*.txt (always on): Maestro's test files were Python
    # files only, so a broken example in such a file never ran (pytest 1 failed, Maestro all
    # passed). Keyed on the text and on what its examples execute.
    ws.write("tests/test_usage.txt", ">>> from pkg.a import add\n>>> add(2, 2)\n4\n")
    ws.write("tests/usage.txt", ">>> 1\n2\n")  # not test*.txt: pytest never collects it
    node = "tests/test_usage.txt::test_usage.txt"
    truth = pytest_says(ws)
    assert truth[node] == "passed"
    first = outcomes(ws.run())
    assert first == truth
    second = ws.run()
    assert outcomes(second) == truth
    assert "tests/test_usage.txt" not in ran(second)  # served from the cache
    ws.edit("pkg/a.py", "return a + b", "return a - b")  # what the example executes
    truth = pytest_says(ws)
    assert truth[node] == "failed"
    assert outcomes(ws.run()) == truth
    ws.edit("pkg/a.py", "return a - b", "return a + b")
    ws.edit("tests/test_usage.txt", "4\n", "5\n")  # the text itself
    planned = next(f for f in ws.plan().files if f.target == "tests/test_usage.txt")
    said = planned.describe()  # its one test re-runs for a reason of the file: said of the file
    assert said.endswith("the whole file: runs the examples of tests/test_usage.txt, changed")
    truth = pytest_says(ws)
    assert truth[node] == "failed"
    assert outcomes(ws.run()) == truth
    ws.edit("tests/test_usage.txt", "5\n", "4\n")
    assert outcomes(ws.run())[node] == "passed"
    untouched = ws.run()
    assert "tests/test_usage.txt" not in ran(untouched)


def test_doctest_glob_in_addopts_decides_which_text_files_are_tests(ws: Workspace) -> None:
    # `--doctest-glob` replaces test*.txt (jaraco.* and others collect README.rst / docs/*.rst)
    ws.write(
        "pyproject.toml",
        """
        [project]
        name = "demo"
        version = "0"

        [tool.pytest.ini_options]
        addopts = "--doctest-glob=*.rst --doctest-glob docs/*.md"
        """,
    )
    ws.write("README.rst", "Usage::\n\n    >>> from pkg.a import add\n    >>> add(1, 1)\n    2\n")
    ws.write("docs/guide.md", ">>> 2 * 3\n6\n")
    ws.write("notes.md", ">>> 2 * 3\n7\n")  # matches no glob: never collected
    ws.write("tests/test_usage.txt", ">>> 1\n2\n")  # no longer collected
    truth = pytest_says(ws)
    assert truth["README.rst::README.rst"] == "passed"
    assert truth["docs/guide.md::guide.md"] == "passed"
    assert outcomes(ws.run()) == truth
    ws.edit("pkg/a.py", "return a + b", "return a * b")
    truth = pytest_says(ws)
    assert truth["README.rst::README.rst"] == "failed"
    assert outcomes(ws.run()) == truth


def test_a_failure_that_needs_an_earlier_test_is_not_turned_into_a_cached_pass(
    ws: Workspace,
) -> None:
    # test_b fails whenever test_a ran before it in the same module, as in every pytest run.
    # The second `maestro test` re-ran only test_b ("failed last time"), it passed alone, was
    # labelled flaky and from then on the file was served as "2 passed" with nothing edited.
    ws.write(
        "tests/test_order.py",
        """
        STATE = []


        def test_a():
            STATE.append(1)


        def test_b():
            assert STATE == []
        """,
    )
    node = "tests/test_order.py::test_b"
    assert pytest_says(ws)[node] == "failed"
    said: list[str] = []
    for _ in range(3):  # the first run, then the failed node alone, then again
        summary = ws.run()
        assert outcomes(summary)[node] == "failed"
        assert summary.exit_code == 1 and summary.flaky == 0
        said += summary.confirmed
    confirmed = f"{node} passed when re-run alone; its file re-ran up to it, as pytest runs it: "
    confirmed += "failed"
    assert said == [confirmed, confirmed]  # the second run and the third


def test_a_changed_test_that_needs_an_earlier_test_passes_as_under_pytest(ws: Workspace) -> None:
    # test_b passes only after test_a; editing test_b re-ran test_b alone: a false failure,
    # and a sticky one (each later run re-ran the failed node alone again). A failure in a
    # run of part of a file is now put to the whole file in the same run.
    ws.write(
        "tests/test_order.py",
        """
        STATE = []


        def test_a():
            STATE.append(1)


        def test_b():
            assert STATE == [1]
        """,
    )
    node = "tests/test_order.py::test_b"
    assert outcomes(ws.run())[node] == "passed"
    said: list[str] = []
    for message in ("STATE", "(STATE, 1)"):  # a first run may judge the whole file
        ws.edit("tests/test_order.py", "assert STATE == [1]", f"assert STATE == [1], {message}")
        assert pytest_says(ws)[node] == "passed"
        summary = ws.run()
        assert outcomes(summary)[node] == "passed"
        assert summary.exit_code == 0 and summary.flaky == 0
        assert summary.ran_files == 1 and summary.passed == 7  # each test counted once
        said += summary.confirmed
        again = ws.run()  # the whole file's pass is what was stored
        assert outcomes(again)[node] == "passed" and not again.confirmed
        assert "tests/test_order.py" not in ran(again)
        ws.edit("tests/test_order.py", f"assert STATE == [1], {message}", "assert STATE == [1]")
    assert said == [
        f"{node} failed when run without the other tests of its file; its file re-ran up to it, "
        "as pytest runs it: passed"
    ]


def test_a_changed_test_that_fails_in_its_whole_file_too_is_confirmed_once(
    ws: Workspace,
) -> None:
    # a real failure: the whole file says so too; the next run re-runs only the failed node
    # (its failure was the whole file's) and pays no second confirmation
    ws.write(
        "tests/test_order.py",
        """
        def test_a():
            pass


        def test_b():
            assert 1 == 1
        """,
    )
    node = "tests/test_order.py::test_b"
    ws.run()
    ws.edit("tests/test_order.py", "pass", "assert True")  # a first run may judge it whole
    ws.run()  # every node has a per-test record now: the edit below runs test_b alone
    ws.edit("tests/test_order.py", "assert 1 == 1", "assert 1 == 2")
    truth = pytest_says(ws)
    summary = ws.run()
    assert {n: outcomes(summary).get(n) for n in truth} == truth
    assert summary.exit_code == 1 and summary.failed == 1
    assert summary.confirmed == [
        f"{node} failed when run without the other tests of its file; its file re-ran "
        "up to it, as pytest runs it: failed"
    ]
    again = ws.run()
    assert outcomes(again)[node] == "failed" and not again.confirmed


ORDERED = """
import pathlib

LOG = pathlib.Path(__file__).parents[2] / "ran.txt"  # outside the workspace: written, no input
STATE = []


def note(name):
    with LOG.open("a") as f:
        f.write(name + "\\n")


def test_a():
    note("a")
    STATE.append(1)


def test_b():
    note("b")
    assert STATE == [1]


def test_c():
    note("c")


def test_d():
    note("d")
    assert True
"""


def test_a_failure_in_part_of_a_file_is_confirmed_by_the_tests_up_to_it(ws: Workspace) -> None:
    # test_b passes only after test_a. Edited, it re-ran alone and failed: the confirmation
    # re-runs its file as pytest runs it up to test_b (test_a, test_b), not test_c and test_d,
    # which run after it and cannot change its outcome; their results stay. A later test that
    # really fails is still confirmed, up to it: the whole file here.
    log = ws.root.parent / "ran.txt"
    ws.write("tests/test_order.py", ORDERED)
    ws.run()
    ws.edit("tests/test_order.py", 'note("c")', 'note("c")\n    assert 1')  # may run it whole
    ws.run()  # every node has a per-test record now
    log.write_text("")
    ws.edit("tests/test_order.py", "assert STATE == [1]", "assert STATE == [1], STATE")
    truth = pytest_says(ws)
    log.write_text("")
    summary = ws.run()
    assert {n: outcomes(summary).get(n) for n in truth} == truth
    assert summary.exit_code == 0
    assert log.read_text().split() == ["b", "a", "b"]  # alone, then with the test before it
    node = "tests/test_order.py::test_b"
    assert summary.confirmed == [
        f"{node} failed when run without the other tests of its file; its file re-ran up to it, "
        "as pytest runs it: passed"
    ]
    again = ws.run()  # what was stored: the four tests, the carried ones included
    assert "tests/test_order.py" not in ran(again) and outcomes(again) == truth

    ws.edit("tests/test_order.py", "assert True", "assert False")
    truth = pytest_says(ws)
    assert truth["tests/test_order.py::test_d"] == "failed"
    log.write_text("")
    summary = ws.run()
    assert {n: outcomes(summary).get(n) for n in truth} == truth
    assert log.read_text().split() == ["d", "a", "b", "c", "d"]


def pytest_counts(ws: Workspace) -> dict[str, int]:
    """The counts of plain pytest's summary line ('1 failed, 2 passed, 3 errors in 0.1s')."""
    done = plain_pytest(ws.interpreter.path, ws.root, "-q", timeout=120)
    line = done.stdout.strip().splitlines()[-1].split(" in ")[0]
    plural = {"errors": "error"}
    return {
        plural.get(word, word): int(n)
        for n, word in (part.split() for part in line.split(", "))
        if word not in ("warning", "warnings")
    }


def test_the_counts_of_a_test_whose_teardown_errors_are_pytests(ws: Workspace) -> None:
    # pytest counts each phase: a call that passed and a teardown that raised is "1 passed,
    # 1 error"; Maestro counted the node once ("1 error"), so its summary line disagreed
    ws.write(
        "tests/test_teardown.py",
        """
        import pytest


        @pytest.fixture
        def bad_teardown():
            yield
            raise RuntimeError("teardown")


        def test_pass(bad_teardown):
            pass


        def test_fail(bad_teardown):
            assert 0


        def test_skip(bad_teardown):
            pytest.skip("not here")


        @pytest.mark.xfail
        def test_xfail(bad_teardown):
            assert 0


        @pytest.mark.xfail
        def test_xpass(bad_teardown):
            pass
        """,
    )
    truth = pytest_counts(ws)
    assert truth["error"] == 3 and truth["xfailed"] == 3  # an xfail's teardown error: xfailed
    names = ("passed", "failed", "skipped", "error", "xfailed", "xpassed")
    for _ in range(2):  # run, then served from the cache
        summary = ws.run()
        counts = {
            "passed": summary.passed, "failed": summary.failed, "skipped": summary.skipped,
            "error": summary.errors, "xfailed": summary.xfailed, "xpassed": summary.xpassed,
        }  # fmt: skip
        assert {n: counts[n] for n in names if counts[n]} == truth
        assert summary.exit_code == 1


def test_a_named_file_outside_python_files_runs_as_pytest_runs_it(ws: Workspace) -> None:
    # decorator 5.3.1 keeps its tests in tests/test.py, outside pytest's default python_files:
    # `pytest tests/test.py` collects a file named on its command line whatever its name, and
    # `maestro test tests/test.py` made pytest drop it ('not found', exit 4).
    ws.write(
        "tests/test.py",
        """
        def test_ok():
            assert True

        def test_bad():
            assert False
        """,
    )
    truth = pytest_says(ws, "tests/test.py")
    assert truth == {"tests/test.py::test_ok": "passed", "tests/test.py::test_bad": "failed"}
    selection = testing.Selection(paths=("tests/test.py",))
    assert outcomes(ws.run(selection)) == truth
    assert outcomes(ws.run(selection)) == truth  # served from the cache


def test_a_folder_with_no_collected_file_is_named_as_one(ws: Workspace) -> None:
    # `maestro test tests` on decorator 5.3.1 (its tests/test.py is outside python_files) said
    # "tests is not a test file, directory or node id": it is a directory, and the way out is to
    # name the files, which pytest collects whatever their name.
    ws.write("checks/test.py", "def test_ok():\n    assert True\n")
    with pytest.raises(UnknownTargetError) as refused:
        ws.run(testing.Selection(paths=("checks",)))
    assert "checks holds no file pytest collects as a test" in str(refused.value)
    assert "maestro test checks/test.py" in str(refused.value.hint)


def test_maestros_own_directories_inside_the_workspace_are_not_its_files(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # setuptools-scm 10.3.4 with MAESTRO_CACHE_DIR/MAESTRO_STATE_DIR in the project (as a CI job
    # that caches a folder of its checkout): every test that ran git depends on the whole
    # workspace, and the cache's own writes changed it, so no run was ever served from the cache
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(ws.root / ".maestro-cache"))
    monkeypatch.setenv("MAESTRO_STATE_DIR", str(ws.root / "var/maestro-state"))
    ws.write("tests/words.txt", "hello\n")
    ws.write(
        "tests/test_head.py",
        """
        import subprocess

        def test_head():
            out = subprocess.run(["head", "tests/words.txt"], capture_output=True, text=True)
            assert out.stdout == "hello\\n"
        """,
    )
    node = "tests/test_head.py::test_head"
    assert outcomes(ws.run())[node] == "passed"
    assert "tests/test_head.py" not in ran(ws.run())
    assert "tests/test_head.py" not in ran(ws.run())
    ws.write("tests/words.txt", "bye\n")  # still the whole workspace's input
    assert outcomes(ws.run())[node] == "failed"


def test_a_walk_of_the_workspace_does_not_list_maestros_own_directories(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # boltons 26.2.0's test_iter_find_files walks the project's parent folder: with the cache and
    # state in the project (a CI job caching a folder of its checkout), the listings of the state
    # folder were its inputs, they change on every run, and the file never came from the cache
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(ws.root / ".mcache"))
    monkeypatch.setenv("MAESTRO_STATE_DIR", str(ws.root / ".mstate"))
    ws.write("pkg/__init__.py", "")
    ws.write(
        "tests/test_walk.py",
        """
        import os

        def test_walk():
            found = [f for _, _, files in os.walk(".") for f in files]
            assert "__init__.py" in found
        """,
    )
    node = "tests/test_walk.py::test_walk"
    assert outcomes(ws.run())[node] == "passed"
    assert "tests/test_walk.py" not in ran(ws.run())
    assert "tests/test_walk.py" not in ran(ws.run())
    ws.write("pkg/more.py", "")  # a listing of the workspace's own folders is still an input
    assert "tests/test_walk.py" in ran(ws.run())


def test_a_conftest_docstring_example_runs_as_pytest_runs_it(ws: Workspace) -> None:
    # under --doctest-modules pytest collects conftest.py's doctests too (its walk hands every
    # module to the doctest plugin); Maestro never took conftest.py for a test file, so a
    # broken example in a fixture's docstring failed under pytest and passed under Maestro
    ws.write("pyproject.toml", DOCTEST_PYPROJECT)
    ws.write("pkg/__init__.py", "")
    ws.write("tests/test_a.py", "def test_a(two):\n    assert two == 2\n")
    ws.write(
        "tests/conftest.py",
        '''
        import pytest


        def double(x):
            """
            >>> double(1)
            2
            """
            return 2 * x


        @pytest.fixture
        def two():
            return 2
        ''',
    )
    node = "tests/conftest.py::conftest.double"
    truth = pytest_says(ws)
    assert truth[node] == "passed"
    assert outcomes(ws.run()) == truth
    ws.edit("tests/conftest.py", "return 2 * x", "return 3 * x")
    truth = pytest_says(ws)
    assert truth[node] == "failed"
    assert outcomes(ws.run()) == truth


SHIPPING_TESTS = """
import inspect
import subprocess
import sys

import pkg.engine as engine


def ship():
    # the module's text, run by a fresh interpreter (execnet bootstraps its workers so)
    code = inspect.getsource(engine) + "\\nprint(answer())\\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return done.stdout


def test_one():
    assert ship() == "42\\n"


def test_two():
    assert ship() == "42\\n"
"""


def test_a_module_text_each_test_ships_to_a_child_is_read_by_each(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # execnet 2.1.2: `popen//python=...` gateways send inspect.getsource(gateway_base) to the new
    # interpreter; linecache keeps the text after the first test asked, so only that test read
    # the file. After an edit to a function only the child runs, pytest failed
    # test_remote_exec_function_with_kwargs and Maestro served its pass: "no input changed"
    monkeypatch.setenv("MAESTRO_TRACE", "always")  # a per-test record from the first run on 3.11
    ws.write("pkg/engine.py", "def answer():\n    return 42\n")
    ws.write("tests/test_ship.py", SHIPPING_TESTS)
    nodes = ("tests/test_ship.py::test_one", "tests/test_ship.py::test_two")
    assert [outcomes(ws.run())[n] for n in nodes] == ["passed", "passed"]
    ws.edit("pkg/engine.py", "return 42", "return 41")
    assert pytest_says(ws, "tests/test_ship.py") == dict.fromkeys(nodes, "failed")
    assert [outcomes(ws.run())[n] for n in nodes] == ["failed", "failed"]


def test_a_doctest_module_keeps_its_plain_asserts_as_pytest_walking_does(ws: Workspace) -> None:
    # zipp 4.1.2: `Translator('xyz')` in a docstring expects "AssertionError: Invalid
    # separators". pytest rewrites the asserts of a module named on its command line, and
    # Maestro names each doctest module: the rewritten message grew an explanation and the
    # doctest failed, while plain pytest, walking the folder, left the module alone and passed
    ws.write("pyproject.toml", DOCTEST_PYPROJECT)
    ws.write(
        "pkg/a.py",
        '''
        def check(seps):
            """
            >>> check("xyz")
            Traceback (most recent call last):
            ...
            AssertionError: Invalid separators
            """
            assert set(seps) <= {"/"}, "Invalid separators"
        ''',
    )
    ws.write("tests/test_a.py", "from pkg.a import check\n\n\ndef test_check():\n    check('/')\n")
    node = "pkg/a.py::pkg.a.check"
    truth = pytest_says(ws)
    assert truth[node] == "passed"
    assert outcomes(ws.run()) == truth


EARLY_PLUGIN_PYPROJECT = """
[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
addopts = "-p plug"
"""


@pytest.mark.parametrize("trace", ["always", "off"])
def test_workspace_code_pytest_ran_before_maestros_plugin_is_an_input(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, trace: str
) -> None:
    # iniconfig 2.3.1 (a pytest dependency, installed from the workspace): pytest parses its ini
    # file with the workspace's parser before it loads Maestro's plugin. After an edit to that
    # parser pytest ran 54 tests and Maestro 36, no record having seen the parser run. Reduced:
    # a `-p` plugin in addopts, imported and asked for its options before Maestro's plugin
    monkeypatch.setenv("MAESTRO_TRACE", trace)
    ws.write("pyproject.toml", EARLY_PLUGIN_PYPROJECT)
    ws.write(
        "plug.py",
        """
        def pytest_addoption(parser):
            parser.addini("greeting", "what the tests expect", default="hello")
        """,
    )
    ws.write(
        "tests/test_greet.py",
        """
        def test_greeting(pytestconfig):
            assert pytestconfig.getini("greeting") == "hello"


        def test_other():
            pass
        """,
    )
    node = "tests/test_greet.py::test_greeting"
    assert outcomes(ws.run())[node] == "passed"
    ws.edit("plug.py", '"hello"', '"bye"')
    assert pytest_says(ws)[node] == "failed"
    assert outcomes(ws.run())[node] == "failed"


def test_only_the_code_that_ran_before_maestros_plugin_reruns_the_whole_file(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # packaging 26.4: pytest imports the workspace's packaging.version before Maestro's plugin,
    # but calls none of its functions: an edit to Version.is_devrelease re-runs its executors
    # (none of 14 files), not all 14 files whole
    monkeypatch.setenv("MAESTRO_TRACE", "always")
    ws.write("pyproject.toml", EARLY_PLUGIN_PYPROJECT)
    ws.write(
        "plug.py",
        """
        def pytest_addoption(parser):
            parser.addini("greeting", "what the tests expect", default="hello")


        def shout(text):
            return text.upper()
        """,
    )
    ws.write(
        "tests/test_greet.py",
        """
        from plug import shout


        def test_shout():
            assert shout("hi") == "HI"


        def test_other():
            pass
        """,
    )
    ws.run()
    ws.edit("plug.py", "text.upper()", "text.upper() + ''")
    planned = next(f for f in ws.plan().files if f.target == "tests/test_greet.py")
    assert planned.run_nodes == ("tests/test_greet.py::test_shout",)
