"""A gate: the engine, the decision log and a redactor, so a caller decides and records in one
call. This is the function the daemon, the CLI and the editor integration use."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maestro.policy.markers import MarkerScanner as MarkerScanner
from maestro.policy.model import CacheInput, Decision, DecisionRecord, FiredRule, PolicyInput
from maestro.policy.records import DecisionLog
from maestro.redaction import Redactor

if TYPE_CHECKING:
    from maestro.engine.testing import Plan
    from maestro.policy.engine import PolicyEngine, PolicySet


def redact_value(value: Any, redactor: Redactor) -> Any:
    """Every string of a JSON value redacted (keys too: a path can hold a token)."""
    if isinstance(value, str):
        return str(redactor.redact(value))
    if isinstance(value, list):
        return [redact_value(v, redactor) for v in value]
    if isinstance(value, dict):
        return {str(redactor.redact(str(k))): redact_value(v, redactor) for k, v in value.items()}
    return value


def serve_asks(
    policy: PolicySet | None, targets: Iterable[str], scanner: MarkerScanner
) -> list[tuple[str, list[str]]]:
    """The files whose cache ``serve`` decision must be asked, with their markers. Every one
    when a workspace or team module has cache rules; else only those carrying a marker: the
    built-in cache rules deny serving for a marker only (``no_cache_markers``), and a plan
    serves hundreds of files at every run."""
    every = policy is None or not policy.only_builtin("cache")
    out = []
    for target in targets:
        markers = scanner.markers(target)
        if every or markers:
            out.append((target, markers))
    return out


def deny_serving(
    gate: PolicyGate, planned: Plan, execution_id: str, scanner: MarkerScanner, *,
    ci: bool = False,
) -> list[DecisionRecord]:  # fmt: skip
    """Ask ``cache`` / ``serve`` for each file ``planned`` serves from the cache (see
    :func:`serve_asks`); a file it denies is made to run for real, the whole file. Returns the
    records of the decisions that were not a plain allow, kept in the gate's log (a plain
    allow is not recorded: a plan serves hundreds of files at every run). Blocking."""
    served = {f.target: f for f in planned.files if f.reason is None}
    records = []
    for target, markers in serve_asks(gate.engine.current, served, scanner):
        f = served[target]
        result = f.cached or f.carried
        inp = CacheInput(
            execution_id=execution_id, action="serve", target=target, markers=markers, ci=ci,
            outcome=None if result is None else ("passed" if result.exit_code == 0 else "failed"),
        )  # fmt: skip
        decision = gate.engine.decide(inp)
        if decision.result == "allow" and not decision.rules:
            continue
        record = gate.record(inp, decision, targets=[target])
        if gate.log is not None:
            gate.log.add(record)
        records.append(record)
        if decision.result != "allow":
            f.reason = "cached result unusable"
            f.run_nodes, f.carried, f.promote = None, None, False
            f.node_reasons = {}
    return records


@dataclass
class PolicyGate:
    engine: PolicyEngine
    log: DecisionLog | None
    redactor: Redactor = field(default_factory=lambda: Redactor(detectors=False))

    @classmethod
    def for_workspace(
        cls, root: Path, environ: Mapping[str, str] | None = None, *, isolate: bool = False
    ) -> PolicyGate:
        """``isolate``: compile new policy sets in a child first (long-lived processes)."""
        from maestro.policy.engine import PolicyEngine  # regopy: only once a gate is opened

        redactor = Redactor.from_environ(environ or {}, detectors=False)
        engine = PolicyEngine.open(root, isolate=isolate)
        return cls(engine, DecisionLog.for_workspace(root), redactor)

    def decide(
        self, inp: PolicyInput, *, targets: Iterable[str] = ()
    ) -> tuple[Decision, DecisionRecord]:
        """Decide, and keep the decision (redacted) in the log."""
        decision = self.engine.decide(inp)
        record = self.record(inp, decision, targets=targets)
        if self.log is not None:
            self.log.add(record)
        return decision, record

    def record(
        self, inp: PolicyInput, decision: Decision, *, targets: Iterable[str] = ()
    ) -> DecisionRecord:
        return DecisionRecord(
            id=uuid.uuid4().hex,
            time=datetime.now(UTC).isoformat(timespec="milliseconds"),
            point=inp.point,
            execution_id=inp.execution_id,
            schema_=inp.schema_name(),
            input=redact_value(inp.model_dump(mode="json"), self.redactor),
            result=decision.result,
            rules=[self._redact_rule(r) for r in decision.rules],
            retry_after_ms=decision.retry_after_ms,
            targets=self._redact_paths(targets),
            policy=decision.policy,
            error=decision.error,
        )

    def _redact_paths(self, paths: Iterable[str]) -> list[str]:
        # one pass over the joined list: a plan's hundreds of paths, redacted one by one, cost
        # tens of milliseconds
        unique = sorted(set(paths))
        if any("\n" in p for p in unique):
            return sorted({str(self.redactor.redact(p)) for p in unique})
        return (
            sorted(set(str(self.redactor.redact("\n".join(unique))).split("\n"))) if unique else []
        )

    def _redact_rule(self, rule: FiredRule) -> FiredRule:
        # messages and targets are made from the input, so they carry what it carried
        update: dict[str, Any] = {"message": str(self.redactor.redact(rule.message))}
        if rule.target is not None:
            update["target"] = str(self.redactor.redact(rule.target))
        return rule.model_copy(update=update)

    def decisions(
        self, *, execution_id: str | None = None, test: str | None = None, limit: int = 100
    ) -> list[DecisionRecord]:
        """The decisions about a run (execution id) or a test (file or node id), newest first.
        This is what `maestro explain` and the editor show."""
        if self.log is None:
            return []
        return self.log.query(execution_id=execution_id, test=test, limit=limit)

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


def decisions_for(
    root: Path, *, execution_id: str | None = None, test: str | None = None, limit: int = 100
) -> list[DecisionRecord]:
    """Read a workspace's decision log (no engine needed): for explain in the CLI and editor."""
    from maestro.paths import workspace_state_dir
    from maestro.policy.records import FILE_NAME

    path = workspace_state_dir(root) / FILE_NAME
    if not path.is_file():
        return []
    log = DecisionLog(path)
    try:
        return log.query(execution_id=execution_id, test=test, limit=limit)
    finally:
        log.close()
