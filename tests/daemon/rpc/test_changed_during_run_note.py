"""A test edits a file it imported while the run runs: its result is not cached, and the user of
`maestro test` is told so once, in the same words through a running daemon as without one (real
daemon, real pytest, real LMDB)."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import MAESTRO, DaemonEnv, started

EDITS_ITS_INPUT = """
import subprocess

from pkg.a import X


def test_first():
    pass


def test_edits_what_it_imported():
    subprocess.run(["sh", "-c", "echo '# edited' >> pkg/a.py"], check=True)
    assert X == 1
"""

NOTE = "note: inputs changed while the tests ran, their results are not cached: pkg/a.py"


def maestro_test(env: DaemonEnv, daemon: str) -> list[str]:
    done = subprocess.run(
        [MAESTRO, "test"], cwd=env.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=180, env={**os.environ, "MAESTRO_DAEMON": daemon},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
    return done.stdout.splitlines()


@pytest.mark.parametrize("daemon", ["auto", "off"])
def test_the_user_is_told_once_that_inputs_changed_while_the_tests_ran(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch, daemon: str
) -> None:
    # through a daemon the warning went only to the daemon's log: the user read "2 passed"
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(daemon_env.base / "cache"))
    daemon_env.write_old({"pkg/__init__.py": "", "pkg/a.py": "X = 1\n"})
    (daemon_env.root / "tests").mkdir()
    (daemon_env.root / "tests/test_edit.py").write_text(EDITS_ITS_INPUT)
    subprocess.run(["git", "init", "-q"], cwd=daemon_env.root, check=True)
    if daemon != "off":
        started(daemon_env)
    lines = maestro_test(daemon_env, daemon)
    assert [line for line in lines if "inputs changed while the tests ran" in line] == [NOTE]
    again = maestro_test(daemon_env, daemon)  # not cached: it runs again, and says so again
    assert NOTE in again, again
