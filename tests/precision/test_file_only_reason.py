"""A test file whose only result is the file itself (a module-level `pytest.importorskip`) is
not a node: its reason says it of the file, never as '<file> <reason>' (cloudpickle:
'inputs changed: tests/conftest.py: tests/ipy_test.py tests/conftest.py is a new input')."""

from __future__ import annotations

from precision_helpers import Workspace


def test_the_reason_of_a_file_skipped_at_module_level_reads_as_the_file_s(ws: Workspace) -> None:
    ws.write(
        "tests/test_skipped.py",
        "import pytest\n\npytest.importorskip('no_such_module_here')\n\n\n"
        "def test_never():\n    pass\n",
    )
    first = ws.run()
    assert first.skipped >= 1 and first.failed == 0
    ws.write("tests/conftest.py", "import pytest\n")
    plan = ws.plan()
    skipped = next(f for f in plan.files if f.target == "tests/test_skipped.py")
    assert skipped.runs
    said = skipped.describe()
    assert "tests/test_skipped.py tests/conftest.py" not in said, said
    assert (
        said
        == "inputs changed: tests/conftest.py: the whole file: tests/conftest.py is a new input"
    ), said
