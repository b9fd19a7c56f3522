"""Which processes count as a pytest run of the user's in a workspace (daemon/foreign_runs.py):
real processes under /proc, started here."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from maestro.daemon.foreign_runs import foreign_pytest, is_pytest
from maestro.engine.warm import WARM_MODULE

pytestmark = pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs /proc")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/v/bin/pytest", "-q"], True),
        (["py.test"], True),
        (["/usr/bin/python3.11", "-m", "pytest", "tests"], True),
        (["python", "-X", "dev", "-mpytest"], True),
        (["python3", "/v/bin/pytest", "-x"], True),
        (["python3", "-m", "pip", "install", "pytest"], False),
        (["python", "-c", "import pytest", "pytest"], False),
        (["vim", "pytest.ini"], False),
        (["/bin/sh", "-c", "pytest"], False),  # its pytest child is found itself
        ([], False),
    ],
)
def test_which_commands_run_pytest(argv: list[str], expected: bool) -> None:
    assert is_pytest(argv) is expected


def test_a_pytest_in_the_workspace_is_found_and_its_own_are_not(tmp_path: Path) -> None:
    ws, elsewhere = tmp_path / "ws", tmp_path / "other"
    (ws / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    sleeper = "import time; time.sleep(30)"
    # stands for `python -m pytest` (the name is what counts): a script named pytest
    (tmp_path / "pytest").write_text(sleeper)
    started = [
        subprocess.Popen([sys.executable, str(tmp_path / "pytest"), *args], cwd=cwd)
        for cwd, args in (
            (elsewhere, []),
            (ws / "sub", []),
            (ws, ["-p", WARM_MODULE]),  # a standby pytest a killed daemon left: not the user's
        )
    ]
    try:
        deadline = time.monotonic() + 10
        found = None
        while found is None and time.monotonic() < deadline:
            found = foreign_pytest(ws, own=0)  # as a daemon that started none of them sees it
            time.sleep(0.05)
        assert found is not None and found.pid == started[1].pid
        assert "pytest" in found.command and f"pid {found.pid}" in found.describe()
        assert foreign_pytest(ws) is None  # this process started it: the daemon's own
        assert foreign_pytest(tmp_path / "nowhere", own=0) is None
        started[1].kill()
        started[1].wait()
        assert foreign_pytest(ws, own=0) is None  # the standby is left alone
    finally:
        for p in started:
            p.kill()
            p.wait()
