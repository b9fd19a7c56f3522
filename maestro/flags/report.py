"""The daemon's `flags` method: resolved values, expiry warnings and the tenant poll, for the
CLI and editors (an editor shows ``warnings`` the way the CLI prints them)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from maestro.wire import Empty, Tally, WireModel, register_method

from .registry import FlagValue


class FlagState(WireModel):
    name: str
    value: FlagValue
    layer: str = Field(description="tenant, editor, workspace, config, user or default")
    killed: bool = False
    why: str = ""
    expired: bool = False
    expires: str = Field(description="ISO date of the flag's declared expiry")
    owner: str = ""


class TenantPollCounts(Tally):
    """What the daemon's polls of its tenant's overrides did; the flags service adds to it."""

    state: str = Field(description="polling, off (and why), or failing (last-good kept)")
    polls: int = 0
    changes: int = Field(default=0, description="polls that brought new overrides")
    last_poll_at: float | None = None
    last_change_at: float | None = None
    last_error: str | None = None


class TenantPoll(TenantPollCounts):
    """How the daemon follows its tenant's overrides on the coordinator."""

    model_config = ConfigDict(frozen=True)

    tenant: str | None = None
    url: str | None = None
    etag: str | None = None
    poll_interval_s: float
    overrides: int = 0


class FlagsReport(WireModel):
    flags: list[FlagState]
    warnings: list[str] = Field(
        default_factory=list, description="expired flags: one line each, for the user to see"
    )
    tenant: TenantPoll


FLAGS = register_method(
    "flags", Empty, FlagsReport, doc="Resolved feature flags, expiry warnings, tenant poll state."
)
