"""A test pytest cannot be given by its node id (a conftest's collector names its items
"DOM::parser::namespaced", as html5lib's tree-construction data files do: pytest 7 and 9 both
answer "not found") re-runs with its whole file. Maestro re-ran a failed one by its id, and
pytest refused the run (exit 4) where plain pytest runs and reports the failure."""

from __future__ import annotations

from test_fidelity_trials import outcomes, pytest_says
from testing_helpers import Workspace, ran

CONFTEST = """
import pytest


def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".dat":
        return DatFile.from_parent(parent, path=file_path)


class DatFile(pytest.File):
    def collect(self):
        for i, line in enumerate(self.path.read_text().splitlines()):
            yield DatCase.from_parent(self, name=str(i), spec=line)


class DatCase(pytest.Collector):
    def __init__(self, *, spec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec

    def collect(self):
        for kind in ("dom", "tree"):
            yield DatItem.from_parent(self, name=f"{kind}::parser", spec=self.spec)


class DatItem(pytest.Item):
    def __init__(self, *, spec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.funcargs = {}  # pytest-lsp, installed beside Maestro, breaks an item without

    def runtest(self):
        assert self.spec == "ok"

    def reportinfo(self):
        return self.path, 0, self.name
"""


def test_a_failed_test_pytest_cannot_name_re_runs_with_its_file(ws: Workspace) -> None:
    ws.write("tests/conftest.py", CONFTEST)
    ws.write("tests/cases.dat", "ok\nbad\n")
    expected = pytest_says(ws, "tests/cases.dat")
    assert expected["tests/cases.dat::1::dom::parser"] == "failed"
    for _ in range(2):  # the first run; then the failed tests again, not refused
        summary = ws.run()
        assert summary.exit_code == 1
        found = outcomes(summary)
        assert {n: found.get(n) for n in expected} == expected
        assert "tests/cases.dat" in ran(summary)
