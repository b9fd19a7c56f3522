"""A test that asks whether a workspace file is there without reading it (``Path.exists``,
``os.path.isfile``: an ``os.stat``, which raises no audit event) depends on it: creating or
deleting the file re-runs the test, which fails as under pytest (found by HB's review; served as
passed before)."""

from __future__ import annotations

from precision_helpers import Workspace, ran_nodes


def test_a_test_that_checks_a_file_is_there_reruns_when_it_is_created(ws: Workspace) -> None:
    ws.write("tests/test_data.py", "import pathlib\n\n\ndef test_no_flag():\n"
             "    assert not pathlib.Path('tests/flag.txt').exists()\n")  # fmt: skip
    assert ws.run().failed == 0
    ws.write("tests/flag.txt", "x\n")
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_data.py::test_no_flag"]
    assert summary.failed == 1


def test_a_test_that_checks_a_file_is_there_reruns_when_it_is_deleted(ws: Workspace) -> None:
    ws.write("tests/test_data.py", "import os\n\n\ndef test_values_there():\n"
             "    assert os.path.isfile('tests/values.txt')\n")  # fmt: skip
    assert ws.run().failed == 0
    (ws.root / "tests/values.txt").unlink()
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_data.py::test_values_there"]
    assert summary.failed == 1


def test_a_folder_asked_about_is_no_input(ws: Workspace) -> None:
    # a folder's being there is its listing's business: asking it (`is_dir`) adds no input
    ws.write("tests/test_data.py", "import pathlib\n\n\ndef test_dir():\n"
             "    assert pathlib.Path('tests').is_dir()\n")  # fmt: skip
    ws.run()
    ws.write("tests/other.txt", "a new file beside it\n")
    assert ran_nodes(ws.run()) == []


def test_a_file_asked_about_by_an_absolute_path_reruns_its_test(ws: Workspace) -> None:
    # the absolute path of a pathlib object: the workspace's file all the same
    ws.write("tests/test_data.py", "import os, pathlib\n\n\ndef test_no_flag():\n"
             "    here = pathlib.Path(os.path.abspath(__file__)).parent\n"
             "    assert not (here / 'flag.txt').exists()\n")  # fmt: skip
    assert ws.run().failed == 0
    ws.write("tests/flag.txt", "x\n")
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_data.py::test_no_flag"]
    assert summary.failed == 1


def test_a_file_asked_about_through_a_parent_folder_reruns_its_test(ws: Workspace) -> None:
    # an absolute path with a `..`: normalised, it names the workspace's file
    ws.write("tests/test_data.py", "import os\n\n\ndef test_no_mark():\n"
             "    here = os.path.dirname(os.path.abspath(__file__))\n"
             "    assert not os.path.exists(here + '/../tests/mark.txt')\n")  # fmt: skip
    assert ws.run().failed == 0
    ws.write("tests/mark.txt", "x\n")
    summary = ws.run()
    assert ran_nodes(summary) == ["tests/test_data.py::test_no_mark"]
    assert summary.failed == 1
