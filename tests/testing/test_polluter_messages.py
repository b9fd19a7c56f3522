"""What `maestro test` and `maestro explain` say of a cached file that runs because pytest collects
it before a file that runs (it changes state at import, here warnings into errors). User trial of
diskcache 5.6.3: its tests/test_fanout.py calls `warnings.simplefilter('error')` at import; while a
later file failed, every `maestro test` re-ran fanout's 42 tests, yet the plan said "3 to run (47
of their tests cached)" (42 of them fanout's, which ran) and `maestro explain tests/test_fanout.py`
said "served from the cache: no input changed since its last run". The real console script in a
subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from project_python import project_python

from maestro.cli.explain_cmd import _grouped, _polluter_sentence

MAESTRO = str(Path(sys.executable).with_name("maestro"))


def maestro(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # rich's width when piped
    env.update(MAESTRO_DAEMON="off")
    done = subprocess.run(
        [MAESTRO, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    return done.stdout + done.stderr


def test_a_polluter_that_runs_is_neither_counted_cached_nor_explained_as_cached(
    isolated: Path,
) -> None:
    tmp_path = isolated / "ws"
    (tmp_path / "tests").mkdir(parents=True)
    (tmp_path / "maestro.toml").write_text(f"interpreter = {str(project_python())!r}\n")
    (tmp_path / "tests/test_a.py").write_text(
        "import warnings\n\nwarnings.simplefilter('error')\n\n\ndef test_a():\n    pass\n"
    )
    (tmp_path / "tests/test_b.py").write_text("def test_b():\n    assert True\n")
    assert "2 passed" in maestro(tmp_path, "test")
    (tmp_path / "tests/test_b.py").write_text("def test_b():\n    assert False\n")
    said = maestro(tmp_path, "test")
    assert "tests/test_a.py  collected before a file that runs" in said, said
    assert "1 failed, 1 passed" in said, said
    # test_a.py ran whole: none of the tests of the files that run was served
    assert "2 test files: 0 cached (0 tests), 2 to run\n" in said, said
    explained = maestro(tmp_path, "explain", "tests/test_a.py")
    assert "no input changed since its last run" not in explained, explained
    assert "tests/test_a.py: collected before a file that runs (tests/test_b.py)" in explained
    assert "runs with tests/test_b.py" in explained, explained
    assert "maestro test tests/test_a.py` alone serves it from the cache" in explained, explained


def test_the_tests_of_a_polluter_that_runs_are_said_in_the_plural() -> None:
    rows = [
        {
            "node": n,
            "runs": True,
            "reason": _polluter_sentence(n, "t/a.py", ["t/b.py"]),
            "opaque": [],
        }
        for n in ("t/a.py::x", "t/a.py::y")
    ]
    (row,) = _grouped(rows)
    assert row["reason"].startswith("2 tests (x, y) run with t/b.py: pytest collects t/a.py"), row


def test_explain_names_the_file_asked_for_not_a_polluter_run_before_it(isolated: Path) -> None:
    """User trial of rich 14.3.3: with rich/_pick.py broken, `maestro explain
    tests/test_pick.py::test_pick_bool` said 'error: ... is not a test of tests/test_inspect.py
    (its last run had 46 tests)': the plan of test_pick.py has the files whose tests change
    state it reads first, and explain took the plan's first file."""
    tmp_path = isolated / "ws"
    (tmp_path / "tests").mkdir(parents=True)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "maestro.toml").write_text(f"interpreter = {str(project_python())!r}\n")
    (tmp_path / "pkg/__init__.py").write_text("")
    (tmp_path / "pkg/registry.py").write_text("REGISTRY = {}\n")
    (tmp_path / "tests/test_a.py").write_text(
        "from pkg import registry\n\n\ndef test_fill():\n    registry.REGISTRY['a'] = 1\n"
    )
    reader = (
        "from pkg import registry\n\n\ndef test_b():\n    assert registry.REGISTRY == {'a': 1}\n"
    )
    (tmp_path / "tests/test_b.py").write_text(reader)
    assert "2 passed" in maestro(tmp_path, "test")
    (tmp_path / "tests/test_b.py").write_text(reader.replace("1}", "2}"))
    assert "1 failed, 1 passed" in maestro(tmp_path, "test")
    for asked in ("tests/test_b.py::test_b", "tests/test_b.py"):
        explained = maestro(tmp_path, "explain", asked)
        assert "not a test of" not in explained, explained
        assert explained.startswith("tests/test_b.py: "), explained
        assert "tests/test_b.py::test_b failed last time" in explained, explained
