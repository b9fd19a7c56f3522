"""The daemon method that serves policy decisions to clients (the LSP server, the CLI).

Call it through the daemon client with :data:`POLICY_DECISIONS`; without a daemon,
:func:`maestro.policy.gate.decisions_for` reads the same log directly."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from maestro.policy.model import DecisionRecord, Incident
from maestro.wire import Empty, register_event, register_method


class PolicyDecisionsParams(BaseModel):
    model_config = ConfigDict(defer_build=True)

    execution_id: str | None = Field(default=None, description="a run's execution id")
    test: str | None = Field(default=None, description="a test file or node id")
    limit: int = Field(default=20, ge=1, le=1000)


class PolicyDecisionsResult(BaseModel):
    model_config = ConfigDict(defer_build=True)

    decisions: list[DecisionRecord] = Field(description="newest first")
    policy: str = Field(default="", description="digest of the policy set in force")
    error: str | None = Field(default=None, description="why the workspace policy is not loaded")


POLICY_DECISIONS = register_method(
    "policy_decisions",
    PolicyDecisionsParams,
    PolicyDecisionsResult,
    doc="Policy decisions about a run (execution id) or a test, with rule ids and remediation.",
)


class PolicyIncidentResult(BaseModel):
    model_config = ConfigDict(defer_build=True)

    incident: Incident | None = Field(
        default=None, description="the open team-bundle incident (None: none is open)"
    )


POLICY_INCIDENT_CURRENT = register_method(
    "policy_incident",
    Empty,
    PolicyIncidentResult,
    doc="The team policy bundle incident open now, if any: what a client that subscribed to "
    "policy.incident after it was raised would have missed.",
)

POLICY_INCIDENT = register_event("policy.incident", Incident)
"""Broadcast when a team bundle is quarantined (``active``) and when a good one clears it."""
