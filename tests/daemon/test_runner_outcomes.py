"""Real pytest runs through the plugin: outcomes, durations, failure locations, output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from maestro.engine.events import Event, FileDeps, TestResult, TestStart, TestTrace
from maestro.engine.interpreter import Interpreter
from maestro.engine.runner import run_pytest_sync
from maestro.errors import PytestUsageError

WriteWorkspace = Callable[[dict[str, str]], Path]

CALC = """
def div(a, b):
    return a / b
"""

OUTCOMES = """
import os
import sys
import time

import pytest

from pkg import calc


def test_passes():
    time.sleep(0.2)
    assert calc.div(4, 2) == 2


def test_fails():
    expected = 1
    assert calc.div(1, 0) == expected


def test_assert():
    assert 1 + 1 == 3


def test_noisy():
    print('{"event": "test_result", "v": 1, "nodeid": "forged"}')
    print("to stderr", file=sys.stderr)
    os.write(1, b'raw {"event": "session_end"}\\n')


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass


@pytest.mark.xfail(reason="known")
def test_xfailed():
    assert 0


@pytest.mark.xfail(reason="fixed already")
def test_xpassed():
    pass


@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")


def test_setup_error(broken):
    pass


@pytest.fixture
def bad_teardown():
    yield
    raise ValueError("teardown broke")


def test_teardown_error(bad_teardown):
    pass
"""


@pytest.fixture
def outcome_root(workspace: WriteWorkspace) -> Path:
    return workspace(
        {"pkg/__init__.py": "", "pkg/calc.py": CALC, "tests/test_outcomes.py": OUTCOMES}
    )


def _line(needle: str) -> int:
    """1-based line of ``needle`` in the OUTCOMES test file as written."""
    lines = OUTCOMES.lstrip("\n").splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def _results(root: Path, interpreter: Interpreter, *args: str) -> dict[str, TestResult]:
    report = run_pytest_sync(root, interpreter, list(args))
    return {nodeid.split("::")[-1]: result for nodeid, result in report.results.items()}


def test_every_outcome_is_reported(outcome_root: Path, interpreter: Interpreter) -> None:
    events: list[Event] = []
    report = run_pytest_sync(outcome_root, interpreter, ["tests"], on_event=events.append)
    by_name = {nodeid.split("::")[-1]: r for nodeid, r in report.results.items()}
    assert {name: r.outcome for name, r in by_name.items()} == {
        "test_passes": "passed",
        "test_fails": "failed",
        "test_assert": "failed",
        "test_noisy": "passed",
        "test_skipped": "skipped",
        "test_xfailed": "xfailed",
        "test_xpassed": "xpassed",
        "test_setup_error": "error",
        "test_teardown_error": "error",
    }
    assert report.exit_code == 1
    assert report.session is not None and report.session_end is not None
    assert report.session_end.exitstatus == 1
    assert report.invalid_event_lines == 0
    assert report.unfinished == ()
    assert by_name["test_passes"].duration_s >= 0.2
    assert by_name["test_skipped"].message == "not today"
    assert by_name["test_setup_error"].when == "setup"
    assert by_name["test_setup_error"].message == "RuntimeError: fixture broke"
    assert by_name["test_teardown_error"].when == "teardown"
    assert report.outcomes["failed"] == 2
    # Every test_start precedes its result.
    order = [(type(e).__name__, getattr(e, "nodeid", "")) for e in events]
    for nodeid in report.results:
        assert order.index(("TestStart", nodeid)) < order.index(("TestResult", nodeid))
    # (session_trace comes just before session_end)
    assert all(isinstance(e, TestStart | TestResult | TestTrace | FileDeps) for e in events[2:-2])
    assert report.wall_s > 0.2
    assert report.cpu_s > 0


def test_failure_points_at_test_line_and_raising_source_line(
    outcome_root: Path, interpreter: Interpreter
) -> None:
    results = _results(outcome_root, interpreter, "tests/test_outcomes.py")
    fails = results["test_fails"]
    assert fails.message == "ZeroDivisionError: division by zero"
    assert fails.location is not None
    assert fails.location.path == "tests/test_outcomes.py"
    assert fails.location.line == _line("def test_fails")
    assert fails.test_line == _line("calc.div(1, 0)")
    assert fails.raised_at is not None
    assert (fails.raised_at.path, fails.raised_at.line) == ("pkg/calc.py", 2)
    assert fails.longrepr and "ZeroDivisionError" in fails.longrepr

    assertion = results["test_assert"]
    assert assertion.message is not None and assertion.message.startswith("AssertionError")
    assert assertion.test_line == _line("1 + 1 == 3")
    assert assertion.raised_at is not None
    assert assertion.raised_at.path == "tests/test_outcomes.py"
    assert assertion.raised_at.line == _line("1 + 1 == 3")

    setup = results["test_setup_error"]
    assert setup.raised_at is not None and setup.raised_at.line == _line("fixture broke")


def test_printed_output_is_captured_and_never_parsed_as_events(
    outcome_root: Path, interpreter: Interpreter
) -> None:
    report = run_pytest_sync(outcome_root, interpreter, ["tests/test_outcomes.py::test_noisy"])
    assert list(report.results) == ["tests/test_outcomes.py::test_noisy"]
    noisy = report.results["tests/test_outcomes.py::test_noisy"]
    assert '"nodeid": "forged"' in noisy.stdout
    assert noisy.stderr == "to stderr\n"
    assert b"1 passed" in report.stdout


def test_output_of_uncaptured_run_lands_in_stdout(
    outcome_root: Path, interpreter: Interpreter
) -> None:
    noisy = "tests/test_outcomes.py::test_noisy"
    report = run_pytest_sync(outcome_root, interpreter, ["-s", noisy])
    assert b'"nodeid": "forged"' in report.stdout
    assert b"to stderr" in report.stderr
    assert report.results[noisy].outcome == "passed"


def test_collection_error_is_reported(workspace: WriteWorkspace, interpreter: Interpreter) -> None:
    root = workspace(
        {
            "tests/test_ok.py": "def test_ok():\n    pass\n",
            "tests/test_broken.py": "import not_a_module_anywhere\n",
            "tests/test_syntax.py": "def test_x(:\n",
        }
    )
    report = run_pytest_sync(root, interpreter, ["tests"])
    errors = {e.path: e for e in report.collection_errors}
    assert set(errors) == {"tests/test_broken.py", "tests/test_syntax.py"}
    assert "No module named 'not_a_module_anywhere'" in errors["tests/test_broken.py"].message
    assert "SyntaxError" in errors["tests/test_syntax.py"].longrepr
    assert report.exit_code == 2  # interrupted
    assert report.results == {}
    assert report.collected is not None
    assert report.collected.files == {"tests/test_ok.py": ["tests/test_ok.py::test_ok"]}


def test_junit_xml_bytes_are_returned(
    workspace: WriteWorkspace, interpreter: Interpreter, tmp_path: Path
) -> None:
    root = workspace({"test_one.py": "def test_one():\n    pass\n"})
    report = run_pytest_sync(root, interpreter, [], junit_xml=tmp_path / "junit.xml")
    assert report.junit_xml is not None
    assert b"<testsuite" in report.junit_xml and b'name="test_one"' in report.junit_xml
    assert report.exit_code == 0


def test_no_tests_is_exit_five_not_an_error(
    workspace: WriteWorkspace, interpreter: Interpreter
) -> None:
    root = workspace({"README": "nothing here\n"})
    report = run_pytest_sync(root, interpreter, [])
    assert report.exit_code == 5
    assert report.results == {}


def test_what_pytest_refuses_is_a_usage_error_in_its_words(
    workspace: WriteWorkspace, interpreter: Interpreter
) -> None:
    root = workspace({"test_one.py": "def test_one():\n    pass\n"})
    with pytest.raises(PytestUsageError) as err:
        run_pytest_sync(root, interpreter, ["--no-such-option"])
    assert err.value.message == "pytest refused the run: unrecognized arguments: --no-such-option"
    (root / "conftest.py").write_text("import no_such_module\n")
    with pytest.raises(PytestUsageError) as err:
        run_pytest_sync(root, interpreter, ["test_one.py"])
    assert "ImportError while loading conftest" in err.value.message
    assert "No module named 'no_such_module'" in err.value.message
    assert err.value.hint is not None and "conftest.py" in err.value.hint


def test_environment_is_allowlisted(
    workspace: WriteWorkspace, interpreter: Interpreter, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = workspace(
        {
            "test_env.py": """
            import os

            def test_env():
                assert "MAESTRO_SECRET_FOR_TEST" not in os.environ
                assert os.environ["GIVEN"] == "yes"
                assert os.environ["ALLOWED_X"] == "1"
            """
        }
    )
    monkeypatch.setenv("MAESTRO_SECRET_FOR_TEST", "leak")
    monkeypatch.setenv("ALLOWED_X", "1")
    report = run_pytest_sync(
        root, interpreter, [], env_allowlist=["PATH", "ALLOWED_*"], extra_env={"GIVEN": "yes"}
    )
    assert report.outcomes == {"passed": 1}, report.stdout.decode()


def test_a_process_that_dies_inside_a_test_keeps_the_results_before_it(
    workspace: WriteWorkspace, interpreter: Interpreter
) -> None:
    """Results are written out with the next test's start (not one write each): a child that
    dies inside a test has reported every test before it, and names the one it died in."""
    root = workspace(
        {
            "test_die.py": (
                "import os\n\n\ndef test_first():\n    pass\n\n\ndef test_second():\n"
                "    assert False\n\n\ndef test_dies():\n    os._exit(9)\n\n\n"
                "def test_never():\n    pass\n"
            )
        }
    )
    report = run_pytest_sync(root, interpreter, [])
    outcomes = {nodeid.split("::")[-1]: r.outcome for nodeid, r in report.results.items()}
    assert outcomes == {"test_first": "passed", "test_second": "failed"}
    assert report.unfinished == ("test_die.py::test_dies",)
    assert report.exit_code == 9


def test_the_last_result_is_reported_when_the_session_ends_abruptly(
    workspace: WriteWorkspace, interpreter: Interpreter
) -> None:
    """No test starts after the last one to carry its result out: it is written at once (a
    session-finish hook that exits the process must not lose it)."""
    root = workspace(
        {
            "conftest.py": (
                "import os\n\nimport pytest\n\n\n@pytest.hookimpl(tryfirst=True)\n"
                "def pytest_sessionfinish(session):\n    os._exit(0)\n"
            ),
            "test_one.py": "def test_one():\n    pass\n\n\ndef test_two():\n    pass\n",
        }
    )
    report = run_pytest_sync(root, interpreter, [])
    outcomes = {nodeid.split("::")[-1]: r.outcome for nodeid, r in report.results.items()}
    assert outcomes == {"test_one": "passed", "test_two": "passed"}
    assert report.unfinished == ()
    assert report.session_end is None  # the plugin's own session end never ran
