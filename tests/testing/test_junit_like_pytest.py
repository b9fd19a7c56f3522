"""`maestro test --junit-xml` describes each node as pytest's own JUnit file does: CI dashboards
and the diff tools users point at both files tell an expected failure from a skip by the
`<skipped>` element's type, and show its reason as the message."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from project_python import project_python
from testing_helpers import Workspace

MAESTRO = str(Path(sys.executable).with_name("maestro"))


def _skips(path: Path) -> dict[str, tuple[str | None, str | None]]:
    """Test name -> (type, message) of its `<skipped>` element."""
    found = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        skipped = case.find("skipped")
        if skipped is not None:
            found[case.get("name", "")] = (skipped.get("type"), skipped.get("message"))
    return found


def _junit_runs(
    ws: Workspace, tmp_path: Path, plain: Path, ours: Path
) -> Iterator[subprocess.CompletedProcess[str]]:
    """Plain pytest writes `plain`; then `maestro test` writes `ours` twice (a run, then the
    same answer from the cache), each run handed to the caller to check before the next."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    subprocess.run(
        [str(project_python()), "-m", "pytest",
            "-q", "-p", "no:cacheprovider", f"--junitxml={plain}"],
        cwd=ws.root, env=env, capture_output=True, timeout=120,
    )  # fmt: skip
    env.update(
        MAESTRO_DAEMON="off",
        MAESTRO_CACHE_DIR=str(tmp_path / "cache"),
        MAESTRO_STATE_DIR=str(tmp_path / "state"),
    )
    for _ in range(2):
        yield subprocess.run(
            [MAESTRO, "test", "--junit-xml", str(ours)],
            cwd=ws.root, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip


def test_skips_and_expected_failures_are_written_as_pytest_writes_them(
    ws: Workspace, tmp_path: Path
) -> None:
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write(
        "tests/test_marks.py",
        """
        import pytest

        @pytest.mark.xfail(reason="todo")
        def test_marked():
            assert False

        @pytest.mark.parametrize("x", [pytest.param(1, marks=pytest.mark.xfail(reason="later"))])
        def test_param(x):
            assert x == 2

        def test_imperative():
            pytest.xfail("not yet")

        def test_skipped():
            pytest.skip("nope")

        @pytest.mark.skip(reason="off")
        def test_marked_skip():
            pass
        """,
    )
    plain, ours = tmp_path / "pytest.xml", tmp_path / "maestro.xml"
    for done in _junit_runs(ws, tmp_path, plain, ours):
        assert done.returncode == 0, done.stdout + done.stderr
        assert _skips(ours) == _skips(plain)
    assert _skips(plain)["test_marked"] == ("pytest.xfail", "todo")


def _failures(path: Path) -> dict[str, str | None]:
    """Test name -> the message of its `<failure>` element (the document must parse)."""
    found = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        failure = case.find("failure")
        if failure is not None:
            found[case.get("name", "")] = failure.get("message")
    return found


def test_terminal_escapes_in_a_failure_are_written_as_pytest_writes_them(
    ws: Workspace, tmp_path: Path
) -> None:
    """A failure holding what a pty or a coloured tool printed (ESC, a bell, a backspace:
    characters XML 1.0 forbids) is written `#x1B`, as pytest writes it: before, the file held
    the raw ESC and no XML parser (nor CI dashboard) could read it (pexpect's test_replwrap)."""
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write(
        "tests/test_tty.py",
        """
        def test_prompt():
            raise AssertionError("\\x1b[?2004l\\x07\\x08")

        def test_fine():
            pass
        """,
    )
    plain, ours = tmp_path / "pytest.xml", tmp_path / "maestro.xml"
    for done in _junit_runs(ws, tmp_path, plain, ours):
        assert done.returncode == 1, done.stdout + done.stderr
        failures = _failures(ours)
        assert list(failures) == ["test_prompt"]
        assert "#x1B[?2004l#x07#x08" in (failures["test_prompt"] or "")
        assert "\x1b" not in ours.read_text(encoding="utf-8")
    assert "#x1B[?2004l#x07#x08" in (_failures(plain)["test_prompt"] or "")


def _cases(path: Path) -> tuple[list[tuple[str, list[str]]], dict[str, str]]:
    """(test name, the tags of its outcome elements) per `<testcase>` of tests/test_down.py in
    file order, and the suite's failures and errors counts."""
    root = ET.parse(path).getroot()
    suite = next(root.iter("testsuite"))
    cases = [
        (c.get("name", ""), [e.tag for e in c if e.tag != "properties"])
        for c in root.iter("testcase")
        if c.get("classname") == "tests.test_down"
    ]
    return cases, {k: suite.get(k, "") for k in ("failures", "errors")}


def test_a_teardown_error_after_a_failure_or_a_skip_is_written_as_pytest_writes_it(
    ws: Workspace, tmp_path: Path
) -> None:
    """pytest writes a failed test whose teardown then errors as two testcases (the failure,
    then the error), and a skipped one as one testcase holding both: Maestro wrote only the
    failure or the skip, and its suite counted one error for pytest's three."""
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write(
        "tests/test_down.py",
        """
        import pytest

        @pytest.fixture
        def broken():
            yield
            raise RuntimeError("teardown broke")

        def test_fails(broken):
            assert 1 == 2

        def test_skips(broken):
            pytest.skip("no")

        def test_passes(broken):
            pass
        """,
    )
    plain, ours = tmp_path / "pytest.xml", tmp_path / "maestro.xml"
    for done in _junit_runs(ws, tmp_path, plain, ours):
        assert done.returncode == 1, done.stdout + done.stderr
        assert _cases(ours) == _cases(plain)
        # the terminal lists each error the counts line counts
        assert done.stdout.count("ERROR tests/test_down.py::") == 3, done.stdout
    assert _cases(plain) == (
        [
            ("test_fails", ["failure"]),
            ("test_fails", ["error"]),
            ("test_skips", ["skipped", "error"]),
            ("test_passes", ["error"]),
        ],
        {"failures": "1", "errors": "3"},
    )


def _all_cases(path: Path) -> tuple[list[tuple[str, list[str]]], dict[str, str]]:
    """(classname, the tags of its outcome elements) per `<testcase>`, and the suite's counts."""
    root = ET.parse(path).getroot()
    suite = next(root.iter("testsuite"))
    cases = [
        (
            c.get("classname", "") + "." + c.get("name", ""),
            [e.tag for e in c if e.tag != "properties"],
        )
        for c in root.iter("testcase")
    ]
    return cases, {k: suite.get(k, "") for k in ("tests", "errors")}


def test_a_module_that_fails_to_collect_twice_is_one_testcase_as_pytest_writes_it(
    ws: Workspace, tmp_path: Path
) -> None:
    """With --doctest-modules pytest collects a test module twice (its tests, its doctests) and
    both collectors share the file's node id: a module that fails to import is one testcase
    holding two errors, counted twice. Maestro wrote two testcases (humanize with a module of
    its package deleted)."""
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write("pytest.ini", "[pytest]\naddopts = --doctest-modules\n")
    ws.write("tests/test_broken.py", "import not_a_module_here\n\ndef test_one():\n    pass\n")
    ws.write("tests/test_fine.py", "def test_two():\n    pass\n")
    plain, ours = tmp_path / "pytest.xml", tmp_path / "maestro.xml"
    for done in _junit_runs(ws, tmp_path, plain, ours):
        assert done.returncode == 1, done.stdout + done.stderr
        # pytest stops after a collection error; Maestro runs the other files (documented)
        broken = [case for case in _all_cases(ours)[0] if case[0] == ".tests.test_broken"]
        assert broken == [(".tests.test_broken", ["error", "error"])]
        assert _all_cases(ours)[1]["errors"] == "2"
        # and the terminal counts both, as pytest's "2 errors" (it said "1 error")
        assert re.search(r"\b2 errors\b", done.stdout), done.stdout
        # each error holds pytest's report of the import error, as pytest's file does
        assert _error_texts(ours) == _error_texts(plain)
        assert "No module named 'not_a_module_here'" in done.stdout
    cases, counts = _all_cases(plain)
    assert (".tests.test_broken", ["error", "error"]) in cases
    assert counts["errors"] == "2"


def test_a_module_that_skips_at_import_twice_is_counted_twice_as_pytest_counts_it(
    ws: Workspace, tmp_path: Path
) -> None:
    """With --doctest-modules a module skipping at its import (``pytest.skip(...,
    allow_module_level=True)`` after a failed optional import) is skipped by both of its
    collectors: pytest says "2 skipped" and writes one testcase with two skips. Maestro said
    "1 skipped" and wrote one (jsonpickle 4.1.4's tests/pandas_test.py without pandas:
    "4 skipped" where pytest says "5 skipped"). Without --doctest-modules, one skip."""
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write("pytest.ini", "[pytest]\naddopts = --doctest-modules\n")
    ws.write(
        "tests/test_optional.py",
        """
        import pytest

        try:
            import not_a_module_here
        except ImportError:
            pytest.skip("not installed", allow_module_level=True)

        def test_one():
            pass
        """,
    )
    ws.write("tests/test_fine.py", "def test_two():\n    pass\n")
    plain, ours = tmp_path / "pytest.xml", tmp_path / "maestro.xml"
    for done in _junit_runs(ws, tmp_path, plain, ours):  # a run, then from the cache
        assert done.returncode == 0, done.stdout + done.stderr
        assert re.search(r"\d passed, 2 skipped", done.stdout), done.stdout
        assert sorted(_all_cases(ours)[0]) == sorted(_all_cases(plain)[0])
        assert _skip_counts(ours) == _skip_counts(plain)
    assert (".tests.test_optional", ["skipped", "skipped"]) in _all_cases(plain)[0]
    assert _skip_counts(plain)[1] == "2"
    ws.write("pytest.ini", "[pytest]\n")  # one collector: one skip, as pytest counts it
    done = next(_junit_runs(ws, tmp_path, plain, ours))
    assert re.search(r"\d passed, 1 skipped", done.stdout), done.stdout
    assert sorted(_all_cases(ours)[0]) == sorted(_all_cases(plain)[0])
    assert _skip_counts(ours) == _skip_counts(plain)


def _skip_counts(path: Path) -> tuple[str | None, str | None]:
    """The suite's tests and skipped counts."""
    suite = next(ET.parse(path).getroot().iter("testsuite"))
    return suite.get("tests"), suite.get("skipped")


def _error_texts(path: Path) -> list[str]:
    """The text of every `<error>` element, in order."""
    return [e.text or "" for e in ET.parse(path).getroot().iter("error")]


def _failure_texts(path: Path) -> dict[str, str]:
    """Test name -> the text of its `<failure>` element: pytest writes its whole report there."""
    return {
        case.get("name", ""): failure.text or ""
        for case in ET.parse(path).getroot().iter("testcase")
        for failure in case.iter("failure")
    }


def test_a_failure_s_report_is_pytest_s_in_the_junit_file_and_the_terminal(
    ws: Workspace, tmp_path: Path
) -> None:
    """A CI page and a terminal show the traceback and pytest's assertion diff, not one line:
    before, `<failure>` held only `path:line: AssertionError: assert [...] == [...]` where
    pytest's held its whole report ("At index 0 diff: 0 != 1", the code, the locals' lines)."""
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write(
        "tests/test_lists.py",
        """
        def strip(items):
            return [x for x in items if x]

        def test_strip():
            got = strip([0, 1, 0, 2])
            assert got == [0, 1, 2]

        def test_fine():
            pass
        """,
    )
    plain, ours = tmp_path / "pytest.xml", tmp_path / "maestro.xml"
    for done in _junit_runs(ws, tmp_path, plain, ours):
        assert done.returncode == 1, done.stdout + done.stderr
        assert _failure_texts(ours) == _failure_texts(plain)
        assert "At index 0 diff: 1 != 0" in done.stdout
        assert "got = strip([0, 1, 0, 2])" in done.stdout
    assert "At index 0 diff: 1 != 0" in _failure_texts(plain)["test_strip"]


def test_a_token_pytest_shortens_in_a_failure_reaches_no_file_in_clear(
    ws: Workspace, tmp_path: Path
) -> None:
    """pytest's message shows a long value cut in its middle (``'ghp_Lq8Lq8Lq...8Lq8Lq8Lq8Lq8'``):
    the cut parts matched neither the token's pattern nor its whole value, so 26 of its 40
    characters reached the JUnit file's message, the cache and the terminal in clear."""
    token = "ghp_" + "Lq8" * 12
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write(
        "tests/test_token.py",
        f"""
        def test_token():
            token = "{token}"
            assert token == "x"
        """,
    )
    plain, ours = tmp_path / "pytest.xml", tmp_path / "maestro.xml"
    for done in _junit_runs(ws, tmp_path, plain, ours):  # a run, then from the cache
        assert done.returncode == 1, done.stdout + done.stderr
        shown = ours.read_text() + done.stdout + done.stderr
        assert "Lq8Lq8" not in shown, shown
        assert "assert '[REDACTED:github-token:" in shown, shown
    assert "'ghp_Lq8Lq8Lq...8Lq8Lq8Lq8Lq8'" in plain.read_text()  # pytest's own cut form


def _error_texts(path: Path) -> dict[str, str]:
    """Test name -> the text of its `<error>` element."""
    return {
        case.get("name", ""): error.text or ""
        for case in ET.parse(path).getroot().iter("testcase")
        for error in case.iter("error")
    }


def test_a_fixture_error_s_report_shows_no_frame_of_maestro(ws: Workspace, tmp_path: Path) -> None:
    """A fixture that raises: pytest's report starts at the fixture. Maestro's showed a frame of
    its own plugin first (``self = <maestro_pytest_plugin._Recorder object ...>``, the
    ``pytest_fixture_setup`` wrapper's ``return (yield)`` and the plugin's path): python-slugify
    9.2.0 with an autouse conftest fixture raising, in the editor's hover and the JUnit file."""
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write(
        "tests/conftest.py",
        """
        import pytest

        @pytest.fixture(autouse=True)
        def guard(request):
            if "cli" in request.node.name:
                raise RuntimeError("no CLI in this checkout")
            yield
        """,
    )
    ws.write("tests/test_cli.py", "def test_cli():\n    pass\n\ndef test_other():\n    pass\n")
    plain, ours = tmp_path / "pytest.xml", tmp_path / "maestro.xml"
    for done in _junit_runs(ws, tmp_path, plain, ours):  # a run, then from the cache
        assert done.returncode == 1, done.stdout + done.stderr
        assert "maestro_pytest_plugin" not in ours.read_text() + done.stdout
        assert _error_texts(ours) == _error_texts(plain)
    assert 'raise RuntimeError("no CLI in this checkout")' in _error_texts(plain)["test_cli"]


def _suite_counts(path: Path) -> dict[str, str]:
    suite = next(ET.parse(path).getroot().iter("testsuite"))
    return {k: suite.get(k, "") for k in ("tests", "failures", "errors", "skipped")}


def test_subtests_are_counted_in_the_suite_as_pytest_counts_them(
    ws: Workspace, tmp_path: Path
) -> None:
    """pytest's JUnit file counts each subtest's report, a pass too, and a test's own call when a
    subtest failed or skipped it: idna 3.21's 56 passing `self.subTest`s are 6503 tests there,
    where Maestro's file said 6447; a test with two failed subtests is two failures. Fresh and
    served, in process and through the daemon."""
    pytest.importorskip("_pytest.subtests", reason="subtests are built into pytest from 9.0")
    ws.write("maestro.toml", f"interpreter = {str(project_python())!r}\n")
    ws.write(
        "tests/test_sub.py",
        """
        import unittest

        import pytest

        class T(unittest.TestCase):
            def test_two_fail(self):
                for i in range(3):
                    with self.subTest(i=i):
                        assert i not in (1, 2)

            def test_own_fails_too(self):
                with self.subTest(i=0):
                    assert False
                assert False, "own"

        def test_fixture(subtests):
            for i in range(3):
                with subtests.test(msg="part", i=i):
                    assert i != 2

        def test_skips_one(subtests):
            with subtests.test(msg="s"):
                pytest.skip("not here")
            with subtests.test(msg="ok"):
                pass
        """,
    )
    ws.write(
        "tests/test_served.py",
        """
        import unittest

        class T(unittest.TestCase):
            def test_all_pass(self):
                for i in range(4):
                    with self.subTest(i=i):
                        pass
        """,
    )
    plain, ours = tmp_path / "pytest.xml", tmp_path / "maestro.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    subprocess.run(
        [str(project_python()), "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={plain}"],
        cwd=ws.root, env=env, capture_output=True, timeout=120,
    )  # fmt: skip
    truth = _suite_counts(plain)
    assert (truth["failures"], truth["skipped"]) == ("6", "1"), truth  # subtests' own reports
    for daemon in ("off", "start"):
        env.update(
            MAESTRO_DAEMON=daemon,
            MAESTRO_CACHE_DIR=str(tmp_path / f"cache-{daemon}"),
            MAESTRO_STATE_DIR=str(tmp_path / f"state-{daemon}"),
        )
        try:
            for _ in range(2):  # a run, then test_served.py from the cache
                done = subprocess.run(
                    [MAESTRO, "test", "--junit-xml", str(ours)],
                    cwd=ws.root, env=env, capture_output=True, text=True, timeout=180,
                )  # fmt: skip
                assert done.returncode == 1, done.stdout + done.stderr
                assert _suite_counts(ours) == truth, (daemon, done.stdout)
            assert re.search(r"ran 1 file, \d+ cached", done.stdout), done.stdout  # served
        finally:
            if daemon != "off":
                subprocess.run(
                    [MAESTRO, "daemon", "stop"], cwd=ws.root, env=env, capture_output=True,
                    timeout=60,
                )  # fmt: skip
