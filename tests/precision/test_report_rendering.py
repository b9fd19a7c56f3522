"""pytest's own report of a raising test formats its traceback from the source files of its
frames (through linecache). That text is the report's, not the test's: the outcome was decided
by the code that ran, which the node's record already holds. (A test that formats a traceback
itself, and judges it, still reads the files it shows: test_node_selection.py.)"""

from __future__ import annotations

import sys

import pytest
from precision_helpers import Workspace, ran_nodes

XFAIL_AND_PASS = (
    "import pytest\n\n\n"
    "@pytest.mark.xfail(reason='not implemented', strict=False)\n"
    "def test_expected_to_fail():\n"
    "    raise NotImplementedError('later')\n\n\n"
    "def test_passes():\n"
    "    assert 1 + 1 == 2\n"
)


def test_an_expected_failure_does_not_rerun_for_an_edit_its_traceback_showed_nothing_of(
    ws: Workspace,
) -> None:
    ws.write("tests/test_marks.py", XFAIL_AND_PASS)
    first = ws.run()
    assert first.failed == 0
    ws.edit("tests/test_marks.py", "assert 1 + 1 == 2", "assert 2 + 2 == 4")
    summary = ws.run()
    # before: the xfailed node re-ran too, 'read tests/test_marks.py, changed' (its report's
    # traceback text), although nothing it ran changed
    assert ran_nodes(summary) == ["tests/test_marks.py::test_passes"]
    assert summary.failed == 0


# An exception whose text is made by workspace code: pytest's report calls its __str__.
ERROR_TEXT = (
    "def describe(value):\n"
    "    return f'value {value!r} is not supported yet'\n\n\n"
    "class Unsupported(Exception):\n"
    "    def __str__(self):\n"
    "        return describe(self.args[0])\n"
)

XFAIL_RAISING_UNSUPPORTED = (
    "import pytest\n\n"
    "from pkg.errors import Unsupported\n\n\n"
    "@pytest.mark.xfail(reason='later', strict=False)\n"
    "def test_expected_to_fail():\n"
    "    raise Unsupported(3)\n\n\n"
    "def test_passes():\n"
    "    assert 1 + 1 == 2\n"
)

REPORT_HOOK = (
    "import pytest\n\n\n"
    "@pytest.hookimpl(hookwrapper=True)\n"
    "def pytest_runtest_makereport(item, call):\n"
    "    yield\n"
)


@pytest.mark.skipif(
    sys.version_info >= (3, 12),
    reason="3.12's sys.monitoring costs nothing in pytest's report code: the recorder keeps "
    "watching there, and the exception's text stays recorded",
)
def test_code_only_pytests_report_of_a_failure_ran_is_not_the_tests(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before 3.12, cProfile's hook made a mass failure's run about 1.6x the CPU of pytest's,
    nearly all of it in pytest formatting tracebacks; the recorder pauses it there."""
    # this venv's plugins (schemathesis') wrap the report and may judge its text
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    ws.write(
        "pyproject.toml",
        '[project]\nname = "demo"\nversion = "0"\n\n[tool.pytest.ini_options]\n'
        'testpaths = ["tests"]\n\n[tool.maestro]\n'
        'env-allowlist = ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"]\n',
    )
    ws.write("pkg/errors.py", ERROR_TEXT)
    ws.write("tests/test_marks.py", XFAIL_RAISING_UNSUPPORTED)
    assert ws.run().failed == 0
    ws.edit("pkg/errors.py", "is not supported yet", "is not supported")
    summary = ws.run()
    assert ran_nodes(summary) == []
    assert summary.failed == 0


def test_a_report_hook_of_the_project_keeps_the_reports_code_recorded(ws: Workspace) -> None:
    """A conftest's makereport hook may judge what the report shows: no pause then."""
    ws.write("pkg/errors.py", ERROR_TEXT)
    ws.write("tests/test_marks.py", XFAIL_RAISING_UNSUPPORTED)
    ws.write("tests/conftest.py", REPORT_HOOK)
    assert ws.run().failed == 0
    ws.edit("pkg/errors.py", "is not supported yet", "is not supported")
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_marks.py::test_expected_to_fail"]


def test_a_test_formatting_a_failure_itself_still_records_the_text_code(ws: Workspace) -> None:
    """The pause is pytest's report's only: a test judging an exception's text depends on it."""
    ws.write("pkg/errors.py", ERROR_TEXT)
    ws.write(
        "tests/test_text.py",
        "import pytest\n\n"
        "from pkg.errors import Unsupported\n\n\n"
        "def test_message():\n"
        "    with pytest.raises(Unsupported) as info:\n"
        "        raise Unsupported(3)\n"
        "    assert 'not supported yet' in str(info.getrepr())\n",
    )
    assert ws.run().failed == 0
    ws.edit("pkg/errors.py", "is not supported yet", "is not supported")
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_text.py::test_message"]
    assert summary.failed == 1
