"""A gate: the engine, the decision log and a redactor, so a caller decides and records in one
call. This is the function the daemon, the CLI and the editor integration use."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maestro.errors import PolicyDeniedError, PolicyError
from maestro.policy.markers import MARKERS_FILE, MEMO_DIR
from maestro.policy.markers import MarkerScanner as MarkerScanner
from maestro.policy.model import (
    CacheInput,
    Decision,
    DecisionRecord,
    PolicyInput,
    RunInput,
    RunKind,
    RunningRun,
)
from maestro.policy.records import DecisionLog
from maestro.redaction import Redactor

if TYPE_CHECKING:
    from maestro.engine.testing import Plan, PlannedFile
    from maestro.policy.engine import PolicyEngine, PolicySet


log = logging.getLogger(__name__)


def redact_strings(strings: list[str], redactor: Redactor) -> list[str]:
    """``strings`` redacted, in one scan of them joined by newlines when none holds one: each
    scan has a fixed cost (a decision record has a few dozen short strings, which one by one
    cost most of a decision's time). A secret found across a join (the count of lines
    changes) falls back to one scan per string."""
    if not strings:
        return []
    if not any("\n" in s for s in strings):
        joined = "\n".join(strings)
        out = str(redactor.redact(joined))
        if out == joined:
            return strings
        parts = out.split("\n")
        if len(parts) == len(strings):
            return parts
    return [str(redactor.redact(s)) for s in strings]


def _strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for v in value:
            _strings(v, out)
    elif isinstance(value, dict):
        for k, v in value.items():
            out.append(str(k))
            _strings(v, out)


def _rebuild(value: Any, it: Iterator[str]) -> Any:
    if isinstance(value, str):
        return next(it)
    if isinstance(value, list):
        return [_rebuild(v, it) for v in value]
    if isinstance(value, dict):
        return {next(it): _rebuild(v, it) for v in value.values()}
    return value


def redact_value(value: Any, redactor: Redactor) -> Any:
    """Every string of a JSON value redacted (keys too: a path can hold a token)."""
    strings: list[str] = []
    _strings(value, strings)
    redacted = redact_strings(strings, redactor)
    if redacted is strings:
        return value
    return _rebuild(value, iter(redacted))


def serve_asks(
    policy: PolicySet | None,
    targets: Iterable[str],
    scanner: MarkerScanner,
    digests: Mapping[str, str] | None = None,
) -> list[tuple[str, list[str]]]:
    """The files whose cache ``serve`` decision must be asked, with their markers. Every one
    when a workspace or team module has cache rules; else only those carrying a marker: the
    built-in cache rules deny serving for a marker only (``no_cache_markers``), and a plan
    serves hundreds of files at every run. ``digests``: the files' content digests, when the
    caller knows them (the scanner then needs no stat)."""
    every = policy is None or not policy.only_builtin("cache")
    known = digests or {}
    out = []
    for target in targets:
        markers = scanner.found(target, known.get(target))
        if every or markers:
            out.append((target, list(markers)))
    return out


def _outcome(planned: PlannedFile) -> str | None:
    result = planned.cached or planned.carried
    return None if result is None else ("passed" if result.exit_code == 0 else "failed")


def deny_serving(
    gate: PolicyGate, planned: Plan, execution_id: str, scanner: MarkerScanner, *,
    ci: bool = False,
) -> list[DecisionRecord]:  # fmt: skip
    """Ask ``cache`` / ``serve`` for each file ``planned`` serves from the cache (see
    :func:`serve_asks`); a file it denies is made to run for real, the whole file. Returns the
    records of the decisions that were not a plain allow, kept in the gate's log (a plain
    allow is not recorded: a plan serves hundreds of files at every run). Blocking."""
    served = {f.target: f for f in planned.files if f.reason is None}
    # a file's own digest is among its key's inputs: what the plan just read, no stat again
    digests = {t: d for t, f in served.items() if (d := f.key.inputs.get(t)) is not None}
    memo_dir = gate.engine.memo_dir
    if memo_dir is not None:  # scans by digest kept beside the set's decisions
        scanner.keep_in(memo_dir / MARKERS_FILE)
    asks = serve_asks(gate.engine.current, served, scanner, digests)
    if gate.engine.warm_on_install:  # every served file: what the next set decides ahead
        gate.engine.remember_serves([
            {"target": t, "markers": list(scanner.found(t, digests.get(t))),
             "outcome": _outcome(f), "ci": ci}
            for t, f in served.items()
        ])  # fmt: skip
    scanner.save()
    if not asks:
        return []
    updates = [
        {"target": target, "markers": markers, "outcome": _outcome(served[target])}
        for target, markers in asks
    ]
    base = CacheInput(execution_id=execution_id, action="serve", target=asks[0][0], ci=ci)
    # one call for the plan's files: the memo answers an unchanged file without a model each
    decisions = gate.engine.decide_many(base, updates)
    gate.engine.save_memo()
    records = []
    for update, decision in zip(updates, decisions, strict=True):
        if decision.result == "allow" and not decision.rules:
            continue
        target = str(update["target"])
        f = served[target]
        inp = base.model_copy(update=update)
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
    # detectors too, not known values only: a record's input holds node ids, whose parametrize
    # ids can be any value a test was given (tokens, URLs with passwords)
    redactor: Redactor = field(default_factory=Redactor)

    @classmethod
    def for_workspace(
        cls,
        root: Path,
        environ: Mapping[str, str] | None = None,
        *,
        isolate: bool = False,
        background: bool | None = None,
        resident: bool = False,
    ) -> PolicyGate:
        """``isolate``: compile new policy sets in a child first; ``resident``: keep that child
        ready for the next set; ``background``: write the decision log from a writer thread
        (for long-lived processes, which close the gate; ``background`` defaults to
        ``isolate``)."""
        from maestro.paths import workspace_state_dir
        from maestro.policy.engine import PolicyEngine  # regopy: only once a gate is opened

        redactor = Redactor.from_environ(os.environ if environ is None else environ)
        memo_dir = workspace_state_dir(root) / MEMO_DIR
        engine = PolicyEngine.open(root, isolate=isolate, memo_dir=memo_dir, resident=resident)
        log = DecisionLog.for_workspace(
            root, background=isolate if background is None else background
        )
        return cls(engine, log, redactor)

    def run_input(
        self,
        execution_id: str,
        paths: list[str],
        kind: RunKind,
        running: list[RunningRun] | None = None,
    ) -> RunInput:
        """The ``run`` point's input now: the run windows evaluated at this instant (a bad
        window setting leaves them out; `maestro policy check` reports it)."""
        from maestro.policy.windows import window_states

        now = datetime.now(UTC)
        policy = self.engine.current
        config = policy.sources.data.get("workspace", {}) if policy is not None else {}
        try:
            windows = window_states(config, now)
        except PolicyError:
            windows = {}
        except Exception:
            log.warning("run windows not evaluated", exc_info=True)
            windows = {}
        return RunInput(
            execution_id=execution_id, kind=kind, paths=paths,
            now_ms=int(now.timestamp() * 1000), running=running or [], windows=windows,
        )  # fmt: skip

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
        """The decision as a record: its input, rule messages and targets (made from the input,
        so they carry what it carried) and the paths it concerns redacted, in one scan."""
        payload = inp.model_dump(mode="json")
        strings: list[str] = []
        _strings(payload, strings)
        n_input = len(strings)
        paths = sorted(set(targets))
        strings += paths
        for rule in decision.rules:
            strings.append(rule.message)
            if rule.target is not None:
                strings.append(rule.target)
        redacted = redact_strings(strings, self.redactor)
        it = iter(redacted)
        if redacted is not strings:
            payload = _rebuild(payload, it)
        else:
            it = iter(strings[n_input:])
        paths = sorted({next(it) for _ in paths})
        rules = []
        for rule in decision.rules:
            update: dict[str, Any] = {"message": next(it)}
            if rule.target is not None:
                update["target"] = next(it)
            rules.append(rule.model_copy(update=update))
        return DecisionRecord(
            id=uuid.uuid4().hex,
            time=datetime.now(UTC).isoformat(timespec="milliseconds"),
            point=inp.point,
            execution_id=inp.execution_id,
            schema_=inp.schema_name(),
            input=payload,
            result=decision.result,
            rules=rules,
            retry_after_ms=decision.retry_after_ms,
            targets=paths,
            policy=decision.policy,
            error=decision.error,
        )

    def decisions(
        self, *, execution_id: str | None = None, test: str | None = None, limit: int = 100
    ) -> list[DecisionRecord]:
        """The decisions about a run (execution id) or a test (file or node id), newest first.
        This is what `maestro explain` and the editor show."""
        if self.log is None:
            return []
        return self.log.query(execution_id=execution_id, test=test, limit=limit)

    def close(self) -> None:
        self.engine.close()
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


def run_denied(decision: Decision, record: DecisionRecord, execution_id: str) -> PolicyDeniedError:
    """The error a denied run answers, alike with or without the daemon: the decision as its
    message, the rules' remediations and the explain command as its hint."""
    rules = decision.fired("deny")
    remedies = [r.remediation for r in rules if r.remediation]
    return PolicyDeniedError(
        record.summary,
        retry_after_ms=decision.retry_after_ms,
        execution_id=execution_id,
        hint="; ".join([*remedies, f"maestro explain --execution {execution_id}"]),
    )
