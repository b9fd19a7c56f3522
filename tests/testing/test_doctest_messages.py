"""A failed doctest's one-line message says what its example did, as pytest's report does.
Found on semver, whose docs/*.rst doctests failed under Maestro with only
``doctest.UnexpectedException: <DocTest usage.rst from ...:0 (1 example)>`` where pytest
printed ``UNEXPECTED EXCEPTION: NameError: name 'semver' is not defined``: the reader could not
tell why, and its line was the file's first (pytest says the example's). Real pytest child, real
LMDB."""

from __future__ import annotations

from testing_helpers import Workspace

from maestro.engine import testing

PYPROJECT = """
[project]
name = "demo"
version = "0"

[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = "--doctest-glob=*.rst"
"""


def messages(summary: testing.Summary) -> dict[str, str | None]:
    return {t.node_id: t.message for r, _ in summary.results() for t in r.tests}


def test_a_doctest_raising_says_its_exception(ws: Workspace) -> None:
    ws.write("tests/usage.rst", "Usage\n=====\n\n    >>> answer\n    42\n")
    ws.write("pyproject.toml", PYPROJECT)
    summary = ws.run()
    assert summary.failed == 1
    message = messages(summary)["tests/usage.rst::usage.rst"] or ""
    assert message == "NameError: name 'answer' is not defined"
    ((_, failure),) = summary.failures()
    assert (failure.path, failure.line) == ("tests/usage.rst", 4)  # the example's line


def test_a_doctest_printing_otherwise_says_what_it_expected_and_got(ws: Workspace) -> None:
    ws.write("tests/usage.rst", "Usage\n=====\n\n    >>> 6 * 7\n    41\n")
    ws.write("pyproject.toml", PYPROJECT)
    summary = ws.run()
    assert summary.failed == 1
    assert messages(summary)["tests/usage.rst::usage.rst"] == ">>> 6 * 7: expected 41, got 42"
