"""A run of some tests of a file keeps, as the file's inputs, what the tests it did not run read
last time: their results are carried into the new one, so a later change to a file only they
read must still change the file's key and re-run them. Before, the partial run's reads
replaced the file's recorded inputs: after an edit that re-ran another test of the file (or a
re-run of its failed tests alone), a change to the data a carried test read was served from the
cache as passed, while pytest failed it."""

from __future__ import annotations

from precision_helpers import Workspace, ran_nodes

DATA = """\
import pathlib


def test_data():
    assert pathlib.Path("tests/data.txt").read_text().strip() == "one"


def test_other():
    assert True
"""
NODE = "tests/test_data_read.py::test_data"


def test_a_data_file_a_carried_test_read_stays_an_input(ws: Workspace) -> None:
    ws.write("tests/data.txt", "one\n")
    ws.write("tests/test_data_read.py", DATA)
    assert ws.run().failed == 0
    ws.edit("tests/test_data_read.py", "assert True", "assert 1")  # re-runs test_other alone
    assert ran_nodes(ws.run()) == ["tests/test_data_read.py::test_other"]
    ws.write("tests/data.txt", "two\n")
    summary = ws.run()
    assert NODE in ran_nodes(summary)
    assert summary.failed == 1
    ws.write("tests/data.txt", "one\n")
    assert ws.run().failed == 0


def test_a_data_file_stays_an_input_after_the_failed_tests_re_ran_alone(ws: Workspace) -> None:
    ws.write("tests/data.txt", "one\n")
    ws.write("tests/test_data_read.py", DATA.replace("assert True", "assert False"))
    assert ws.run().failed == 1
    # the same inputs: only the failed test re-runs (and fails again)
    again = ws.run()
    assert ran_nodes(again) == ["tests/test_data_read.py::test_other"] and again.failed == 1
    ws.write("tests/data.txt", "two\n")
    summary = ws.run()
    assert NODE in ran_nodes(summary)
    assert summary.failed == 2
