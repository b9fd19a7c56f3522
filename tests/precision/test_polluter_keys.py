"""A state polluter collected with a file that runs (its tests deselected, for what its import
does) keeps the inputs its own last run recorded: the collection alone records only part of
them, and its key (and those of the files whose keys name it) would change with no edit,
re-running them whole at the next run, and losing them again at the one after."""

from __future__ import annotations

from precision_helpers import Workspace, ran_nodes

REGISTRY = """\
class Counter:
    n = 0


def bump():
    Counter.n += 1
    return Counter.n
"""
VICTIM = """\
from pkg import reg


def test_victim():
    assert reg.bump() > 0
"""
POLLUTER = """\
import pathlib

from pkg import reg

reg.Counter.n += 10  # its import changes the module's state


def test_reads_data():
    assert pathlib.Path("tests/polluter.txt").read_text().strip() == "ok"
"""


def test_a_polluter_collected_with_a_running_file_keeps_its_recorded_inputs(
    ws: Workspace,
) -> None:
    ws.write("pkg/reg.py", REGISTRY)
    ws.write("tests/test_a_victim.py", VICTIM)  # imports pkg.reg first, the polluter after
    ws.write("tests/test_polluter.py", POLLUTER)
    ws.write("tests/polluter.txt", "ok\n")
    assert ws.run().failed == 0
    ws.edit("tests/test_a_victim.py", "> 0", ">= 1")
    # the victim runs, the polluter is collected with it (no test of it runs)
    assert ran_nodes(ws.run()) == ["tests/test_a_victim.py::test_victim"]
    assert ran_nodes(ws.run()) == []  # nothing changed since
    # what the polluter's test read is still its input
    ws.write("tests/polluter.txt", "changed\n")
    summary = ws.run()
    assert "tests/test_polluter.py::test_reads_data" in ran_nodes(summary)
    assert summary.failed == 1


DATA_ITEMS = """\
import pytest


class DataItem(pytest.Item):
    def __init__(self, *, function, data, **kwargs):
        super().__init__(**kwargs)
        self.function = function
        self.path = data  # reported at its data file, as PyYAML's legacy items are
        self.funcargs = {}  # pytest-lsp, installed beside Maestro, breaks an item without

    def runtest(self):
        self.function(self.path.read_text())

    def reportinfo(self):
        return self.path, 0, self.name


@pytest.hookimpl(hookwrapper=True)
def pytest_pycollect_makeitem(collector, name, obj):
    outcome = yield
    data = getattr(obj, "data", None)
    if data is not None:
        path = collector.path.parent / data
        outcome.force_result(DataItem.from_parent(collector, name=name, function=obj, data=path))
"""


def test_a_polluter_whose_items_are_reported_at_data_files_is_collected_only(
    ws: Workspace,
) -> None:
    # an item belongs to the test file that collected it, whatever path it reports: the
    # polluter's items ran beside the victim (its tests were not deselected) and their results
    # belonged to no file ("1 files did not finish")
    ws.write("pkg/reg.py", REGISTRY)
    ws.write("tests/conftest.py", DATA_ITEMS)
    ws.write("tests/test_a_victim.py", VICTIM)
    ws.write(
        "tests/test_polluter.py",
        "from pkg import reg\n\nreg.Counter.n += 10\n\n\n"
        "def test_case(text):\n    assert text.strip() == 'ok'\n\n\ntest_case.data = 'case.txt'\n",
    )
    ws.write("tests/case.txt", "ok\n")
    first = ws.run()
    assert first.failed == 0
    ws.edit("tests/test_a_victim.py", "> 0", ">= 1")
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_a_victim.py::test_victim"]
    assert (summary.failed, summary.exit_code) == (0, 0)
    assert summary.passed == first.passed
