"""coverage.py's own data files are no test inputs: under pytest-cov (a project's `addopts =
--cov --cov-context=test`) the first test of a run looks for its parallel data file
(`.coverage.<host>.pid<n>.<random>`), which every pytest-cov run in the folder writes and
combines away at its end; in a key, a concurrent run's files re-ran tests for nothing
("inputs changed: .coverage.vm.pid24237.XSPeJsrx, ...", multidict in a user trial)."""

from __future__ import annotations

from testing_helpers import Workspace, ran

from maestro.engine.interpreter import Interpreter


def test_coverage_data_files_are_in_no_key_and_a_run_after_is_served(
    ws: Workspace, interpreter_cov: Interpreter
) -> None:
    ws.interpreter = interpreter_cov
    ws.edit(
        "pyproject.toml",
        'testpaths = ["tests"]',
        'testpaths = ["tests"]\naddopts = "--cov=pkg --cov-context=test"',
    )
    first = ws.run()
    assert not first.failures(), first.failures()
    assert ran(first) == sorted(f.target for f in first.files)
    assert (ws.root / ".coverage").exists()  # pytest-cov ran and combined its data
    # another pytest-cov run in the folder (a terminal's plain pytest) left its parallel data
    other = ws.root / ".coverage.otherhost.pid99.Xabcdefg"
    other.write_bytes((ws.root / ".coverage").read_bytes())
    ws.edit("tests/test_a.py", "add(1, 2) == 3", "add(2, 2) == 4")
    second = ws.run()  # pytest-cov's combine reads and deletes the other run's data
    reasons = [f"{f.target}: {f.planned.describe()}" for f in second.files if f.planned.runs]
    assert not other.exists()
    # coverage's own data file, looked for in the first test's window, is in no key: whether a
    # concurrent run's file of that name is there would re-run the test ("inputs changed")
    recorded = {k for f in second.files if f.result is not None for k in f.result.inputs}
    assert not [k for k in recorded if k.startswith(".coverage.")], sorted(recorded)
    assert ".coveragerc" in recorded  # coverage's configuration stays an input
    assert ran(second) == ["tests/test_a.py"], reasons
    third = ws.run()
    reasons = [f"{f.target}: {f.planned.describe()}" for f in third.files if f.planned.runs]
    assert ran(third) == [], reasons
