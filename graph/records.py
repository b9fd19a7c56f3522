"""The records the graph is made of and answers with: node prefixes, edges, hops, diagnostics,
build statistics. Plain data, no behaviour beyond wording an edge."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from maestro.names import printable

EdgeKind = Literal[
    "import", "init", "conftest", "plugin", "dynamic", "global", "src", "dep", "recorded", "dist"
]  # fmt: skip
TargetKind = Literal["test", "declared"]
DIST = "dist:"
LISTING = "dir:"
"""A workspace directory's listing (``dir:tests/data``, ``dir:.`` for the root), read by a test."""
TARGET = "//"


class Edge(NamedTuple):
    """Why a node depends on another. A tuple, not a dataclass: a warm start restores ~20k of
    them from the index, and a frozen dataclass costs 3x as much to construct."""

    kind: EdgeKind
    line: int = 0
    detail: str = ""  # the module as written, the glob that matched, the section...


_VERBS = {"import": "imports", "dynamic": "imports dynamically", "plugin": "loads pytest plugin"}


class Hop(NamedTuple):
    """One step of a reason chain: `source` depends on `target` because of `edge`. (A tuple: a
    hub answer builds thousands.)"""

    source: str
    target: str
    edge: Edge

    def describe(self) -> str:
        return describe(self.edge, self.target)


def describe(e: Edge, target: str = "") -> str:
    """An edge to `target` in words ("imports x (line 3)"), as a reason chain says it."""
    at = f" (line {e.line})" if e.line else ""
    match e.kind:
        case "import" | "dynamic" | "plugin":
            return f"{_VERBS[e.kind]} {e.detail}{at}"
        case "init":
            return f"runs package init of {e.detail}{at}"
        case "conftest":
            return "uses conftest"
        case "global":
            return "reads global input"
        case "src":
            return f"has source matching {e.detail!r}"
        case "dep":
            return "depends on target"
        case "recorded":
            # a module found by the recorder was imported (dynamically, or through another
            # module's import at run time); anything else was read as data
            if target == "conftest.py" or target.endswith("/conftest.py"):
                # pytest imports a conftest itself, another folder's too (an initial conftest
                # of the paths it was given), before any test: its import-time code ran first
                return "ran after pytest loaded it (recorded)"
            verb = "imported" if target.endswith((".py", ".pyi")) else "read"
            return f"{verb} it while running (recorded)"
        case "dist":
            return f"imports installed distribution {e.detail}{at}"
    return e.kind


@dataclass(slots=True)
class Diagnostic:
    path: str
    line: int
    message: str
    severity: Literal["error", "warning"] = "warning"

    def __post_init__(self) -> None:
        # A diagnostic may name a file whose name is not UTF-8: shown printably, it can go
        # anywhere (JSON, the wire, a log file).
        self.path = printable(self.path)
        self.message = printable(self.message)


@dataclass(slots=True)
class BuildStats:
    files: int = 0
    python_files: int = 0
    tests: int = 0
    declared_targets: int = 0
    edges: dict[str, int] = field(default_factory=dict)
    distributions: int = 0
    unresolved_imports: int = 0
    reused_from_index: int = 0
    scanned: int = 0
    build_seconds: float = 0.0
