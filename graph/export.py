"""The whole graph as Graphviz dot or node-link JSON (`maestro graph export`, the daemon's
`graph_export`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from maestro.graph.build import BuildGraph


def export_json(graph: BuildGraph) -> str:
    nodes = [{"id": n, "kind": graph.node_kind(n)} for n in sorted(graph.nodes())]
    edges = [
        {"source": s, "target": t, "kind": e.kind, "line": e.line, "detail": e.detail}
        for s, out in sorted(graph.deps.items())
        for t, e in sorted(out.items())
    ]
    return json.dumps({"schema": "maestro.graph/1", "nodes": nodes, "edges": edges}, indent=1)


def export_dot(graph: BuildGraph) -> str:
    shapes = {"test": "box", "declared": "hexagon", "distribution": "ellipse", "global": "note"}
    lines = ["digraph maestro {", "  rankdir=LR;", "  node [shape=plaintext];"]
    for node in sorted(graph.nodes()):
        shape = shapes.get(graph.node_kind(node), "plaintext")
        lines.append(f"  {json.dumps(node)} [shape={shape}];")
    for source, out in sorted(graph.deps.items()):
        for target, edge in sorted(out.items()):
            lines.append(f"  {json.dumps(source)} -> {json.dumps(target)} [label={edge.kind}];")
    lines.append("}")
    return "\n".join(lines)
