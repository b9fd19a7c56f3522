"""`maestro test -- PATHS` (files, folders, node ids) answers what `pytest PATHS` answers: a file
whose tests read what an earlier file's tests leave changed (a run polluter) is run, keyed and
served without that file unless the paths name it too, and a full run's result (the polluter
before it) is never served for the file named alone, nor the other way round.

User trial AA (reductions rep5 / rep6): once a full run had seen tests/test_a.py change a module
tests/test_b.py reads, `maestro test -- tests/test_b.py` ran test_a.py first ("not selected; runs
first, not shown") and said 1 failed where `pytest tests/test_b.py` says 2 passed; and where
test_b.py fails alone, it served the full run's pass without running pytest at all. On icalendar
a 39-test file (2 s under plain pytest) took 127 s: 7 unselected polluter files ran first. Real
pytest children, real LMDB; every answer is first asked of plain pytest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from project_python import project_python
from test_run_state import pytest_says
from testing_helpers import Workspace, outcomes, ran

from maestro.engine import testing
from maestro.engine.pollution import Polluters

POLLUTER = "tests/test_a.py"
READER = "tests/test_b.py"
FLAG = f"{READER}::test_b"

# rep5: the polluter's tests fill a list the reader asserts empty (the full run fails it)
FILLS = "from pkg import state\n\n\ndef test_a():\n    state.FLAG.append(1)\n"
ASSERTS_EMPTY = (
    "from pkg import state\n\n\ndef test_b():\n    assert state.FLAG == []\n\n\n"
    "def test_c():\n    assert 1\n"
)
# rep6: the polluter's tests fill a registry the reader needs (the reader fails alone)
REGISTERS = "from pkg import state\n\n\ndef test_a():\n    state.REGISTRY['x'] = 1\n"
NEEDS_IT = (
    "from pkg import state\n\n\ndef test_b():\n    assert state.REGISTRY['x'] == 1\n\n\n"
    "def test_c():\n    assert 1\n"
)


def write(ws: Workspace, *, polluter: str, reader: str, state: str) -> None:
    ws.write("pkg/state.py", state)
    ws.write(POLLUTER, polluter)
    ws.write(READER, reader)


def ours(ws: Workspace, *paths: str) -> dict[str, str]:
    return outcomes(ws.run(testing.Selection(paths=paths)))


def planned_targets(ws: Workspace, *paths: str) -> list[str]:
    return [f.target for f in ws.plan(testing.Selection(paths=paths)).files]


@pytest.mark.parametrize("named", [READER, FLAG], ids=["file", "node-id"])
def test_a_file_named_alone_after_a_full_run_is_not_failed_by_an_unnamed_polluter(
    ws: Workspace, named: str
) -> None:
    write(ws, polluter=FILLS, reader=ASSERTS_EMPTY, state="FLAG = []\n")
    full = pytest_says(ws)
    assert full[FLAG] == "failed"
    assert outcomes(ws.run()) == full
    assert POLLUTER in Polluters.load(ws.root).ran
    alone = pytest_says(ws, named)
    assert alone[FLAG] == "passed"
    # was 1 failed: test_a.py ran first ("not selected; runs first, not shown")
    assert planned_targets(ws, named) == [READER]
    assert ours(ws, named) == alone
    assert ours(ws, named) == alone  # served now: the answer of the file alone
    # the full run is still the full run's answer (its failure runs again, after test_a.py)
    assert outcomes(ws.run()) == full
    assert ours(ws, named) == alone


@pytest.mark.parametrize("named", [READER, FLAG], ids=["file", "node-id"])
def test_a_file_named_alone_is_not_served_the_full_run_s_pass(ws: Workspace, named: str) -> None:
    write(ws, polluter=REGISTERS, reader=NEEDS_IT, state="REGISTRY = {}\n")
    full = pytest_says(ws)
    assert full[FLAG] == "passed"
    assert outcomes(ws.run()) == full
    alone = pytest_says(ws, named)
    assert alone[FLAG] == "failed"
    # was 1 passed, "ran 0 files, 1 cached": the full run's result, no pytest at all
    summary = ws.run(testing.Selection(paths=(named,)))
    assert outcomes(summary) == alone
    assert ran(summary) == [READER]
    assert ours(ws, named) == alone
    # and the file's own answer is never served for the full run: the full run's is
    again = ws.run()
    assert outcomes(again) == full
    assert ran(again) == []


def test_a_fresh_state_and_one_that_saw_the_full_run_answer_alike(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(ws, polluter=FILLS, reader=ASSERTS_EMPTY, state="FLAG = []\n")
    ws.run()
    seen = ours(ws, READER)
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(tmp_path / "fresh-cache"))
    monkeypatch.setenv("MAESTRO_STATE_DIR", str(tmp_path / "fresh-state"))
    assert ours(ws, READER) == seen == pytest_says(ws, READER)


@pytest.mark.parametrize("order", [(POLLUTER, READER), (READER, POLLUTER)], ids=["a-b", "b-a"])
def test_a_selection_naming_the_polluter_answers_as_pytest_given_both(
    ws: Workspace, order: tuple[str, str]
) -> None:
    """The polluter named too runs where pytest runs it, and is shown: it is selected."""
    write(ws, polluter=FILLS, reader=ASSERTS_EMPTY, state="FLAG = []\n")
    ws.run()
    truth = pytest_says(ws, *order)
    assert truth[FLAG] == ("failed" if order[0] == POLLUTER else "passed")
    summary = ws.run(testing.Selection(paths=order))
    assert outcomes(summary) == truth
    assert not any(f.planned.companion for f in summary.files)
    assert outcomes(ws.run(testing.Selection(paths=order))) == truth
    # the reader edited: it runs again, and the polluter, cached, runs before it when named first
    ws.edit(READER, "assert 1", "assert 2")
    planned = ws.plan(testing.Selection(paths=order))
    assert [f.target for f in planned.files if f.runs] == (
        [POLLUTER, READER] if order[0] == POLLUTER else [READER]
    )
    assert outcomes(ws.run(testing.Selection(paths=order))) == pytest_says(ws, *order)
    assert outcomes(ws.run()) == pytest_says(ws)


def test_a_folder_holding_every_test_file_answers_as_the_full_run(ws: Workspace) -> None:
    write(ws, polluter=REGISTERS, reader=NEEDS_IT, state="REGISTRY = {}\n")
    full = ws.run()
    folder = ws.run(testing.Selection(paths=("tests",)))
    assert outcomes(folder) == outcomes(full) == pytest_says(ws, "tests")
    assert ran(folder) == []  # the same files in the same order: the full run's keys


@pytest.mark.parametrize("k", ["test_b", "not test_a"])
def test_a_keyword_selection_is_no_path_selection(ws: Workspace, k: str) -> None:
    """pytest -k still collects every file (its tests deselected): as before, the full run's."""
    write(ws, polluter=FILLS, reader=ASSERTS_EMPTY, state="FLAG = []\n")
    ws.run()
    truth = pytest_says(ws, "-k", k)
    assert outcomes(ws.run(testing.Selection(pytest_args=("-k", k)))) == truth


MAESTRO = str(Path(sys.executable).with_name("maestro"))


def maestro(cwd: Path, *args: str, daemon: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "PYTEST_ADDOPTS")}
    env.update(MAESTRO_DAEMON=daemon)
    done = subprocess.run(
        [MAESTRO, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    return done.stdout + done.stderr


def last_line(said: str) -> str:
    return said.strip().splitlines()[-1].split(" — ")[0]


@pytest.mark.parametrize("daemon", ["off", "start"])
def test_the_console_script_answers_as_pytest_given_the_file(isolated: Path, daemon: str) -> None:
    root = isolated / "ws"
    (root / "pkg").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "maestro.toml").write_text(f"interpreter = {str(project_python())!r}\n")
    (root / "pytest.ini").write_text("[pytest]\ntestpaths = tests\n")
    (root / "pkg/__init__.py").write_text("")
    (root / "pkg/state.py").write_text("FLAG = []\n")
    (root / POLLUTER).write_text(FILLS)
    (root / READER).write_text(ASSERTS_EMPTY)
    try:
        assert last_line(maestro(root, "test", daemon=daemon)) == "1 failed, 2 passed"
        said = maestro(root, "test", "--", READER, daemon=daemon)
        assert last_line(said) == "2 passed", said  # pytest tests/test_b.py: 2 passed
        assert "runs first" not in said, said
        # why it runs again: the full run's result had test_a.py's tests before it
        assert f"{POLLUTER} (its tests ran before it last time, not in this run)" in said, said
        said = maestro(root, "test", "--", FLAG, daemon=daemon)
        assert last_line(said) == "1 passed", said
        assert last_line(maestro(root, "test", daemon=daemon)) == "1 failed, 2 passed"
    finally:
        if daemon != "off":
            maestro(root, "daemon", "stop", daemon="off")


@pytest.mark.parametrize(
    ("imports", "stored"),
    [("import pkg.m", True), ("importlib.import_module('m.gkp'[::-1])", False)],
    ids=["import", "computed"],
)
def test_a_module_another_named_file_imports_is_no_answer_for_the_file_alone(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, imports: str, stored: bool
) -> None:
    """test_b.py reaches `pkg.m` as an attribute of `pkg`, imported by another file's collection
    (jsonpickle's ecdsa_test.py); the full run's first importer is test_a.py. Named with
    test_c.py, which imports it too (and runs), test_b.py passes as pytest says: keyed as
    collected with test_c.py when test_c.py's imports say so, else not stored. Alone it fails
    (an AttributeError). Not followed: a computed import in a test_c.py served from the cache
    (not collected, nothing says test_b.py needs it: test_b.py fails where pytest passes it)."""
    ws.write("pkg/m.py", "def f():\n    return 1\n")
    ws.write(POLLUTER, "import pkg.m\n\n\ndef test_a():\n    assert pkg.m.f()\n")
    ws.write(READER, "import pkg\n\n\ndef test_b():\n    assert pkg.m.f() == 1\n")
    ws.write("tests/test_c.py", f"import importlib\n\n{imports}\n\n\ndef test_c():\n    pass\n")
    monkeypatch.setenv("MAESTRO_TRACE", "always")  # a per-test record from the first run on
    assert outcomes(ws.run()) == pytest_says(ws)
    assert Polluters.load(ws.root).loaders["pkg/m.py"] == POLLUTER
    both = (READER, "tests/test_c.py")
    ws.edit("tests/test_c.py", "    pass", "    assert True")
    truth = pytest_says(ws, *both)
    assert truth[FLAG] == "passed"
    summary = ws.run(testing.Selection(paths=both))
    assert outcomes(summary) == truth
    assert [(f.target, f.stored) for f in summary.files] == [
        (READER, stored),
        ("tests/test_c.py", True),
    ]
    alone = pytest_says(ws, READER)
    assert alone[FLAG] == "failed"
    assert ours(ws, READER) == alone  # was served the pass of the run with test_c.py
    if stored:
        assert outcomes(ws.run(testing.Selection(paths=both))) == truth
    assert outcomes(ws.run()) == pytest_says(ws)
