"""The policy's wire shapes: one typed, versioned input per decision point, and the decision.

Each input model names its schema (``maestro.policy.<point>/<version>``); Rego sees the model's
JSON form as ``input`` (docs/policy.md lists every field). A field is added with a default and
the version stays; a field removed or changing meaning bumps the version.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field
from pydantic.alias_generators import to_camel

Point = Literal["run", "select", "cache", "coordinator", "plugin"]
POINTS: tuple[Point, ...] = ("run", "select", "cache", "coordinator", "plugin")
Result = Literal["allow", "deny", "queue"]
RunKind = Literal["interactive", "background", "speculative", "ci"]


class PolicyInput(BaseModel):
    """Base of every decision point's input."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    point: ClassVar[Point]
    schema_version: ClassVar[int] = 1

    execution_id: str = Field(default="", description="the run (or request) this decision is for")

    @classmethod
    def schema_name(cls) -> str:
        return f"maestro.policy.{cls.point}/{cls.schema_version}"


class WindowState(BaseModel):
    """A configured run window, evaluated at the decision's time by Maestro (zoneinfo)."""

    model_config = ConfigDict(defer_build=True)

    open: bool
    next_open_ms: int = Field(description="epoch ms of the window's next start (now if open)")
    tz: str
    kinds: list[RunKind]


class RunningRun(BaseModel):
    model_config = ConfigDict(defer_build=True)

    execution_id: str
    kind: RunKind
    paths: list[str] = Field(description="targets it runs; empty: the whole suite")
    started_ms: int


class RunInput(PolicyInput):
    """May this run start now, wait in the queue, or not run?"""

    point: ClassVar[Point] = "run"
    kind: RunKind = "interactive"
    paths: list[str] = Field(default_factory=list, description="selected paths; empty: all")
    running: list[RunningRun] = Field(default_factory=list)
    now_ms: int
    windows: dict[str, WindowState] = Field(default_factory=dict)
    ci: bool = False
    speculation_budget_s: float | None = None


class SelectInput(PolicyInput):
    """Which tests a run must add (force-include: ``include`` targets are paths, files or
    folders, Maestro adds the test files under them) or must keep (never skip). Kept small on
    purpose: rego-cpp converts the input at every decision, so the workspace's test list is
    not part of it."""

    point: ClassVar[Point] = "select"
    mode: Literal["normal", "predictive"] = "normal"
    changed: list[str] = Field(default_factory=list, description="changed workspace paths")
    selected: list[str] = Field(
        default_factory=list, description="test files the graph chose (empty over 100 files)"
    )
    skipped: list[str] = Field(
        default_factory=list, description="files predictive mode would skip that carry markers"
    )
    markers: dict[str, list[str]] = Field(
        default_factory=dict, description="test file -> pytest markers found in it (static)"
    )
    marked: dict[str, list[str]] = Field(
        default_factory=dict,
        description="test (file::name, or the file for pytestmark) -> the quarantine markers"
        " applied to it (static; only markers the settings quarantine are sent)",
    )


class CacheInput(PolicyInput):
    """May a result be stored locally, served from the cache, or uploaded to the team cache?"""

    point: ClassVar[Point] = "cache"
    action: Literal["store", "serve", "upload"]
    target: str
    markers: list[str] = Field(default_factory=list)
    ci: bool = False
    outcome: str | None = None


class CoordinatorRefusal(BaseModel):
    """The coordinator's own refusal, handed to the policy so its rules name and explain it."""

    model_config = ConfigDict(defer_build=True)

    rule: str = Field(description="admission.queue_full, rate.tenant, ...")
    message: str
    retry_after_ms: int
    limit: str | None = None
    shadow: bool = Field(default=False, description="rate_limits = shadow: served anyway")


class CoordinatorInput(PolicyInput):
    """Request admission at the coordinator (quotas, rate limits)."""

    point: ClassVar[Point] = "coordinator"
    tenant: str
    role: str
    method: str
    path: str
    priority: str = "normal"
    in_flight: int = 0
    rate_per_s: float = 0.0
    upload_bytes: int = Field(default=0, description="body bytes of a PUT (0 otherwise)")
    now_ms: int = Field(default=0, description="epoch ms of the request")
    refusal: CoordinatorRefusal | None = Field(
        default=None, description="what admission or a rate limit refused (None: not refused)"
    )


class PluginInput(PolicyInput):
    """May this plugin load?"""

    point: ClassVar[Point] = "plugin"
    name: str
    version: str
    sha256: str
    signed: bool = False
    signer: str | None = None


INPUTS: dict[Point, type[PolicyInput]] = {
    m.point: m for m in (RunInput, SelectInput, CacheInput, CoordinatorInput, PluginInput)
}


class WireModel(BaseModel):
    """Records and the rules in them are one model on every wire (the coordinator's explain
    API, the CLI's --json, the editor): camelCase by alias, either spelling accepted (records
    stored before)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        json_schema_serialization_defaults_required=True,  # a dump always has every field
        defer_build=True,
    )


class FiredRule(WireModel):
    """One rule that fired: its id and remediation (from its METADATA annotation)."""

    rule: str
    kind: Literal["deny", "queue", "include", "keep", "warn", "quarantine"]
    layer: Literal["builtin", "workspace", "team"]
    message: str = ""
    remediation: str = ""
    title: str = ""
    retry_after_ms: int | None = None
    retry_at_ms: int | None = Field(
        default=None,
        description="epoch ms to retry at, when the rule said so (the retry delay is then"
        " counted from the decision's now_ms)",
    )
    target: str | None = None
    shadow: bool = Field(default=False, description="recorded, not enforced (shadow rule set)")

    def sentence(self) -> str:
        text = f"{self.message or self.title or self.rule} (rule {self.rule})"
        if self.remediation:
            text += f"; remediation: {self.remediation}"
        return text


class Decision(BaseModel):
    """What the policy decided for one input."""

    model_config = ConfigDict(defer_build=True)

    point: Point
    result: Result
    rules: list[FiredRule] = Field(default_factory=list)
    retry_after_ms: int | None = None
    policy: str = Field(default="", description="digest of the policy set that decided")
    error: str | None = Field(default=None, description="evaluation error (fail mode applied)")

    def fired(self, kind: str) -> list[FiredRule]:
        return [r for r in self.rules if r.kind == kind and not r.shadow]

    def targets(self, kind: str) -> list[str]:
        return sorted({r.target for r in self.fired(kind) if r.target})


class DecisionRecord(WireModel):
    """A decision as it is kept, exported and explained: the input is redacted."""

    id: str
    time: str = Field(description="RFC 3339, UTC")
    point: Point
    execution_id: str = ""
    schema_: str = Field(alias="schema")
    input: dict[str, Any] = Field(description="the input, every string redacted")
    result: Result
    rules: list[FiredRule]
    retry_after_ms: int | None = Field(
        default=None, description="a deny's advice: retry after this"
    )
    waited_ms: int | None = Field(default=None, description="how long a queued run waited")
    targets: list[str] = Field(default_factory=list, description="test files it concerned")
    policy: str = ""
    error: str | None = None

    @computed_field(description="one line to show, rules and remediation included")  # type: ignore[prop-decorator]
    @property
    def summary(self) -> str:
        """One line a person reads: 'queued 42 s: at most 1 ... (rule x); remediation: ...'."""
        lead = {"allow": "allowed", "deny": "denied", "queue": "queued"}[self.result]
        if self.result == "queue" and self.waited_ms is not None:
            lead += f" {self.waited_ms / 1000:.0f} s"
        if self.result == "deny" and self.retry_after_ms:
            lead += f" (retry in {self.retry_after_ms / 1000:.0f} s)"
        shown = [r for r in self.rules if not r.shadow and r.kind in ("deny", "queue")] or [
            r for r in self.rules if not r.shadow
        ]
        body = "; ".join(r.sentence() for r in shown)
        text = f"{self.point} {lead}"
        if body:
            text += f": {body}"
        if self.error:
            text += f" [evaluation error: {self.error}]"
        return text


class Incident(BaseModel):
    """Raised when a bundle is quarantined, cleared when a good one is in force."""

    model_config = ConfigDict(defer_build=True)

    event: Literal["policy/incident"] = "policy/incident"
    active: bool
    reason: str
    message: str
    revision: str | None = None
    time: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def prepare() -> None:
    """Build the validators a run's decisions use. They are built on first use (a daemon
    starts and answers without them); a daemon builds them while it opens its gate, before its
    first run asks."""
    models: list[type[BaseModel]] = [*INPUTS.values()]
    models += [WindowState, RunningRun, FiredRule, Decision, DecisionRecord]
    for model in models:
        model.model_rebuild(force=True)
