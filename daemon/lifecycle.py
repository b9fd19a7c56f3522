"""One daemon per workspace: who holds the lock, start/stop/probe (its files: daemon/address.py).

Single instance is enforced by ``flock`` on ``daemon.lock`` (the kernel releases it when the holder
dies, even on kill -9), never by pid files alone: a pid can be reused, a lock cannot outlive its
process. Whoever holds the lock owns the socket path, so a leftover socket file is always stale and
the new holder removes it before binding.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from maestro.daemon.address import INFO_NAME as INFO_NAME
from maestro.daemon.address import LOCK_NAME as LOCK_NAME
from maestro.daemon.address import LOG_NAME as LOG_NAME
from maestro.daemon.address import MAX_SOCKET_PATH as MAX_SOCKET_PATH
from maestro.daemon.address import SOCKET_NAME as SOCKET_NAME
from maestro.daemon.address import DaemonPaths as DaemonPaths
from maestro.daemon.address import read_info as read_info
from maestro.daemon.address import recorded_socket as recorded_socket
from maestro.daemon.address import socket_path_for as socket_path_for
from maestro.daemon.address import write_info as write_info
from maestro.daemon.transport.framing import FrameDecoder, encode_frame
from maestro.envvars import tuning
from maestro.errors import (
    DaemonError,
    DaemonStartError,
    MaestroError,
    ProtocolError,
    ProtocolMismatchError,
    WorkspaceError,
)

if TYPE_CHECKING:
    from maestro.wire import HelloReply

log = logging.getLogger(__name__)

DEFAULT_IDLE_S = 3 * 3600.0
DEFAULT_START_TIMEOUT_S = 30.0
LOG_ROTATE_BYTES = 8 * 1024 * 1024


# --- lock ----------------------------------------------------------------------------------------


class DaemonLock:
    """Exclusive flock on daemon.lock, held by the daemon for its whole life; holds its pid."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, wait_s: float = 0.0) -> bool:
        """Try for up to ``wait_s`` (probes by other processes hold the lock for microseconds)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.02)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return True

    def still_ours(self) -> bool:
        """False once ``path`` no longer names the file this lock holds (its state directory was
        removed, or replaced): a new starter would take a fresh lock there, and a second daemon
        would serve the workspace."""
        if self._fd is None:
            return False
        try:
            mine = os.fstat(self._fd)
            there = os.stat(self.path)
        except OSError:
            return False
        return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


def lock_holder(path: Path) -> int | None:
    """Pid of the live process holding the lock (0 if unknown yet), or None if nobody holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def stop_daemons_without_state(paths: DaemonPaths, *, timeout: float = 5.0) -> list[int]:
    """Stop this workspace's daemons whose lock file was deleted (Linux; call with the lock held).

    Removing the state directory under a running daemon (``rm -rf``, ``git clean -fdx``) frees its
    lock's name, not the daemon: it notices within a second (``DaemonLock.still_ours``), and a new
    daemon that starts sooner stops it here, so one workspace never has two daemons (two
    watchers, two runs of the same tests)."""
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return []
    gone = os.fsencode(os.path.realpath(paths.lock)) + b" (deleted)"
    root = os.fsencode(paths.root)
    found: list[int] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if b"maestro.daemon" not in argv or root not in argv:
                continue
            fds = os.listdir(entry / "fd")
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(os.fsencode(entry / "fd" / fd)) == gone:
                    found.append(int(entry.name))
                    break
    for pid in found:
        log.warning("stopping daemon pid %d: its state directory was removed", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in found:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _alive(pid):
            log.warning("daemon pid %d did not stop; sending SIGKILL", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return found


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has stopped: it only waits for its parent)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def daemon_pid(root: Path) -> int | None:
    """Pid of the workspace's running daemon, or None."""
    return lock_holder(DaemonPaths.for_root(root).lock)


# --- probe ---------------------------------------------------------------------------------------


def probe(socket_path: Path, *, timeout: float = 2.0) -> HelloReply | None:
    """Handshake with whatever listens on ``socket_path``; None if nothing answers.

    Raises ProtocolMismatchError if a daemon answers with another protocol version.
    """
    # Imported here, not at module level: the CLI's fast path (maestro/cli/fast.py) uses this
    # module's paths without paying for pydantic.
    from maestro.wire import (
        PROTOCOL_VERSION,
        RESTART_HINT,
        HelloReply,
        Response,
        dump_frame,
        error_from_info,
        hello,
        parse_frame,
    )

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(os.fspath(socket_path))
            sock.sendall(encode_frame(dump_frame(hello("probe"))))
            decoder = FrameDecoder()
            while True:
                data = sock.recv(65536)
                if not data:
                    return None
                frames = decoder.feed(data)
                if frames:
                    break
        except (OSError, ProtocolError):
            return None
        frame = parse_frame(frames[0])
        if isinstance(frame, HelloReply):
            if frame.protocol != PROTOCOL_VERSION:
                raise ProtocolMismatchError(
                    f"the daemon (pid {frame.pid}) speaks protocol {frame.protocol}, "
                    f"this client speaks {PROTOCOL_VERSION}",
                    hint=RESTART_HINT,
                )
            return frame
        if isinstance(frame, Response) and frame.error is not None:
            raise error_from_info(frame.error)
        raise ProtocolError(f"unexpected '{frame.type}' frame in reply to hello")
    finally:
        sock.close()


# --- start / stop --------------------------------------------------------------------------------


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _rotate_log(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.stat().st_size > LOG_ROTATE_BYTES:
            path.replace(path.with_name(path.name + ".1"))


def _start_timeout() -> float:
    return tuning("MAESTRO_DAEMON_START_TIMEOUT", DEFAULT_START_TIMEOUT_S)


# Popen objects of detached daemons: kept so they are not reported as leaked while running and
# are reaped by subprocess's own bookkeeping once they exit.
_SPAWNED: list[subprocess.Popen[bytes]] = []


def spawn_daemon(paths: DaemonPaths) -> subprocess.Popen[bytes]:
    """``python -P -m maestro.daemon <root>`` in its own session, output appended to the log."""
    _rotate_log(paths.log)
    # the daemon runs elsewhere (cwd below): a relative directory named here is made absolute
    env = dict(os.environ)
    for var in ("MAESTRO_STATE_DIR", "MAESTRO_CACHE_DIR"):
        if env.get(var):
            env[var] = os.path.abspath(env[var])
    fd = os.open(paths.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "maestro.daemon", str(paths.root)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=subprocess.STDOUT,
            cwd=paths.state_dir,  # never the workspace: its own `maestro/` could shadow ours
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(fd)
    _SPAWNED[:] = [p for p in _SPAWNED if p.poll() is None]
    _SPAWNED.append(proc)
    log.info("spawned daemon pid %d for %s", proc.pid, paths.root)
    return proc


def start_daemon(
    root: Path, *, detach: bool = True, timeout: float | None = None
) -> HelloReply | None:
    """Make sure the workspace daemon runs and answers; returns its hello reply.

    Safe to race: several starters may spawn, one child wins the lock, the others exit and every
    starter connects to the winner. With ``detach=False`` the daemon runs in this process until
    it stops (returns None).
    """
    if not root.is_dir():
        raise WorkspaceError(f"workspace root {root} is not a directory")
    paths = DaemonPaths.for_root(root)
    if not detach:
        run_daemon(paths.root)
        return None
    timeout = _start_timeout() if timeout is None else timeout
    began = time.monotonic()
    deadline = began + timeout
    reply = probe(recorded_socket(paths))
    if reply is not None:
        return reply
    proc: subprocess.Popen[bytes] | None = None
    spawns = 0
    while time.monotonic() < deadline:
        holder = lock_holder(paths.lock)
        if holder is None and proc is None and spawns < 3:
            proc = spawn_daemon(paths)
            spawns += 1
        reply = probe(
            recorded_socket(paths), timeout=min(2.0, max(0.1, deadline - time.monotonic()))
        )
        if reply is not None:
            return reply
        if proc is not None and proc.poll() is not None:
            if proc.returncode != 0:
                raise DaemonStartError(
                    f"the daemon exited with status {proc.returncode} during startup",
                    hint=f"see the log {paths.log}:\n{_log_tail(paths.log)}",
                )
            proc = None  # lost the lock race: another daemon is starting; wait for it
        # a warm start binds within ~0.3 s: poll finely at first (a failed connect is ~50 µs)
        time.sleep(0.01 if time.monotonic() - began < 1.0 else 0.05)
    holder = lock_holder(paths.lock)
    who = f" (pid {holder} holds the lock)" if holder else ""
    raise DaemonStartError(
        f"the daemon did not answer on {paths.socket} within {timeout:g}s{who}",
        hint=f"see the log {paths.log}; `maestro daemon stop` then start again",
    )


def _wait_released(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock_holder(path) is None:
            return True
        time.sleep(0.05)
    return lock_holder(path) is None


def stop_daemon(root: Path, *, timeout: float = 10.0, force: bool = True) -> int | None:
    """Stop the workspace daemon: ask politely, then SIGTERM, then (``force``) SIGKILL.

    Returns the pid that was stopped, or None if no daemon was running.
    """
    paths = DaemonPaths.for_root(root)
    pid = lock_holder(paths.lock)
    if pid is None:
        _remove_stale_socket(paths)
        return None
    # Late import: client imports this module.
    from maestro.daemon.transport.client import SyncDaemonClient
    from maestro.wire import SHUTDOWN, Empty

    with (
        contextlib.suppress(MaestroError, OSError),
        SyncDaemonClient(root, start=False, timeout=min(5.0, timeout), client="stop") as cli,
    ):
        cli.call(SHUTDOWN, Empty())
    if _wait_released(paths.lock, timeout / 2):
        return pid
    for sig in (signal.SIGTERM, signal.SIGKILL) if force else (signal.SIGTERM,):
        if pid > 0:
            log.warning("daemon pid %d did not stop; sending %s", pid, sig.name)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if _wait_released(paths.lock, timeout / 4):
            if sig is signal.SIGKILL:
                _remove_stale_socket(paths)
            return pid
    raise DaemonError(
        f"the daemon (pid {pid}) did not stop within {timeout:g}s",
        hint=f"kill it: kill -9 {pid}" if pid > 0 else "see `maestro daemon status`",
    )


def _remove_stale_socket(paths: DaemonPaths) -> None:
    """Remove a socket file nobody owns (only call when the lock is free)."""
    for path in {paths.socket, recorded_socket(paths)}:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(path.lstat().st_mode):
                path.unlink()
    with contextlib.suppress(FileNotFoundError):
        paths.info.unlink()


# --- the daemon process --------------------------------------------------------------------------


def configure_logging(path: Path) -> None:
    """The daemon logs to a file only (its stdio also goes there when detached)."""
    level = os.environ.get("MAESTRO_DAEMON_LOG_LEVEL", "INFO").upper()
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    # a file name that is not UTF-8 (lone surrogates) is logged escaped, not dropped with an error
    handler = logging.FileHandler(path, encoding="utf-8", errors="backslashreplace")
    # a log line may quote a test's output or a library's error message: redacted like any egress
    from maestro.redaction import RedactingFormatter, import_detectors_apart

    import_detectors_apart()

    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    )
    root_logger = logging.getLogger()
    root_logger.handlers[:] = [handler]
    root_logger.setLevel(getattr(logging, level, logging.INFO))


def idle_timeout_from_env() -> float:
    """MAESTRO_DAEMON_IDLE seconds (0 disables idle shutdown); default three hours."""
    return tuning("MAESTRO_DAEMON_IDLE", DEFAULT_IDLE_S, minimum=0.0)


def run_daemon(root: Path) -> int:
    """Body of the daemon process: take the lock or leave, then serve until stopped."""
    import asyncio

    from maestro.daemon.app import build_app

    paths = DaemonPaths.for_root(root, create_socket_dir=True)
    configure_logging(paths.log)
    lock = DaemonLock(paths.lock)
    if not lock.acquire(wait_s=1.0):
        log.info("another daemon (pid %s) serves %s; exiting", lock_holder(paths.lock), root)
        return 0
    stop_daemons_without_state(paths)
    # No process-wide umask change: test runs spawned by the daemon must see the user's umask.
    # Private files get explicit modes; the socket is bound under a temporary umask.
    try:
        log.info("daemon pid %d starting for %s", os.getpid(), paths.root)
        app = build_app(paths)
        app.owns_state = lock.still_ours
        asyncio.run(app.serve())
        return 0
    except MaestroError as exc:
        log.error("daemon failed: %s", exc)
        return 1
    except Exception:
        log.exception("daemon crashed")
        return 1
    finally:
        lock.release()
        log.info("daemon pid %d stopped", os.getpid())


def reap_orphaned_runs(root: Path) -> None:
    """Kill the pytest runs a previous daemon (or CLI) left running when it died, now rather
    than at the next run: their results can no longer reach anyone. Blocking."""
    from maestro.engine.runner import reap_orphans, runs_dir

    try:
        killed = reap_orphans(runs_dir(root))
    except OSError as exc:
        log.warning("cannot check for orphaned test runs: %s", exc)
        return
    if killed:
        log.warning("killed %d orphaned pytest process group(s): %s", len(killed), killed)


def remove_stale_socket_file(path: Path) -> None:
    """Before binding (lock held): anything at the socket path is a leftover; sockets only."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise WorkspaceError(f"{path} exists and is not a socket", hint="remove it by hand")
    log.info("removing stale socket %s", path)
    try:
        path.unlink()
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
