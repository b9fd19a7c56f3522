"""A path outside the workspace that a test's child looked for and did not find (a tool's random
temporary name, a configuration file above the project) is still absent when an older result is
judged: it is no reason to run the whole file. pytest-mock's suite (pytester children probing
the temporary folder) re-ran all 169 tests after an undo and a new edit, "because
/tmp/9m9753cc (outside the workspace) changed". Real pytest children, a real LMDB cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from precision_helpers import FILES, Workspace, ran_nodes

PROBE = """\
import subprocess
import sys

from pkg import calc

# a child looking for a file by a name no run uses again (tempfile's probe of its folder)
PROBE = '''
import os, uuid
try:
    open(os.path.join({folder!r}, uuid.uuid4().hex)).close()
except FileNotFoundError:
    print("absent")
'''


def test_child():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert out.stdout.strip() == "absent"


def test_triple():
    assert calc.triple(2) == 6


def test_double():
    assert calc.double(2) == 4


def test_plain():
    assert True
"""


def test_an_absent_outside_path_of_an_older_result_is_no_change(
    ws: Workspace, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAESTRO_TRACE")  # a user's default: the first run before 3.12 untraced
    ws.write("tests/test_probe.py", PROBE.replace("{folder!r}", repr(str(outside))))
    assert ws.run().failed == 0  # the first run (untraced before 3.12)
    ws.edit("pkg/calc.py", "return x * 3", "return x * 4")
    assert ws.run().failed > 0  # a run with a per-test record; its child's name is absent
    ws.write("pkg/calc.py", FILES["pkg/calc.py"])
    assert ran_nodes(ws.run()) == []  # the undo: the first run's result is served again
    ws.edit("pkg/calc.py", "return x * RATE", "return RATE * x")
    summary = ws.run()
    probe = sorted(n for n in ran_nodes(summary) if n.startswith("tests/test_probe.py"))
    # judged by the run with a per-test record: triple was edited there, double is edited now;
    # the child's test and the plain test are served
    assert probe == ["tests/test_probe.py::test_double", "tests/test_probe.py::test_triple"]
    assert summary.failed == 0
    assert not any(f.runs for f in ws.plan().files)  # and stored: nothing left to run
