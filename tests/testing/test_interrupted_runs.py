"""A `maestro test` stopped mid-run (Ctrl-C, or a kill) leaves nothing behind: pytest's process
is gone and so is the folder where the tests' Python children leave their records. The plugin
made that folder (/tmp/maestro-children-*) and removed it when pytest ended, which a SIGTERM (how
the run stops pytest on Ctrl-C) or a SIGKILL skips: every interrupted run left one. The run's
record makes it now; the run removes it however pytest ended, and the next run removes one a
killed runner left. The next run still says what pytest says. The real console script beside
plain pytest on the lean project interpreter."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from console_script import MAESTRO, same_as_pytest
from project_python import project_python
from workspace_procs import alive, wait_dead, wait_running

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="checks processes through /proc")

SLOW = """import os, pathlib, time


def test_slow():
    running = pathlib.Path(@RUNNING@)
    children = os.environ.get("MAESTRO_CHILD_DIR", "-")
    running.with_suffix(".tmp").write_text(f"{os.getpid()} {children}")
    running.with_suffix(".tmp").replace(running)
    time.sleep(@SLEEP@)
"""


def _default_sigint() -> None:
    # a terminal's foreground command gets Ctrl-C; a background job inherits SIGINT ignored
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _leftovers(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith("maestro-children-"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_a_stopped_run_leaves_no_childrens_folder_and_the_next_run_is_pytests(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, sig: signal.Signals
) -> None:
    tmp = isolated / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setenv("MAESTRO_DAEMON", "off")
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    root = isolated / "ws"
    root.mkdir()
    (root / "maestro.toml").write_text(f"interpreter = {str(project_python())!r}\n")
    running = isolated / "running"
    slow = SLOW.replace("@RUNNING@", repr(str(running)))
    (root / "test_slow.py").write_text(slow.replace("@SLEEP@", "120"))
    (root / "test_fast.py").write_text("def test_fast():\n    assert 1 + 1 == 2\n")
    cli = subprocess.Popen(
        [MAESTRO, "test", "--no-daemon"], cwd=root, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, preexec_fn=_default_sigint,
    )  # fmt: skip
    try:
        wait_running(running, cli, 120)
        pid, children = running.read_text().split()
        assert Path(children).parent == tmp and Path(children).is_dir()
        cli.send_signal(sig)
        out, _ = cli.communicate(timeout=30)
        assert wait_dead(int(pid), 10)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    if sig == signal.SIGINT:
        assert cli.returncode == 2 and "interrupted" in out, out
        assert _leftovers(tmp) == [], out  # gone with the run
    running.unlink()
    (root / "test_slow.py").write_text(slow.replace("@SLEEP@", "0"))

    same_as_pytest(root, project_python(), isolated, [])

    assert not alive(int(pid))
    assert _leftovers(tmp) == []  # the killed run's folder too, and the new run's own
    runs = next((isolated / "state").glob("workspaces/*/runs"))
    assert os.listdir(runs) == []
