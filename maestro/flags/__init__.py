"""Feature flags as a governed registry: declarations, scoped values, kill-switches, audit.

`WorkspaceFlags` is what the CLI, the LSP and the daemon use: the flags of one workspace as
this machine knows them (docs/flags.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from .registry import (
    BUILTIN_FLAGS,
    ExpiredFlagError,
    Flag,
    FlagError,
    FlagValue,
    FlagValueError,
    Registry,
    Scope,
    UnknownFlagError,
    builtin_registry,
    format_value,
)
from .resolve import FlagSetting, Inputs, Layer, Resolution, TenantFlags, resolve, resolve_all
from .store import (
    AuditEntry,
    AuditLog,
    SettingsFile,
    audit_path,
    config_values,
    current_user,
    now,
    read_tenant_cache,
    user_flags_path,
    workspace_flags_path,
)

__all__ = [
    "BUILTIN_FLAGS",
    "AuditEntry",
    "AuditLog",
    "ExpiredFlagError",
    "Flag",
    "FlagError",
    "FlagSetting",
    "FlagValue",
    "FlagValueError",
    "Inputs",
    "Layer",
    "Registry",
    "Resolution",
    "Scope",
    "TenantFlags",
    "UnknownFlagError",
    "WorkspaceFlags",
    "builtin_registry",
    "expiry_warnings",
    "format_value",
    "today_utc",
]


def today_utc() -> date:
    return datetime.now(UTC).date()


def expiry_warnings(registry: Registry, today: date) -> list[str]:
    """One line per expired flag: what the CLI prints and the daemon reports to editors."""
    return [
        f"flag {f.name} expired on {f.expires.isoformat()}: ask its owner ({f.owner}) to remove "
        "it or renew its expiry"
        for f in registry.expired(today)
    ]


@dataclass
class WorkspaceFlags:
    """The flags of one workspace (or of none: user scope only) as this machine knows them.

    ``tenant`` is the coordinator's overrides; when not given, the copy the workspace daemon
    last polled is read. ``editor`` holds a connected editor's session values (daemon only).
    """

    root: Path | None
    registry: Registry = field(default_factory=builtin_registry)
    today: Callable[[], date] = today_utc
    tenant: TenantFlags | None = None
    editor: Mapping[str, FlagValue] = field(default_factory=dict)
    audit: AuditLog = field(default_factory=lambda: AuditLog(audit_path()))

    def __post_init__(self) -> None:
        if self.tenant is None and self.root is not None:
            self.tenant = read_tenant_cache(self.root)

    def _file(self, scope: Scope) -> SettingsFile:
        if scope is Scope.USER:
            return SettingsFile(user_flags_path())
        if scope is Scope.WORKSPACE and self.root is not None:
            return SettingsFile(workspace_flags_path(self.root))
        raise FlagError(
            f"{scope.value} scope cannot be set from here",
            hint="tenant values are set on the coordinator: maestro flags set NAME VALUE "
            "--scope tenant (admin key); workspace values need a workspace (--root)",
        )

    def inputs(self) -> Inputs:
        where: dict[Layer, str] = {
            Layer.USER: f"user {current_user()}",
            Layer.EDITOR: "the connected editor's settings",
        }
        workspace: dict[str, FlagSetting] = {}
        config: dict[str, FlagValue] = {}
        if self.root is not None:
            workspace = self._file(Scope.WORKSPACE).read()
            config, config_where = config_values(self.root, self.registry)
            where[Layer.WORKSPACE] = f"workspace {self.root}"
            where[Layer.CONFIG] = config_where or "workspace configuration"
        return Inputs(
            editor=dict(self.editor),
            workspace=workspace,
            config=config,
            user=self._file(Scope.USER).read(),
            where=where,
        ).with_tenant(self.tenant)

    def resolve(self, name: str) -> Resolution:
        return resolve(self.registry.get(name), self.inputs(), self.today())

    def resolve_all(self) -> dict[str, Resolution]:
        return resolve_all(self.registry, self.inputs(), self.today())

    def value(self, name: str) -> FlagValue:
        return self.resolve(name).value

    def warnings(self) -> list[str]:
        return expiry_warnings(self.registry, self.today())

    def check_change(
        self, name: str, value: FlagValue | None, *, scope: Scope, kill: bool, reason: str
    ) -> Flag:
        """The flag, once the change is allowed; a FlagError saying why not otherwise."""
        flag = self.registry.get(name)
        if flag.expired(self.today()):
            raise ExpiredFlagError(
                f"flag {name} expired on {flag.expires.isoformat()}: it can no longer be set",
                hint=f"ask its owner ({flag.owner}) to remove it or renew its expiry; "
                "clearing a value (--clear) is still allowed",
            )
        if scope not in flag.scopes:
            allowed = ", ".join(sorted(s.value for s in flag.scopes))
            raise FlagError(f"{name} cannot be set at {scope.value} scope", hint=f"use {allowed}")
        if kill and not flag.has_kill_switch:
            raise FlagError(f"{name} has no kill-switch", hint="set a value instead")
        if value is not None:
            flag.check(value)
        if not reason.strip():
            raise FlagError(
                "a reason is required for every change (it goes to the audit trail)",
                hint='add --reason "why this change"',
            )
        return flag

    def change(
        self,
        name: str,
        value: FlagValue | None,
        *,
        scope: Scope,
        reason: str,
        kill: bool = False,
        clear: bool = False,
    ) -> AuditEntry:
        """Set a value and/or engage the kill-switch at a local scope, or clear it; audited."""
        if clear:
            self.registry.get(name)
            if not reason.strip():
                self.check_change(name, None, scope=scope, kill=False, reason=reason)
        else:
            self.check_change(name, value, scope=scope, kill=kill, reason=reason)
        who = current_user()
        at = now()
        new = None if clear else FlagSetting(value=value, kill=kill, reason=reason, set_by=who,
                                             set_at=at)  # fmt: skip
        file = self._file(scope)
        old = file.update(name, new)
        target = str(self.root) if scope is Scope.WORKSPACE else f"user {who}"
        entry = AuditEntry(
            at=at, who=who, flag=name, scope=scope.value, target=target, old=old, new=new,
            reason=reason,
        )  # fmt: skip
        self.audit.append(entry)
        return entry
