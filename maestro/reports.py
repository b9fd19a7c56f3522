"""Reports about the build graph: the stable JSON of `impacted --json`, `why`, `graph stats`.

These pydantic models are the contract shared by the CLI (in process) and the daemon's RPC, so the
output is identical either way. Changing a field is a schema version bump (see docs/cli-json.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from maestro.graph.stats import STATS_SCHEMA, stats_data

if TYPE_CHECKING:
    from maestro.graph.build import BuildGraph, Change, Hop, Impact

IMPACTED_SCHEMA = "maestro.impacted/1"
WHY_SCHEMA = "maestro.why/1"


class HopModel(BaseModel):
    model_config = ConfigDict(defer_build=True)

    source: str = Field(description="the dependent (file or target)")
    target: str = Field(description="what it depends on")
    kind: str = Field(description="import, init, conftest, plugin, dynamic, global, src, dep, ...")
    line: int = Field(description="line in `source` (0 when not applicable)")
    detail: str = Field(description="module as written, glob, or section")
    text: str = Field(description="human-readable reason")

    @classmethod
    def of(cls, hop: Hop) -> HopModel:
        # built from the graph's own typed data: no validation needed (a hub change has
        # thousands of hops); whoever receives it over the wire validates it
        return cls.model_construct(**hop_data(hop))


def hop_data(hop: Hop) -> dict[str, Any]:
    """A hop in its JSON form (HopModel's fields)."""
    e = hop.edge
    return {
        "source": hop.source,
        "target": hop.target,
        "kind": e.kind,
        "line": e.line,
        "detail": e.detail,
        "text": hop.describe(),
    }


class ChangeModel(BaseModel):
    model_config = ConfigDict(defer_build=True)

    path: str
    status: Literal["modified", "added", "deleted"]


class ImpactModel(BaseModel):
    model_config = ConfigDict(defer_build=True)

    target: str
    kind: Literal["test", "declared"]
    changed: str = Field(description="the changed input the reason chain ends at")
    distance: int
    why: str = Field(default="", description="the reason chain in words, one line")
    reason: list[HopModel] = Field(
        description="from the target down to the changed input (empty when not asked for)"
    )


class ImpactedReport(BaseModel):
    schema_: str = Field(default=IMPACTED_SCHEMA, alias="schema")
    root: str
    changes: list[ChangeModel]
    impacted: list[ImpactModel]
    elapsed_ms: float = Field(description="time to answer, excluding graph loading")
    etag: str = Field(default="", description="names this answer (RPC only; not in --json)")
    unchanged: bool = Field(
        default=False, description="the answer named by the request's etag still holds: no rows"
    )
    notes: list[str] = Field(
        default_factory=list,
        description="changes no target reaches yet, and why (an extension module's C source: "
        "tests import the built module, which must be rebuilt)",
    )

    model_config = ConfigDict(populate_by_name=True, defer_build=True)

    @staticmethod
    def data(
        root: str,
        changes: list[Change],
        impacts: list[Impact],
        elapsed_ms: float,
        *,
        hops: int | None = None,
        etag: str = "",
        why: bool = True,
        notes: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The report in its JSON form. Structured chains for the first ``hops`` targets only
        (None: all); ``why`` says every chain in words. An editor showing a hub change's 600
        rows needs one line each and the CLI prints 40 trees (and no ``why``: ``why=False``):
        encoding and validating thousands of hops cost more than the graph walk. Plain data:
        the daemon sends it as is (the receiver validates), the CLI validates it in one pass
        (``model_validate``: ~10x cheaper than constructing each row model in Python)."""
        rows = []
        for n, i in enumerate(impacts):
            reason = [hop_data(h) for h in i.chain] if hops is None or n < hops else []
            rows.append(
                {
                    "target": i.target,
                    "kind": i.kind,
                    "changed": i.changed,
                    "distance": i.distance,
                    "why": (i.why or f"{i.target} changed") if why else "",
                    "reason": reason,
                }
            )
        return {
            "schema": IMPACTED_SCHEMA,
            "root": root,
            "changes": [{"path": c.path, "status": c.status} for c in changes],
            "impacted": rows,
            "elapsed_ms": round(elapsed_ms, 3),
            "etag": etag,
            "unchanged": False,
            "notes": list(notes),
        }

    @classmethod
    def same_as(cls, root: str, etag: str) -> ImpactedReport:
        """The answer to a request whose etag still holds: the client reuses what it has."""
        return cls.model_construct(
            schema_=IMPACTED_SCHEMA,
            root=root,
            changes=[],
            impacted=[],
            elapsed_ms=0.0,
            etag=etag,
            unchanged=True,
        )


class WhyReport(BaseModel):
    schema_: str = Field(default=WHY_SCHEMA, alias="schema")
    target: str
    path: str
    depends: bool
    reason: list[HopModel]

    model_config = ConfigDict(populate_by_name=True, defer_build=True)


class DiagnosticModel(BaseModel):
    model_config = ConfigDict(defer_build=True)

    path: str
    line: int
    severity: Literal["error", "warning"]
    message: str


class GraphStatsReport(BaseModel):
    schema_: str = Field(default=STATS_SCHEMA, alias="schema")
    root: str
    files: int
    python_files: int
    tests: int
    declared_targets: int
    edges: dict[str, int]
    distributions: int
    unresolved_imports: int
    reused_from_index: int
    scanned: int
    build_seconds: float
    diagnostics: list[DiagnosticModel]
    syntax_unchecked: int = 0
    targets: list[str] | None = None

    model_config = ConfigDict(populate_by_name=True, defer_build=True)

    @classmethod
    def build(
        cls, graph: BuildGraph, *, with_targets: bool, check_syntax: bool = False
    ) -> GraphStatsReport:
        return cls.of_data(stats_data(graph, with_targets=with_targets, check_syntax=check_syntax))

    @classmethod
    def of_data(cls, data: Mapping[str, Any]) -> GraphStatsReport:
        """The report from its JSON form as maestro.graph.stats builds it, without validation
        (building the validator alone costs a cold `graph stats` more than its stats); a
        receiver over the wire validates it."""
        fields = {key: value for key, value in data.items() if key != "schema"}
        fields["diagnostics"] = [DiagnosticModel.model_construct(**d) for d in data["diagnostics"]]
        return cls.model_construct(schema_=data["schema"], **fields)
