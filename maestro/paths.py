"""Where Maestro keeps its files: user cache (shared CAS) and per-workspace state.

`MAESTRO_CACHE_DIR` and `MAESTRO_STATE_DIR` override the platform defaults (tests and CI use them).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

TYPE_CHECKING = False  # typing is not imported at run time: the CLI's fast path imports this
if TYPE_CHECKING:
    from typing import Literal

APP = "maestro"


def cache_dir() -> Path:
    """The user cache directory that holds the LMDB cache shared by all workspaces."""
    return _user_dir("MAESTRO_CACHE_DIR", "cache")


def state_dir() -> Path:
    """The user state directory; each workspace gets a private sub-directory."""
    return _user_dir("MAESTRO_STATE_DIR", "state")


def data_dir() -> Path:
    """The user data directory (the coordinator's home); `MAESTRO_STATE_DIR` overrides it too."""
    return _user_dir("MAESTRO_STATE_DIR", "data")


def _user_dir(override: str, kind: Literal["cache", "state", "data"]) -> Path:
    """The directory the variable ``override`` names, else the platform's user ``kind`` dir."""
    named = os.environ.get(override)
    if named:
        return Path(named)
    import platformdirs

    where = {
        "cache": platformdirs.user_cache_dir,
        "state": platformdirs.user_state_dir,
        "data": platformdirs.user_data_dir,
    }[kind]
    return Path(where(APP, appauthor=False))


def usual_state_dir() -> Path | None:
    """Where `state_dir()` usually is on Linux ($XDG_STATE_HOME or ~/.local/state, then "maestro"),
    found without importing platformdirs (a third of the CLI fast path's imports). Only a first
    place to look: whatever is found there must be confirmed, and None means ask state_dir()."""
    if os.environ.get("MAESTRO_STATE_DIR") or sys.platform != "linux":
        return None
    xdg = os.environ.get("XDG_STATE_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / APP
    home = os.environ.get("HOME", "")
    return Path(home) / ".local" / "state" / APP if os.path.isabs(home) else None


def own_dirs() -> tuple[Path, ...]:
    """Maestro's cache and state directories as configured, found without importing platformdirs
    on Linux (its defaults there are the XDG ones): what Maestro writes there on every run is
    never a workspace file, even when a user puts them inside the workspace."""
    if sys.platform != "linux":
        return cache_dir(), state_dir()
    cache = os.environ.get("MAESTRO_CACHE_DIR")
    if not cache:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        home = os.environ.get("HOME", "")
        base = xdg if os.path.isabs(xdg) else os.path.join(home, ".cache") if home else ""
        cache = os.path.join(base, APP) if base else ""
    state = os.environ.get("MAESTRO_STATE_DIR") or str(usual_state_dir() or "")
    return tuple(Path(d) for d in (cache, state) if d)


def _sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` from the interpreter's own module, not OpenSSL's: the console script
    names the workspace's state directory before it starts pytest's process, and loading
    OpenSSL (``hashlib``) would delay that start."""
    try:
        if sys.version_info >= (3, 12):
            from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]
        else:
            from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # a build without them
        from hashlib import sha256
    return str(sha256(data).hexdigest())


def workspace_key(root: Path) -> str:
    """A short stable name for a workspace root, used for its state directory."""
    resolved = root.resolve()
    digest = _sha256_hex(os.fsencode(resolved))[:16]  # exact even if not UTF-8
    return f"{root.resolve().name or 'root'}-{digest}"


def workspace_state_dir(root: Path) -> Path:
    """Private (0700) state directory of one workspace: index, daemon socket, logs."""
    path = state_dir() / "workspaces" / workspace_key(root)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def graph_index_path(root: Path) -> Path:
    """The persisted per-file graph index of a workspace."""
    return workspace_state_dir(root) / "graph-index.msgpack"


def read_msgpack(path: Path) -> object:
    """A state file's msgpack value; None when it is missing, unreadable or not msgpack (a
    state file is a memo: losing it costs a re-run, never a wrong answer)."""
    import msgpack

    try:
        return msgpack.unpackb(path.read_bytes(), raw=False)
    except (OSError, ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return None


def replace_file(path: Path, data: bytes, *, sync: bool = False) -> None:
    """Atomically replace ``path`` with ``data``, mode 0600: written to a temporary file beside
    it, then renamed over it, so a reader (another process too) sees the old content or the
    new, never a part; the temporary is removed when anything fails. ``sync``: flushed to disk
    before the rename (survives a power cut, costs a few ms). The folder must exist."""
    import contextlib
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            if sync:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
