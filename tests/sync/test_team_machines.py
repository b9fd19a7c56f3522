"""Two machines of one team: clones of the same project at different absolute paths, each with
its own virtualenv (same distributions, another folder), its own cache, state and daemon, one
real coordinator on loopback. What one machine ran is a hit on the other; what differs between
them in a way a test can see is not."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from project_python import project_python
from sync_helpers import Team, Workspace, cached_count, plan_line

pytestmark = pytest.mark.slow

FILES = {
    "pkg/__init__.py": "",
    "pkg/a.py": "def add(a, b):\n    return a + b\n",
    "tests/test_a.py": (
        "from pkg.a import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n\n\n"
        "def test_zero():\n    assert add(0, 0) == 0\n"
    ),
    "tests/test_b.py": "def test_b():\n    assert 2 * 2 == 4\n",
}
DATA_FILES = {
    **FILES,
    "tests/data.txt": "3\n",
    "tests/test_a.py": (
        "from pathlib import Path\n\nfrom pkg.a import add\n\n\n"
        "def test_data():\n"
        "    assert int((Path(__file__).parent / 'data.txt').read_text()) == add(1, 2)\n"
    ),
}


def _venv(where: Path, extra: str | None = None) -> Path:
    """A virtualenv at `where` whose site-packages holds only a `.pth` to this interpreter's
    (pytest and friends), plus an `extra` dist-info folder if given: a machine's own venv."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120
    )
    pyver = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    site = where / "lib" / pyver / "site-packages"
    (site / "shared.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    if extra:
        (site / extra).mkdir()
    return where / "bin" / "python"


def _machine(
    team: Team, name: str, role: str, python: Path, files: dict[str, str] = FILES
) -> Workspace:
    ws = team.workspace(name, role)
    ws.setup(files)
    pyproject = ws.root / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(repr(str(project_python())), repr(str(python)))
    )
    return ws


def test_a_clone_at_another_path_with_its_own_venv_hits(team: Team) -> None:
    a = _machine(team, "alice", "read-write", _venv(team.base / "venv-alice"))
    b = _machine(team, "bob", "read", _venv(team.base / "elsewhere" / "venv-bob"))
    first = a.test()
    assert first.returncode == 0, first.stdout + first.stderr
    a.wait_remote(lambda r: r["queue_length"] == 0 and r["uploaded"] == 2)

    second = b.test()
    assert second.returncode == 0, second.stdout + second.stderr
    assert plan_line(second.stdout).startswith("2 test files: 2 cached (3 tests), 0 to run"), (
        second.stdout
    )
    assert b.remote()["remote_hits"] == 2

    # Another version of a distribution on B's venv: no file of it may be served.
    c = _machine(
        team, "carol", "read", _venv(team.base / "venv-carol", "pytest_randomly-3.15.0.dist-info")
    )
    third = c.test()
    assert third.returncode == 0, third.stdout + third.stderr
    assert cached_count(third.stdout) == 0, third.stdout
    assert c.remote()["remote_hits"] == 0


def test_a_clean_clone_hits_a_file_that_reads_a_data_file(team: Team) -> None:
    a = _machine(team, "alice", "read-write", _venv(team.base / "venv-alice"), DATA_FILES)
    b = _machine(team, "bob", "read", _venv(team.base / "venv-bob"), DATA_FILES)
    first = a.test()
    assert first.returncode == 0, first.stdout + first.stderr
    a.wait_remote(lambda r: r["queue_length"] == 0 and r["uploaded"] >= 2)
    second = b.test()
    assert second.returncode == 0, second.stdout + second.stderr
    assert plan_line(second.stdout).startswith("2 test files: 2 cached (2 tests), 0 to run"), (
        second.stdout
    )
    explained = b.maestro("explain", "tests/test_a.py")
    assert explained.returncode == 0, explained.stdout + explained.stderr
    assert explained.stdout.startswith("tests/test_a.py: cached"), explained.stdout
    again = b.test()  # now keyed by what the served run read: the result itself
    assert plan_line(again.stdout).startswith("2 test files: 2 cached"), again.stdout

    # Another content of the data file on a third clone: that file runs, and fails as pytest does.
    c = _machine(team, "carol", "read", _venv(team.base / "venv-carol"), DATA_FILES)
    c.write("tests/data.txt", "4\n")
    third = c.test()
    assert third.returncode == 1, third.stdout + third.stderr
    assert plan_line(third.stdout).startswith("2 test files: 1 cached (1 test), 1 to run"), (
        third.stdout
    )
    assert "1 failed, 1 passed" in third.stdout.splitlines()[-1], third.stdout


def test_a_run_without_the_daemon_says_the_team_cache_was_not_used(team: Team) -> None:
    # CI ran `maestro test` in process (no daemon, as scripts do) and sent the coordinator
    # nothing, without a word: the mirror lives in the daemon
    a = team.workspace("alice", "read-write")
    a.setup(FILES)
    alone = a.test("--no-daemon")
    assert alone.returncode == 0, alone.stdout + alone.stderr
    said = " ".join(alone.stdout.split())
    assert f"note: the team cache ({a.url}) was not used" in said, alone.stdout
    assert "set MAESTRO_DAEMON=start (CI, scripts) to use it" in said, alone.stdout
    through = a.test()  # MAESTRO_DAEMON=start: the daemon's run reads and fills it
    assert through.returncode == 0, through.stdout + through.stderr
    assert "team cache" not in through.stdout, through.stdout
