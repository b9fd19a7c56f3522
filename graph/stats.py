"""The `graph stats` report in its JSON form, built from the graph without pydantic.

The pydantic model (maestro.reports.GraphStatsReport) is the contract on the wire and for
`--json`; this plain form is what both are made from, and what the CLI's text renders from, so a
cold `maestro graph stats` imports no model layer at all.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from maestro.graph.build import BuildGraph

STATS_SCHEMA = "maestro.graph-stats/1"


def stats_data(
    graph: BuildGraph, *, with_targets: bool, check_syntax: bool = False
) -> dict[str, Any]:
    """GraphStatsReport's fields by alias, in order (its `model_dump(by_alias=True)`): the graph's
    BuildStats as they are, in their order, with the build time rounded."""
    stats = graph.compute_stats()
    diagnostics = graph.diagnostics(check_syntax_now=check_syntax)
    return {
        "schema": STATS_SCHEMA,
        "root": str(graph.root),
        **asdict(stats),
        "build_seconds": round(stats.build_seconds, 4),
        "diagnostics": [
            {"path": d.path, "line": d.line, "severity": d.severity, "message": d.message}
            for d in diagnostics
        ],
        "syntax_unchecked": graph.syntax_unchecked(),
        "targets": sorted(graph.tests) + sorted("//" + t for t in graph.targets)
        if with_targets
        else None,
    }
