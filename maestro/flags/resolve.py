"""Which value a flag has here, and why: the layers, their precedence, the kill-switch.

Precedence, highest first (docs/flags.md, "Precedence"):

    kill-switch (engaged at any scope: tenant, workspace or user) -> the flag's kill value
    tenant      the team's override, from the coordinator (as last polled)
    editor      the connected editor's session setting (only ml.speculation.enabled has one)
    workspace   `maestro flags set --scope workspace` (this checkout, this user)
    config      the older workspace configuration key ([tool.maestro.ml...] or maestro.toml)
    user        `maestro flags set --scope user` (every workspace of this user)
    default     the declaration

A layer only counts for a flag whose declared scopes include it (editor and config count as the
workspace scope). The kill-switch wins because it exists to stop a feature at once, from
wherever it was switched on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from .registry import Flag, FlagValue, FlagValueError, Registry, Scope, format_value


class FlagSetting(BaseModel):
    """A value (or a kill-switch) set at one scope, with who set it and why."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    value: FlagValue | None = None
    kill: bool = False
    reason: str = ""
    set_by: str = ""
    set_at: datetime | None = None

    @property
    def empty(self) -> bool:
        return self.value is None and not self.kill

    def describe(self) -> str:
        parts = []
        if self.value is not None:
            parts.append(format_value(self.value))
        if self.kill:
            parts.append("kill-switch engaged")
        return ", ".join(parts) or "unset"


class Layer(StrEnum):
    TENANT = "tenant"
    EDITOR = "editor"
    WORKSPACE = "workspace"
    CONFIG = "config"
    USER = "user"
    DEFAULT = "default"


LAYER_SCOPE = {
    Layer.TENANT: Scope.TENANT,
    Layer.EDITOR: Scope.WORKSPACE,
    Layer.WORKSPACE: Scope.WORKSPACE,
    Layer.CONFIG: Scope.WORKSPACE,
    Layer.USER: Scope.USER,
}
KILL_LAYERS = (Layer.TENANT, Layer.WORKSPACE, Layer.USER)


@dataclass(frozen=True, slots=True)
class Inputs:
    """Every layer's settings, by flag name, and where each layer comes from (for explain)."""

    tenant: Mapping[str, FlagSetting] = field(default_factory=dict)
    editor: Mapping[str, FlagValue] = field(default_factory=dict)
    workspace: Mapping[str, FlagSetting] = field(default_factory=dict)
    config: Mapping[str, FlagValue] = field(default_factory=dict)
    user: Mapping[str, FlagSetting] = field(default_factory=dict)
    where: Mapping[Layer, str] = field(default_factory=dict)

    def setting(self, layer: Layer, name: str) -> FlagSetting | None:
        if layer is Layer.TENANT:
            return self.tenant.get(name)
        if layer is Layer.WORKSPACE:
            return self.workspace.get(name)
        if layer is Layer.USER:
            return self.user.get(name)
        plain = (self.editor if layer is Layer.EDITOR else self.config).get(name)
        return None if plain is None else FlagSetting(value=plain)

    def with_tenant(self, tenant: TenantFlags | None) -> Inputs:
        """These inputs with `tenant`'s overrides as the tenant layer (none without a tenant)."""
        if tenant is None or not tenant.tenant:
            return replace(self, tenant={})
        fetched = tenant.fetched_at
        when = f", fetched {fetched.isoformat(timespec='seconds')}" if fetched else ""
        where = {**self.where, Layer.TENANT: f"tenant {tenant.tenant} on the coordinator{when}"}
        return replace(self, tenant=dict(tenant.overrides), where=where)


@dataclass(frozen=True, slots=True)
class Considered:
    layer: Layer
    where: str
    setting: FlagSetting | None
    note: str = ""  # why it did not count (scope not allowed, bad value)


@dataclass(frozen=True, slots=True)
class Resolution:
    flag: Flag
    value: FlagValue
    layer: Layer
    killed: bool
    why: str
    expired: bool
    considered: tuple[Considered, ...]

    def to_json(self) -> dict[str, object]:
        f = self.flag
        return {
            "name": f.name,
            "value": self.value,
            "layer": self.layer.value,
            "killed": self.killed,
            "why": self.why,
            "expired": self.expired,
            "expires": f.expires.isoformat(),
            "owner": f.owner,
            "description": f.description,
            "type": f.kind,
            "choices": list(f.choices) or None,
            "default": f.default,
            "kill_value": f.kill_value,
            "scopes": sorted(s.value for s in f.scopes),
            "layers": [
                {
                    "layer": c.layer.value,
                    "where": c.where,
                    "setting": c.setting.model_dump(mode="json", exclude_none=True)
                    if c.setting is not None
                    else None,
                    "note": c.note or None,
                }
                for c in self.considered
            ],
        }


ORDER = (Layer.TENANT, Layer.EDITOR, Layer.WORKSPACE, Layer.CONFIG, Layer.USER)


def resolve(flag: Flag, inputs: Inputs, today: date) -> Resolution:
    considered: list[Considered] = []
    usable: list[tuple[Layer, FlagSetting]] = []
    for layer in ORDER:
        where = inputs.where.get(layer, layer.value)
        setting = inputs.setting(layer, flag.name)
        note = ""
        if setting is not None and LAYER_SCOPE[layer] not in flag.scopes:
            note = f"ignored: {flag.name} cannot be set at {LAYER_SCOPE[layer].value} scope"
        elif setting is not None and setting.value is not None:
            try:
                setting = setting.model_copy(update={"value": flag.check(setting.value)})
            except FlagValueError as exc:  # a hand-edited file, an older coordinator
                note = f"ignored: {exc.message}"
        if setting is not None and not note:
            usable.append((layer, setting))
        considered.append(Considered(layer, where, setting, note))
    expired = flag.expired(today)
    tail = (Considered(Layer.DEFAULT, "the declaration", FlagSetting(value=flag.default)),)
    if flag.kill_value is not None:
        for layer, setting in usable:
            if setting.kill and layer in KILL_LAYERS:
                why = f"kill-switch engaged at {layer.value} scope ({_where(inputs, layer)})"
                why += _by(setting)
                return Resolution(
                    flag, flag.kill_value, layer, True, why, expired, (*considered, *tail)
                )
    for layer, setting in usable:
        if setting.value is not None:
            why = f"set at {layer.value} layer ({_where(inputs, layer)})" + _by(setting)
            return Resolution(flag, setting.value, layer, False, why, expired, (*considered, *tail))
    why = "the declared default: no layer sets it"
    return Resolution(flag, flag.default, Layer.DEFAULT, False, why, expired, (*considered, *tail))


def resolve_all(registry: Registry, inputs: Inputs, today: date) -> dict[str, Resolution]:
    return {flag.name: resolve(flag, inputs, today) for flag in registry}


def _where(inputs: Inputs, layer: Layer) -> str:
    return inputs.where.get(layer, layer.value)


def _by(setting: FlagSetting) -> str:
    parts = []
    if setting.set_by:
        parts.append(f"by {setting.set_by}")
    if setting.set_at is not None:
        parts.append(f"at {setting.set_at.isoformat(timespec='seconds')}")
    if setting.reason:
        parts.append(f"because {setting.reason!r}")
    return (" " + " ".join(parts)) if parts else ""


class TenantFlags(BaseModel):
    """A tenant's overrides as the coordinator serves them (and the daemon caches them)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    tenant: str
    overrides: dict[str, FlagSetting] = Field(default_factory=dict)
    etag: str = ""
    fetched_at: datetime | None = None
