"""The engine's one entry point: a workspace's graph, cache and interpreter, and what runs on them.

Both callers drive the same pipeline (plan, then execute) through this object: the CLI without a
daemon opens one for the command (`Engine.open`), and the daemon's test service builds one per
run over a private copy of its graph, its shared (maybe mirrored) cache and its fingerprint
store, which the engine must not close.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from maestro.cache.store import Cache
    from maestro.engine.events import Event
    from maestro.engine.interpreter import Interpreter
    from maestro.engine.testing import Plan, PlannedFile, RunOrder, Selection, Summary
    from maestro.graph.build import BuildGraph
    from maestro.graph.fingerprints import FingerprintStore


@dataclass(slots=True)
class Engine:
    """One workspace's test engine. ``fingerprints`` None: the plan opens the workspace's store."""

    graph: BuildGraph
    cache: Cache
    interpreter: Interpreter
    fingerprints: FingerprintStore | None = None

    @classmethod
    def open(cls, root: Path) -> Engine:
        """The graph from its saved index, the user's cache and the configured interpreter.
        The engine owns that cache: close it (or use the engine as a context manager)."""
        from maestro.cache import Cache
        from maestro.engine.interpreter_cache import workspace_interpreter
        from maestro.graph.build import BuildGraph
        from maestro.paths import graph_index_path

        graph = BuildGraph.build(root, index_path=graph_index_path(root))
        interpreter = workspace_interpreter(root, configured=graph.loaded.config.interpreter)
        return cls(graph, Cache.open(), interpreter)

    def close(self) -> None:
        self.cache.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def plan(self, selection: Selection, *, environ: Mapping[str, str] | None = None) -> Plan:
        from maestro.engine.testing import plan

        return plan(
            self.graph, self.cache, self.interpreter, selection, environ=environ,
            fingerprints=self.fingerprints,
        )  # fmt: skip

    def promote(self, planned: Plan) -> None:
        """Store the plan's node-level hits under their new keys (`execute` does it too)."""
        from maestro.engine.testing import promote

        promote(self.cache, planned)

    async def execute(
        self,
        planned: Plan,
        *,
        on_event: Callable[[Event], None] | None = None,
        environ: Mapping[str, str] | None = None,
        run_order: RunOrder | None = None,
        nice: int = 0,
    ) -> Summary:
        from maestro.engine.testing import execute

        return await execute(
            self.graph, self.cache, self.interpreter, planned, on_event=on_event,
            environ=environ, run_order=run_order, nice=nice,
        )  # fmt: skip

    def run(
        self,
        selection: Selection,
        *,
        on_plan: Callable[[Plan], None] | None = None,
        on_event: Callable[[Event], None] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Summary:
        """Plan and execute synchronously (no event loop when everything is cached)."""
        from maestro.engine.testing import run

        return run(
            self.graph, self.cache, self.interpreter, selection, on_plan=on_plan,
            on_event=on_event, environ=environ, fingerprints=self.fingerprints,
        )  # fmt: skip

    def stale(self, *, environ: Mapping[str, str] | None = None) -> list[PlannedFile]:
        """Test files with no usable (passing) cached result for their current inputs."""
        from maestro.engine.testing import stale

        return stale(
            self.graph, self.cache, self.interpreter, environ=environ,
            fingerprints=self.fingerprints,
        )  # fmt: skip
