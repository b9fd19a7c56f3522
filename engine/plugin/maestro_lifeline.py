"""Tie a pytest run to the process that started it: when the runner dies, the run's whole process
group dies too.

Imported first thing by the pytest plugin, in the *workspace's* interpreter: a single stdlib-only
file for Python 3.11+, never importing maestro. Inert unless the runner set ``MAESTRO_LIFELINE_FD``
(removed from the environment on import, so the test's own processes never see it).

Two mechanisms, either of which is enough on its own:

- The lifeline pipe (every POSIX platform): the runner passes the read end of a pipe whose write
  end only the runner holds; the kernel closes the write end when the runner exits however it
  exits (kill -9 included). On Linux the kernel then sends ``DEATH_SIGNAL`` (F_SETSIG on the
  O_ASYNC read end) to the handler below; elsewhere a daemon thread blocks reading it and, at EOF,
  SIGKILLs the process group. No thread where the signal serves: the tests would see a second
  thread (``threading.active_count()``, and Python 3.12's DeprecationWarning at each ``os.fork()``
  of a multi-threaded process, which pexpect's spawn does) that plain pytest does not have. A
  runner that died before this module ran left the pipe at EOF already, so there is no start-up
  race.
- ``PR_SET_PDEATHSIG`` (Linux): the kernel signals this process when the *thread* that forked it
  exits, which the runner arranges to be its event loop's thread: the one that awaits the run.
  The signal is a real-time one reserved for this (``DEATH_SIGNAL``), not SIGTERM: with kill -9
  of a multi-threaded runner the forking thread may exit before the others, i.e. before the pipe
  reaches EOF, so a SIGTERM handler could not tell the runner's death from the runner's own
  SIGTERM (its cancellation, which must keep working as before). Its handler SIGKILLs the group
  unconditionally. Armed only from the main thread, where the handler can be installed first.

The group is the run's own (the runner starts pytest in a new session); it is only signalled when
this process is in the group its session began with, so an accidental import elsewhere can never
signal a shell's job. An orphaned run gets SIGKILL, not a grace period: nobody is left to read its
results, and a second run of the same tests may be about to start. Both mechanisms need this
process to run Python code (the GIL); a test stuck in C code holding it is left to the runner's
record of running groups (the next run kills an orphan it finds).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import stat
import sys
import threading
from types import FrameType

ENV_FD = "MAESTRO_LIFELINE_FD"
_PR_SET_PDEATHSIG = 1
# Linux only (no real-time signals elsewhere): one a test suite is unlikely to use.
DEATH_SIGNAL: int | None = int(signal.SIGRTMAX) - 1 if sys.platform.startswith("linux") else None

log = logging.getLogger("maestro.lifeline")

_fd = -1  # the pipe's read end once armed


def parent_gone() -> bool:
    """Whether the runner has exited: the pipe is at EOF (nobody ever writes to it).

    Unlike comparing ``os.getppid()`` with the runner's pid, this also holds when the interpreter
    is a wrapper that forks Python rather than exec'ing it."""
    if _fd < 0:
        return False
    try:
        return bool(select.select([_fd], [], [], 0)[0])
    except (OSError, ValueError):
        return False


def kill_group() -> None:
    """SIGKILL the run's process group, this process included; this process at least."""
    try:
        pgid = os.getpgrp()
        if pgid == os.getsid(0):  # a session of its own: the group is the run's alone
            os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGKILL)


def _watch(fd: int) -> None:
    while True:
        try:
            if os.read(fd, 64) == b"":
                break
        except InterruptedError:
            continue
        except OSError:  # the descriptor was closed under us: nothing left to watch
            return
    kill_group()


def _on_death_signal(signum: int, frame: FrameType | None) -> None:
    kill_group()


def _pdeathsig(signum: int) -> bool:
    """Ask for ``signum`` when the forking thread exits (Linux only)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)) == 0
    except (ImportError, OSError, AttributeError):
        return False


def arm() -> bool:
    """Arm the lifeline from the runner's variables; False when there is none (inert)."""
    global _fd
    fd_text = os.environ.pop(ENV_FD, None)
    if fd_text is None or _fd >= 0:
        return False
    try:
        fd = int(fd_text)
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
    except (ValueError, OSError):
        log.warning("ignoring %s=%r: not an inherited pipe", ENV_FD, fd_text)
        return False
    _fd = fd
    handled = False
    if DEATH_SIGNAL is not None and threading.current_thread() is threading.main_thread():
        previous = signal.signal(DEATH_SIGNAL, _on_death_signal)  # before the signal can come
        handled = _pdeathsig(DEATH_SIGNAL)
        if not handled:
            signal.signal(DEATH_SIGNAL, signal.SIG_DFL if previous is None else previous)
    # The pipe's end as a signal where the kernel can send one (no thread), else a thread
    # reading it: a second thread is what the tests would see (threading.active_count(), and
    # Python 3.12's DeprecationWarning at each os.fork() of a multi-threaded process)
    handled = handled and DEATH_SIGNAL is not None and _signal_at_eof(fd, DEATH_SIGNAL)
    # After prctl and F_SETSIG: a runner that died before it left the pipe at EOF already.
    if parent_gone():
        kill_group()
    if not handled:
        threading.Thread(target=_watch, args=(fd,), name="maestro-lifeline", daemon=True).start()
    return True


def _signal_at_eof(fd: int, signum: int) -> bool:
    """Have the kernel send ``signum`` to this process when the pipe's last writer closes it
    (Linux's F_SETSIG on an O_ASYNC descriptor); False where it cannot."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
        fcntl.fcntl(fd, fcntl.F_SETSIG, signum)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
    except (ImportError, AttributeError, OSError):
        return False
    return True


arm()
