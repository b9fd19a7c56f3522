"""Quarantine of known-flaky tests: they run and are reported, their failures do not fail the run.

The ``select`` decision names what is quarantined (rules ``quarantine.listed`` for entries of
``[tool.maestro.policy] quarantine``, ``quarantine.marker`` for tests carrying a marker of
``quarantine_markers``); this module finds which tests carry such a marker (statically, per
function or class, or the whole file for ``pytestmark``) and applies a decision to a run's
result: quarantined tests are listed with the rule that quarantined them, and a run whose only
failures are quarantined exits 0.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from maestro.errors import MaestroError
from maestro.wire import QuarantinedTest, RunTestsResult

if TYPE_CHECKING:  # the policy's models: loaded only by a workspace that quarantines
    from maestro.policy.model import Decision, FiredRule

log = logging.getLogger(__name__)

FAILING = ("failed", "error")


def _mark_names(node: ast.expr) -> list[str]:
    """Marker names of ``pytest.mark.X``, ``pytest.mark.X(...)``, or a list/tuple of them."""
    if isinstance(node, ast.List | ast.Tuple):
        return [n for e in node.elts for n in _mark_names(e)]
    if isinstance(node, ast.Call):
        node = node.func
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "mark"
    ):
        return [node.attr]
    return []


def marked_tests(root: Path, target: str, wanted: Iterable[str]) -> dict[str, list[str]]:
    """Tests of ``target`` (``file::name``, ``file::Class::name``, or ``file`` for a module-level
    ``pytestmark``) that carry one of ``wanted`` markers. Unparsable files give nothing."""
    want = set(wanted)
    try:
        tree = ast.parse((root / target).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return {}
    found: dict[str, list[str]] = {}

    def note(key: str, names: Iterable[str]) -> None:
        hit = sorted(set(names) & want)
        if hit:
            found[key] = hit

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for stmt in body:
            if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "pytestmark" for t in stmt.targets
            ):
                note(prefix, _mark_names(stmt.value))
            elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                key = f"{prefix}::{stmt.name}"
                note(key, [n for d in stmt.decorator_list for n in _mark_names(d)])
                if isinstance(stmt, ast.ClassDef):
                    visit(stmt.body, key)

    visit(tree.body, target)
    return found


def covers(target: str, node_id: str) -> bool:
    """Whether a quarantine target (a folder, a file, ``file::name``) covers a test's node id."""
    if node_id == target:
        return True
    if "::" in target or target.endswith(".py"):
        return node_id.startswith((target + "::", target + "["))
    return node_id.startswith(target.rstrip("/") + "/")


def apply(result: RunTestsResult, decision: Decision | None) -> RunTestsResult:
    """The result with its quarantined tests listed (each with its rule) and, when every
    failure is quarantined and nothing else went wrong, exit code 0."""
    rules: list[FiredRule] = decision.fired("quarantine") if decision is not None else []
    if not rules:
        return result
    listed: list[QuarantinedTest] = []
    failing = unquarantined = 0
    for f in result.files:
        for t in (f.result or {}).get("tests", []):
            node = str(t.get("node_id", ""))
            outcome = str(t.get("outcome", ""))
            rule = next((r for r in rules if r.target and covers(r.target, node)), None)
            if outcome in FAILING:
                failing += 1
                unquarantined += rule is None
            if rule is not None:
                listed.append(
                    QuarantinedTest(
                        node_id=node, outcome=outcome, rule=rule.rule, target=rule.target or ""
                    )
                )
    update: dict[str, object] = {"quarantined": listed}
    if (
        result.exit_code == 1
        and failing
        and not unquarantined
        and not result.not_run_files
        and result.pytest_exit_code in (None, 0, 1)
    ):
        update["exit_code"] = 0
    return result.model_copy(update=update)


def configured(root: Path) -> bool:
    """Whether the workspace quarantines anything (settings, or a rule of its own): without
    that a run outside the daemon opens no policy at all."""
    from maestro.policy.sources import WORKSPACE_DIR, workspace_config

    config = workspace_config(root)
    if config.get("quarantine") or config.get("quarantine_markers"):
        return True
    folder = root / WORKSPACE_DIR
    return folder.is_dir() and any(
        "quarantine" in p.read_text(encoding="utf-8", errors="replace")
        for p in folder.glob("*.rego")
    )


def in_process(root: Path, result: RunTestsResult) -> RunTestsResult:
    """Quarantine for a run made without the daemon (the CLI's own process, CI): the select
    decision over the run's files, recorded in the workspace's decision log, then applied."""
    try:
        if not configured(root):
            return result
    except MaestroError as exc:  # the run stands as it is; the policy's problem is logged
        log.warning("quarantine not applied: %s", exc)
        return result
    import uuid

    from maestro.policy.gate import MarkerScanner, PolicyGate
    from maestro.policy.model import SelectInput

    try:
        gate = PolicyGate.for_workspace(root, isolate=True)
    except MaestroError as exc:  # the run stands as it is; the policy's problem is logged
        log.warning("quarantine not applied: %s", exc)
        return result
    execution_id = uuid.uuid4().hex
    try:
        targets = [f.target for f in result.files]
        policy = gate.engine.current
        merged = policy.data["config"].get("merged", {}) if policy is not None else {}
        wanted = set(merged.get("quarantine_markers") or ())
        scanner = MarkerScanner(root)
        marked: dict[str, list[str]] = {}
        for target in targets if wanted else []:
            if wanted & set(scanner.markers(target)):
                marked.update(marked_tests(root, target, wanted))
        inp = SelectInput(
            execution_id=execution_id,
            selected=targets if len(targets) <= 100 else [],
            marked=marked,
        )
        decision, record = gate.decide(inp, targets=targets)
    finally:
        gate.close()
    applied = apply(result, decision)
    notes = [record.summary] if record.rules else []
    return applied.model_copy(update={"execution_id": execution_id, "policy": notes})
