"""A run's outcome inside the engine (:class:`Summary`), apart from engine/testing.py: it is a
model of the wire's, and importing the models (pydantic) before pytest has its run would delay
the run by as much."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from maestro.cache.action import ActionResult, TestOutcome
from maestro.engine.node_level import FAILING
from maestro.engine.runner import RunReport
from maestro.engine.testing import FileOutcome
from maestro.wire import RunCounts

__all__ = ["Summary"]


class Summary(RunCounts):
    """A run's outcome inside the engine: its counts (the wire's RunCounts) and, per file, the
    plan and the result, with the pytest report when pytest ran."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    files: list[FileOutcome]
    report: RunReport | None = None
    confirmed: list[str] = Field(default_factory=list)  # what whole-file confirmations said
    environment: list[str] = Field(default_factory=list)  # files that read a withheld variable
    notes: list[str] = Field(default_factory=list)  # changes the selection reaches no test from

    def failures(self) -> list[tuple[str, TestOutcome]]:
        return [
            (f.target, t)
            for f in self.files
            if f.result is not None
            for t in f.result.tests
            if t.outcome in FAILING
        ]

    def results(self) -> list[tuple[ActionResult, bool]]:
        return [(f.result, f.cached) for f in self.files if f.result is not None]
