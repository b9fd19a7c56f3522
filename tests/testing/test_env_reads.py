"""A variable the project's code reads by name reaches pytest and keys the result: found on
wcwidth 0.9.4, whose package reads `WCWIDTH_PYTHON` at import. `WCWIDTH_PYTHON=1 pytest` skipped
tests/test_core.py::test_c_extension_parity; `WCWIDTH_PYTHON=1 maestro test` served the cached
pass: pytest got only allowlisted variables, and the key did not change. Real `maestro`
processes, real pytest, real LMDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from project_python import project_python
from testing_helpers import Workspace

from maestro.engine.runner import plugin_dir
from maestro.graph.env_refs import read_names

MAESTRO = str(Path(sys.executable).parent / "maestro")

MODULE = """
import os

PURE = bool(os.environ.get("DEMO_PURE", ""))
"""

TEST = """
import pytest

from pkg import mode


def test_fast_path():
    if mode.PURE:
        pytest.skip("pure Python mode")
    assert not mode.PURE
"""


def maestro(ws: Workspace, extra: dict[str, str], *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DEMO_PURE", "PYTHONUNBUFFERED")}
    env.update(MAESTRO_DAEMON="off", **extra)
    done = subprocess.run(
        [MAESTRO, *args], cwd=ws.root, env=env, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def test_a_variable_the_code_reads_reaches_pytest_and_keys_the_result(ws: Workspace) -> None:
    ws.write("pkg/mode.py", MODULE)
    ws.write("tests/test_mode.py", TEST)
    code, out = maestro(ws, {}, "test", "tests/test_mode.py")
    assert code == 0 and "1 passed" in out, out
    code, out = maestro(ws, {"DEMO_PURE": "1"}, "test", "tests/test_mode.py")
    assert code == 0, out
    assert "1 skipped" in out and "$DEMO_PURE" in out, out  # re-ran, and says why
    code, out = maestro(ws, {"DEMO_PURE": "1"}, "test", "tests/test_mode.py")
    assert "1 cached" in out and "1 skipped" in out, out  # its own result, served
    code, out = maestro(ws, {}, "test", "tests/test_mode.py")
    assert "1 cached" in out and "1 passed" in out, out  # unset again: the first result


def test_a_variable_read_by_a_name_made_at_run_time_is_found_by_the_read(ws: Workspace) -> None:
    # not a name the code reads literally, so not passed at first; the plugin sees the test
    # read it (tests/testing/test_withheld_env.py): the file runs again with it, as pytest would
    ws.write(
        "tests/test_mode.py",
        """
        import os


        def test_env():
            assert "DEMO_" + "OTHER" not in os.environ
        """,
    )
    code, out = maestro(ws, {"DEMO_OTHER": "1"}, "test", "tests/test_mode.py")
    assert code == 1 and "1 failed" in out and "read DEMO_OTHER" in out, out


def test_variables_that_steer_the_run_are_never_passed(ws: Workspace) -> None:
    # the project's code names them, but the user's value would change how pytest runs
    ws.write(
        "tests/test_mode.py",
        """
        import os


        def test_env():
            assert os.environ.get("PYTEST_ADDOPTS") is None
        """,
    )
    # (its options are honoured, as the run's own arguments: tests/testing/test_ignored_files.py)
    code, out = maestro(ws, {"PYTEST_ADDOPTS": "-k test_env"}, "test", "tests/test_mode.py")
    assert code == 0 and "1 passed" in out, out


def test_the_interpreters_own_settings_reach_pytest_and_key_the_result(ws: Workspace) -> None:
    # PYTHONWARNINGS=error in a CI job: pytest fails a test that warns; Maestro passed it,
    # started pytest without the variable, and served that pass under it
    ws.write(
        "tests/test_mode.py",
        """
        import warnings


        def test_warns():
            warnings.warn("old API", DeprecationWarning)
        """,
    )
    code, out = maestro(ws, {}, "test", "tests/test_mode.py")
    assert code == 0 and "1 passed" in out, out
    code, out = maestro(ws, {"PYTHONWARNINGS": "error"}, "test", "tests/test_mode.py")
    assert code == 1 and "1 failed" in out and "$PYTHONWARNINGS" in out, out
    code, out = maestro(ws, {}, "test", "tests/test_mode.py")
    assert code == 0 and "1 cached" in out and "1 passed" in out, out


def test_unbuffered_output_reaches_pytest_and_keys_the_result(ws: Workspace) -> None:
    # PYTHONUNBUFFERED=1 (Docker images, IDE run configurations): a child's print comes out
    # before its error message, and yamllint's `python -m yamllint` test fails under pytest;
    # Maestro started pytest without it and passed the test
    ws.write(
        "tests/test_child.py",
        """
        import subprocess
        import sys

        CHILD = "import sys; print('usage'); print('error', file=sys.stderr)"


        def test_error_comes_first():
            out = subprocess.run(
                [sys.executable, "-c", CHILD],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=True,
            ).stdout
            assert out.startswith("error"), out
        """,
    )
    code, out = maestro(ws, {}, "test", "tests/test_child.py")
    assert code == 0 and "1 passed" in out, out
    code, out = maestro(ws, {"PYTHONUNBUFFERED": "1"}, "test", "tests/test_child.py")
    assert code == 1 and "1 failed" in out and "$PYTHONUNBUFFERED" in out, out
    code, out = maestro(ws, {}, "test", "tests/test_child.py")
    assert code == 0 and "1 cached" in out and "1 passed" in out, out


def test_the_names_read() -> None:
    source = b"""
import os
from os import environ, getenv
a = os.environ.get("A_GET", "")
b = os.environ["B_ITEM"]
c = getenv('C_GETENV')
d = "D_IN" in os.environ
e = 'E_NOT' not in environ
f = os.environ.setdefault("F_DEFAULT", "1")
g = os.environ.get(NAME)  # not a literal: unknown
h = os.environb[b"H_BYTES"]
"""
    assert read_names(source) == [
        "A_GET", "B_ITEM", "C_GETENV", "D_IN", "E_NOT", "F_DEFAULT", "H_BYTES",
    ]  # fmt: skip
    assert read_names(b"x = 1\n") == []


@pytest.mark.parametrize(
    ("source", "names"),
    [
        (b'environ.pop( "A" ) ; environb.setdefault(B"B", 1)', ["A", "B"]),
        (b"os.getenvb(u'C') + getenv(rb\"D\")", ["C"]),  # rb: a prefix of two letters
        (b"r'E' not in environb, R\"F\"\n  in\tos.environ, U'G' in environ", ["E", "F", "G"]),
        (b"b'H' in environ or u\"I\" in environ or B'J' in environ", ["H", "I", "J"]),
        (b'"K" in os.environ.get("L")', ["K"]),  # the match of K took `environ`
        (b'x = \'M\' in environment; "N"in environ; "O" in os.environ_', []),
        (b"xenviron['P'] + _getenv('Q') + 9environ['R'] + environ['S\"]", []),
        (b"\xffenviron['T'] + (\"U\"\n\n not in\n environ)", ["T", "U"]),
    ],
)
def test_the_names_read_in_every_form_and_not_in_lookalikes(
    source: bytes, names: list[str]
) -> None:
    assert read_names(source) == names


def test_the_names_are_read_once_per_file_change(ws: Workspace) -> None:
    # a no-change plan must not read every Python file again (nor rewrite the index)
    from maestro.graph.env_refs import MEMO, referenced

    ws.write("pkg/mode.py", MODULE)
    ws.write("setup.py", 'import os\nSKIP = os.environ.get("TOOLING_ONLY")\n')
    graph = ws.graph()
    first = referenced(graph.root, graph.py, graph.index)
    assert "DEMO_PURE" in first.names and first.changed
    graph.save()
    again = ws.graph()
    before = again.index.extra.get(MEMO)
    again.index.dirty = False
    refs = referenced(again.root, again.py, again.index)
    assert refs.names == {"DEMO_PURE"}  # setup.py's variable keys nothing
    assert not refs.changed  # what callers save (or hand a copy) on
    assert again.index.extra.get(MEMO) is before and not again.index.dirty


def test_a_run_copy_of_the_graph_finds_the_names_already_read(ws: Workspace) -> None:
    # the daemon plans each run on a copy of its shared graph: the shared graph reads the names
    # first (daemon/services/tests.py), and a copy then reads no file again
    from maestro.graph.env_refs import MEMO, referenced

    ws.write("pkg/mode.py", MODULE)
    shared = ws.graph()
    assert referenced(shared.root, shared.py, shared.index).changed
    copy = shared.copy()
    memo = copy.index.extra.get(MEMO)
    assert memo is not None
    refs = referenced(copy.root, copy.py, copy.index)
    assert refs.names == {"DEMO_PURE"} and not refs.changed
    assert copy.index.extra.get(MEMO) is memo


ASKS = """
import os


def test_asks_{name}():
    for _ in range(3):  # the same unset names, again and again, as a suite's helpers ask them
        assert os.environ.get("DEMO_SHARED") is None
        assert "DEMO_ONLY_{name}" not in os.environ
"""


def test_each_file_notes_the_unset_names_it_read_however_often(tmp_path: Path) -> None:
    """The plugin's own record: every file that read an unset name has it, once, and no other
    file's names (a name noted for one file is looked for again in the next)."""
    for name in ("a", "b"):
        (tmp_path / f"test_{name}.py").write_text(ASKS.format(name=name))
    events = tmp_path / "events.jsonl"
    with events.open("w") as sink:
        done = subprocess.run(
            [str(project_python()), "-m", "pytest", "-p", "maestro_pytest_plugin", "-p",
             "no:cacheprovider", "test_a.py", "test_b.py"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
            pass_fds=(sink.fileno(),),
            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(plugin_dir()),
                 "MAESTRO_EVENTS_FD": str(sink.fileno()), "MAESTRO_TRACE": "off"},
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    read = {
        e["path"]: e["env"]
        for e in map(json.loads, events.read_text().splitlines())
        if e["event"] == "file_deps"
    }
    assert read == {
        "test_a.py": ["DEMO_ONLY_a", "DEMO_SHARED"],
        "test_b.py": ["DEMO_ONLY_b", "DEMO_SHARED"],
    }
