"""What a test file's import reads is an input of its tests when the file holds a test class
(tomli's tests/test_data.py, a unittest.TestCase, reads its expected JSON and globs its case
folders at import). pytest reports a collector after its children, a file after its classes:
the file's own collection must keep what it read once a class's collection ends."""

from __future__ import annotations

import pytest
from testing_helpers import Workspace, ran

from maestro.engine import testing

CLASS_STYLES = {
    "unittest": """
        import unittest
        from pathlib import Path

        DATA = Path(__file__).parent / "cases"
        EXPECTED = (DATA / "expected.txt").read_text()
        CASES = tuple(sorted(DATA.glob("*.case")))


        class TestCases(unittest.TestCase):
            def test_expected(self):
                self.assertEqual(EXPECTED, "1\\n")

            def test_cases(self):
                self.assertEqual([c.name for c in CASES], ["a.case"])
        """,
    "plain": """
        from pathlib import Path

        DATA = Path(__file__).parent / "cases"
        EXPECTED = (DATA / "expected.txt").read_text()
        CASES = tuple(sorted(DATA.glob("*.case")))


        class TestCases:
            def test_expected(self):
                assert EXPECTED == "1\\n"

            def test_cases(self):
                assert [c.name for c in CASES] == ["a.case"]
        """,
}


def outcomes(summary: testing.Summary) -> dict[str, str]:
    return {t.node_id: t.outcome for r, _ in summary.results() for t in r.tests}


@pytest.mark.parametrize("style", sorted(CLASS_STYLES))
def test_a_class_files_import_time_reads_and_listings_are_inputs_of_its_tests(
    ws: Workspace, style: str
) -> None:
    ws.write("tests/test_cases.py", CLASS_STYLES[style])
    ws.write("tests/cases/expected.txt", "1\n")
    ws.write("tests/cases/a.case", "")
    target = testing.Selection(paths=("tests/test_cases.py",))
    expected = "tests/test_cases.py::TestCases::test_expected"
    cases = "tests/test_cases.py::TestCases::test_cases"
    assert set(outcomes(ws.run(target)).values()) == {"passed"}
    assert ran(ws.run(target)) == []  # nothing changed: served

    ws.write("tests/cases/expected.txt", "2\n")  # a file read at import changed
    changed = ws.run(target)
    assert ran(changed) == ["tests/test_cases.py"]
    assert outcomes(changed)[expected] == "failed"

    ws.write("tests/cases/expected.txt", "1\n")
    ws.write("tests/cases/b.case", "")  # a file added to a folder listed at import
    added = ws.run(target)
    assert ran(added) == ["tests/test_cases.py"]
    assert outcomes(added)[cases] == "failed"
    assert outcomes(added)[expected] == "passed"
