"""The user's own pytest runs in a workspace, which the daemon's background runs yield to.

A background run (re-recording untraced results, speculation) runs the workspace's tests in its
folder, as the user's plain ``pytest`` does: tests that write into the working tree (a ``t/``
folder removed and recreated, a fixed output file) then trip over each other, and the user's run
fails where it passes alone. The daemon does not start such a run while a pytest of someone
else's is going on in the workspace, and stops one it started when such a run appears.

Found from ``/proc``: a process whose working directory is in the workspace, whose command is
pytest's (``pytest``, ``py.test``, ``python -m pytest``, ``python .../pytest``), and which is
neither the daemon's own (no ancestor of it is this process) nor a daemon's standby pytest.
Where ``/proc`` cannot be read (not Linux) nothing is found: the background runs go on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from maestro.engine.warm import WARM_MODULE

_PROC = Path("/proc")
_NAMES = ("pytest", "py.test")
_VALUED = ("-X", "-W", "--check-hash-based-pycs")  # the interpreter's options taking a value


@dataclass(frozen=True, slots=True)
class ForeignRun:
    """A pytest run in the workspace that the daemon did not start."""

    pid: int
    command: str

    def describe(self) -> str:
        return f"a pytest of yours runs in this workspace (pid {self.pid}: {self.command})"


def is_pytest(argv: list[str]) -> bool:
    """Whether the command runs pytest: ``pytest``/``py.test``, or Python given ``-m pytest``
    or pytest's script."""
    if not argv:
        return False
    if os.path.basename(argv[0]) in _NAMES:
        return True
    if not os.path.basename(argv[0]).startswith("python"):
        return False
    args = iter(argv[1:])
    for arg in args:
        if arg in _VALUED:
            next(args, None)
        elif arg == "-m":
            return next(args, None) in _NAMES
        elif arg.startswith("-m"):
            return arg[2:] in _NAMES
        elif arg == "-c" or arg.startswith("-c"):
            return False
        elif not arg.startswith("-"):
            return os.path.basename(arg) in _NAMES
    return False


def foreign_pytest(root: Path, own: int | None = None, proc: Path = _PROC) -> ForeignRun | None:
    """A pytest run whose working directory is in `root` and that is no descendant of `own`
    (default: this process); None when there is none or ``/proc`` cannot tell."""
    me = os.getpid() if own is None else own
    top = os.path.realpath(root)
    try:
        entries = [e for e in os.listdir(proc) if e.isdigit()]
    except OSError:
        return None
    for entry in entries:
        pid = int(entry)
        if pid == me:
            continue
        try:
            cwd = os.readlink(proc / entry / "cwd")
            raw = (proc / entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone, or another user's
        if cwd != top and not cwd.startswith(top + os.sep):
            continue
        argv = [os.fsdecode(a) for a in raw.split(b"\0") if a]
        # a daemon's standby pytest (an orphan of one killed, idle): no run of the user's
        if not is_pytest(argv) or WARM_MODULE in argv or _descends(pid, me, proc):
            continue
        return ForeignRun(pid, " ".join(argv)[:120])
    return None


def _descends(pid: int, ancestor: int, proc: Path) -> bool:
    seen: set[int] = set()
    while pid > 1 and pid not in seen:
        if pid == ancestor:
            return True
        seen.add(pid)
        try:
            stat = (proc / str(pid) / "stat").read_text()
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses
            pid = int(stat.rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return pid == ancestor
