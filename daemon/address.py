"""Where a workspace's daemon lives: its state files and socket, and what it recorded there.

Apart from daemon/lifecycle.py (which starts, stops and probes daemons) because the CLI's fast
path (maestro/cli/fast.py) needs only this to find a running daemon: stdlib only, no logging.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any, NamedTuple

from maestro.errors import WorkspaceError
from maestro.paths import usual_state_dir, workspace_key, workspace_state_dir

SOCKET_NAME = "daemon.sock"
LOCK_NAME = "daemon.lock"
LOG_NAME = "daemon.log"
INFO_NAME = "daemon.json"
# sun_path holds 108 bytes on Linux and 104 on macOS/BSD, NUL included.
MAX_SOCKET_PATH = 103 if sys.platform == "darwin" else 107


# --- paths ---------------------------------------------------------------------------------------


# a NamedTuple, not a dataclass: dataclasses imports inspect, which the fast path cannot afford
class DaemonPaths(NamedTuple):
    root: Path
    state_dir: Path
    lock: Path
    log: Path
    info: Path
    socket: Path
    """The socket path the daemon binds (maybe a short fallback, see ``socket_path_for``)."""

    @classmethod
    def for_root(cls, root: Path, *, create_socket_dir: bool = False) -> DaemonPaths:
        root = root.resolve()
        state = workspace_state_dir(root)
        return cls(
            root=root,
            state_dir=state,
            lock=state / LOCK_NAME,
            log=state / LOG_NAME,
            info=state / INFO_NAME,
            socket=socket_path_for(state, create=create_socket_dir),
        )


def _fits(path: Path) -> bool:
    return len(os.fsencode(path)) <= MAX_SOCKET_PATH


def socket_path_for(state_dir: Path, *, create: bool = False) -> Path:
    """``<state>/daemon.sock``, or, when that is too long for AF_UNIX, a private short directory.

    The fallback is keyed by a hash of the state dir, under ``$XDG_RUNTIME_DIR/maestro`` or
    ``/tmp/maestro-<uid>``; each level is checked to be a real 0700 directory owned by us, since
    /tmp is shared with other users. The chosen path is also recorded in daemon.json.
    """
    default = state_dir / SOCKET_NAME
    if _fits(default):
        return default
    key = hashlib.sha256(os.fsencode(state_dir.resolve())).hexdigest()[:16]
    bases: list[Path] = []
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        bases.append(Path(runtime) / "maestro")
    bases.append(Path("/tmp") / f"maestro-{os.getuid()}")
    for base in bases:
        candidate = base / key / SOCKET_NAME
        if not _fits(candidate):
            continue
        if create:
            _private_dir(base)
            _private_dir(base / key)
        return candidate
    raise WorkspaceError(
        f"no socket path short enough for AF_UNIX (state dir {state_dir})",
        hint="set MAESTRO_STATE_DIR or XDG_RUNTIME_DIR to a shorter directory",
    )


def _private_dir(path: Path) -> None:
    """Create or verify a 0700 directory owned by the current user (not a symlink)."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise WorkspaceError(
            f"{path} is not a directory owned by uid {os.getuid()}; refusing to put a socket there",
            hint="remove it, or set XDG_RUNTIME_DIR to a private directory",
        )
    if st.st_mode & 0o077:
        path.chmod(0o700)


# --- daemon.json ---------------------------------------------------------------------------------


def write_info(paths: DaemonPaths, data: dict[str, Any]) -> None:
    tmp = paths.info.with_name(f".{INFO_NAME}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    tmp.replace(paths.info)


def read_info(paths: DaemonPaths) -> dict[str, Any] | None:
    return _read_info(paths.info)


def _read_info(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _live_socket(info: dict[str, Any] | None) -> Path | None:
    if info and isinstance(info.get("socket"), str) and Path(info["socket"]).exists():
        return Path(info["socket"])
    return None


def recorded_socket(paths: DaemonPaths) -> Path:
    """The socket the running daemon recorded (a client's env may compute another fallback)."""
    return _live_socket(read_info(paths)) or paths.socket


def running_socket(root: Path) -> Path:
    """``recorded_socket(DaemonPaths.for_root(root))``, looking first where the state dir usually
    is: a daemon that recorded a live socket there serves ``root`` (the place is keyed by it), and
    finding it so costs no platformdirs import (the CLI's fast path)."""
    usual = usual_state_dir()
    if usual is not None:
        info = _read_info(usual / "workspaces" / workspace_key(root) / INFO_NAME)
        if (found := _live_socket(info)) is not None:
            return found
    return recorded_socket(DaemonPaths.for_root(root))
