"""A failed ``unittest.TestCase`` method says its exception and where it was raised, as
pytest's report does. Found on jsonschema, whose ``TestValidationErrorMessages`` failed under
Maestro with the message ``0`` (the last line of a multi-line ``SchemaError``) and the line of its
``def``, where pytest said ``jsonschema.exceptions.SchemaError: 0 is less than the minimum of
0``: pytest's unittest plugin hands a TestCase's failure to the report only in its own hook, after
Maestro's had looked. Real pytest child, real LMDB."""

from __future__ import annotations

from testing_helpers import Workspace

from maestro.engine import testing

TESTS = """
import unittest


class SchemaError(Exception):
    pass


def check(limit):
    if limit <= 0:
        raise SchemaError(f"{limit} is less than the minimum of 1\\n\\nOn schema:\\n    {limit}")


class T(unittest.TestCase):
    def test_raises(self):
        limit = 0
        check(limit)

    def test_asserts(self):
        self.assertEqual(
            [1, 2], [1, 3]
        )
"""


def messages(summary: testing.Summary) -> dict[str, str | None]:
    return {t.node_id: t.message for r, _ in summary.results() for t in r.tests}


def test_a_failed_test_case_method_says_its_exception_and_its_line(ws: Workspace) -> None:
    ws.write("tests/test_case.py", TESTS)
    summary = ws.run()
    assert summary.failed == 2
    said = messages(summary)
    assert said["tests/test_case.py::T::test_raises"] == (
        "test_case.SchemaError: 0 is less than the minimum of 1"
    )
    assert (said["tests/test_case.py::T::test_asserts"] or "").startswith(
        "AssertionError: Lists differ: [1, 2] != [1, 3]"
    )
    lines = {t.node_id: (t.path, t.line) for _, t in summary.failures()}
    assert lines["tests/test_case.py::T::test_raises"] == ("tests/test_case.py", 10)
    assert lines["tests/test_case.py::T::test_asserts"] == ("tests/test_case.py", 19)
