"""Where flag settings live on this machine, and the append-only audit trail of changes.

- user scope: ``<state dir>/flags/user.json``; workspace scope: ``flags.json`` in the workspace's
  state directory (this checkout, this user); the tenant's overrides as the daemon last polled
  them: ``flags-tenant.json`` beside it. Files are 0600 in 0700 directories, replaced
  atomically, and changed under an exclusive lock so two `flags set` never lose each other.
- The audit trail is JSON lines (who, when, old -> new, why), opened O_APPEND and never
  rewritten; past ``max_bytes`` the file becomes ``audit.1.jsonl`` (the previous generation is
  dropped), so it stays bounded at about twice that.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import logging
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from maestro.paths import replace_file, state_dir, workspace_state_dir

from .registry import FlagError, FlagValue, Registry
from .resolve import FlagSetting, TenantFlags

log = logging.getLogger(__name__)

AUDIT_MAX_BYTES = 256 * 1024


def user_flags_path() -> Path:
    return state_dir() / "flags" / "user.json"


def workspace_flags_path(root: Path) -> Path:
    return workspace_state_dir(root) / "flags.json"


def tenant_cache_path(root: Path) -> Path:
    return workspace_state_dir(root) / "flags-tenant.json"


def audit_path() -> Path:
    return state_dir() / "flags" / "audit.jsonl"


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): the uid still identifies
        return f"uid:{os.getuid()}"


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)


def write_private(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``, mode 0600."""
    _private_dir(path.parent)
    replace_file(path, data, sync=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    _private_dir(path.parent)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class _Stored(BaseModel):
    model_config = ConfigDict(extra="ignore")

    settings: dict[str, FlagSetting] = {}


class SettingsFile:
    """The flag settings of one scope on this machine."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, FlagSetting]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise FlagError(f"cannot read: {exc.strerror}", where=str(self.path)) from exc
        try:
            return _Stored.model_validate_json(raw).settings
        except ValidationError as exc:
            raise FlagError(
                "is not a flag settings file",
                where=str(self.path),
                hint="fix or delete it (the audit trail has every value it held)",
            ) from exc

    def update(self, name: str, setting: FlagSetting | None) -> FlagSetting | None:
        """Set (or clear, with None) one flag; returns the setting it replaced."""
        with _locked(self.path):
            current = self.read()
            old = current.pop(name, None)
            if setting is not None and not setting.empty:
                current[name] = setting
            body = _Stored(settings=dict(sorted(current.items())))
            write_private(self.path, body.model_dump_json(indent=2, exclude_none=True).encode())
            return old


class AuditEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    at: datetime
    who: str
    flag: str
    scope: str
    target: str  # the workspace root, the user, or the tenant
    old: FlagSetting | None = None
    new: FlagSetting | None = None
    reason: str


class AuditLog:
    def __init__(self, path: Path, max_bytes: int = AUDIT_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes

    @property
    def previous(self) -> Path:
        return self.path.with_name(self.path.stem + ".1" + self.path.suffix)

    def append(self, entry: AuditEntry) -> None:
        line = entry.model_dump_json(exclude_none=True).encode() + b"\n"
        with _locked(self.path):
            with contextlib.suppress(FileNotFoundError):
                if self.path.stat().st_size + len(line) > self.max_bytes:
                    os.replace(self.path, self.previous)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def read(self, flag: str | None = None, limit: int = 50) -> list[AuditEntry]:
        """The newest ``limit`` entries (of ``flag``), oldest first."""
        out: list[AuditEntry] = []
        for path in (self.previous, self.path):
            try:
                lines = path.read_bytes().splitlines()
            except FileNotFoundError:
                continue
            for line in lines:
                try:
                    entry = AuditEntry.model_validate_json(line)
                except ValidationError:
                    log.warning("skipping a malformed audit line in %s", path)
                    continue
                if flag is None or entry.flag == flag:
                    out.append(entry)
        return out[-limit:]


def now() -> datetime:
    return datetime.now(UTC)


# -- the older configuration keys ------------------------------------------------------------


def config_values(root: Path, registry: Registry) -> tuple[dict[str, FlagValue], str]:
    """Flag values the workspace configuration sets explicitly (its older keys), and the file.

    Read from the TOML itself: the loaded settings hold defaults too, and a default is not a
    workspace decision. A broken file yields nothing here (loading the settings reports it).
    """
    from maestro.config import CONFIG_FILE, PYPROJECT, read_toml
    from maestro.errors import ConfigError

    table: Mapping[str, Any] | None = None
    where = ""
    try:
        if (root / CONFIG_FILE).is_file():
            table, _ = read_toml(root / CONFIG_FILE, CONFIG_FILE)
            where = CONFIG_FILE
        elif (root / PYPROJECT).is_file():
            data, _ = read_toml(root / PYPROJECT, PYPROJECT)
            section = data.get("tool", {}).get("maestro")
            table = section if isinstance(section, dict) else None
            where = f"{PYPROJECT} [tool.maestro]"
    except ConfigError:
        return {}, ""
    if table is None:
        return {}, ""
    out: dict[str, FlagValue] = {}
    for flag in registry:
        if flag.config_key is None:
            continue
        node: Any = table
        for i, part in enumerate(flag.config_key):
            if not isinstance(node, Mapping):
                node = None
                break
            last = i == len(flag.config_key) - 1
            key = part if part in node or not last else part.replace("-", "_")
            node = node.get(key)
        if isinstance(node, bool | int | float | str):
            out[flag.name] = node
    return out, where


def read_tenant_cache(root: Path) -> TenantFlags | None:
    path = tenant_cache_path(root)
    try:
        return TenantFlags.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as exc:
        log.warning("ignoring unreadable tenant flags cache %s: %s", path, exc)
        return None


def write_tenant_cache(root: Path, flags: TenantFlags) -> None:
    write_private(tenant_cache_path(root), flags.model_dump_json(indent=2).encode())


def dump_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)
