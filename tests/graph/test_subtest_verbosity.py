"""Whether pytest 9 counts passed subtests in its summary line depends on its verbosity, and
Maestro reads that from the command line (a run served from the cache starts no pytest). It
must read it as pytest's own parser does: combined short flags (`-vx`, `-qq`, `-vrA`), a
value attached or following (`-kv` is `-k v`), `--verbosity=N` setting the count, `-o`.
Before, only whole `-v`/`-q` words counted: `-vx` read as verbosity 0, and Maestro's line left
out the "N subtests passed" pytest's had. Each case is checked against a real pytest."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from project_python import project_python

from maestro.graph.pytest_config import load_pytest_config, shows_passed_subtests

CONFTEST = """
import os


def pytest_configure(config):
    with open(os.environ["VERBOSITY_OUT"], "w") as f:
        f.write(str(config.get_verbosity(config.VERBOSITY_SUBTESTS)))
"""

CASES: list[tuple[str, ...]] = [
    (),
    ("-v",),
    ("-q",),
    ("-vx",),
    ("-xv",),
    ("-qq",),
    ("-vv",),
    ("-vq",),
    ("-vvq",),
    ("-xvs",),
    ("--verbose",),
    ("--quiet",),
    ("--verbose", "-q"),
    ("-kv",),
    ("-k", "v", "-x"),
    ("-vrA",),
    ("-rA",),
    ("-v", "--verbosity=0"),
    ("--verbosity", "0", "-v"),
    ("-vx", "-o", "verbosity_subtests=0"),
    ("-overbosity_subtests=1",),
    ("-xo", "verbosity_subtests=1"),
    ("--override-ini=verbosity_subtests=0", "-vv"),
    ("-pno:cacheprovider", "-v"),
]


def _pytest_says(root: Path, args: tuple[str, ...], environ: dict[str, str]) -> int:
    out = root / "verbosity.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAESTRO_", "PYTEST_"))}
    env.update(environ, VERBOSITY_OUT=str(out))
    subprocess.run(
        [str(project_python()), "-m", "pytest", "--collect-only", *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return int(out.read_text())


@pytest.mark.parametrize(
    ("ini", "environ"),
    [("", {}), ("addopts = -vx", {}), ("", {"PYTEST_ADDOPTS": "-xv"})],
    ids=["args", "ini-addopts", "PYTEST_ADDOPTS"],
)
def test_subtest_verbosity_is_read_as_pytest_reads_it(
    tmp_path: Path, ini: str, environ: dict[str, str]
) -> None:
    pytest.importorskip("_pytest.subtests", reason="subtests are built into pytest from 9.0")
    root = tmp_path / "ws"
    (root / "tests").mkdir(parents=True)
    (root / "pytest.ini").write_text(f"[pytest]\n{ini}\n")
    (root / "conftest.py").write_text(CONFTEST)
    (root / "tests/test_a.py").write_text("def test_v():\n    pass\n")
    config = load_pytest_config(root)
    wrong = []
    for args in CASES if not (ini or environ) else [(), ("-q",), ("-qq",)]:
        shown = _pytest_says(root, args, environ) != 0
        if shows_passed_subtests(config, args, pytest.__version__, environ) != shown:
            wrong.append((args, shown))
    assert not wrong, f"(args, pytest shows passed subtests) Maestro read otherwise: {wrong}"
