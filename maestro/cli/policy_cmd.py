"""`maestro policy check|eval|test|status|decisions|export` (docs/policy.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from maestro.cli.common import JSON_OPTION, ROOT_OPTION, console, fail_on_error, resolve_root
from maestro.errors import ConfigError, PolicyError

if TYPE_CHECKING:
    from maestro.policy.model import DecisionRecord

policy_app = typer.Typer(no_args_is_help=True, help="Policy as code: check, evaluate, explain.")


def _print_json(value: Any) -> None:
    console.print_json(json.dumps(value))


@policy_app.command("check")
@fail_on_error
def check(root: ROOT_OPTION = None, as_json: JSON_OPTION = False) -> None:
    """Compile the built-in and workspace policy; name file:line:column of any error."""
    from maestro.policy.engine import PolicySet
    from maestro.policy.isolate import ChildCompiler
    from maestro.policy.sources import load, read_annotations

    workspace = resolve_root(root)
    sources = load(workspace)
    error: PolicyError | None = None
    policy = None
    try:
        ChildCompiler().check(sources)  # a rule that aborts rego-cpp is an error, not a crash
        policy = PolicySet.compile(sources)
    except PolicyError as exc:
        error = exc
    warnings = [
        f"{a.file}:{a.line}: rule {a.rule} has no custom.remediation"
        for m in sources.modules
        if m.layer != "builtin"
        for a in read_annotations(m)
        if not a.remediation and a.rule != m.package
    ]
    modules = [{"name": m.name, "layer": m.layer, "package": m.package} for m in sources.modules]
    if as_json:
        _print_json(
            {
                "schema": "maestro.policy.check/1",
                "ok": error is None,
                "policy": policy.digest if policy else None,
                "error": None
                if error is None
                else {"where": error.where, "message": error.message},
                "warnings": warnings,
                "modules": modules,
            }
        )
    else:
        for w in warnings:
            console.print(f"[yellow]warning[/]: {w}", highlight=False)
        if policy is not None:
            n = sum(1 for m in sources.modules if m.layer == "workspace")
            console.print(
                f"policy {policy.digest} compiles: {len(sources.modules) - n} built-in and "
                f"{n} workspace modules",
                highlight=False,
            )
    if error is not None:
        raise error


@policy_app.command("eval")
@fail_on_error
def evaluate(
    point: Annotated[str, typer.Argument(help="run, select, cache, coordinator or plugin")],
    input_json: Annotated[
        str, typer.Option("--input", "-i", help="the input as JSON, @FILE, or - for stdin")
    ] = "{}",
    record: Annotated[bool, typer.Option("--record", help="keep the decision in the log")] = False,
    root: ROOT_OPTION = None,
    as_json: JSON_OPTION = False,
) -> None:
    """Decide one input (validated against the point's schema) and say which rules fired."""
    from pydantic import ValidationError

    from maestro.policy.engine import PolicyEngine
    from maestro.policy.gate import PolicyGate
    from maestro.policy.model import INPUTS
    from maestro.policy.records import DecisionLog

    workspace = resolve_root(root)
    model = INPUTS.get(point)  # type: ignore[call-overload]
    if model is None:
        raise ConfigError(f"unknown decision point {point!r}", hint=", ".join(INPUTS))
    text = input_json
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    raw = json.loads(text or "{}")
    if point == "run":
        import time

        raw.setdefault("now_ms", int(time.time() * 1000))
    try:
        inp = model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(
            f"input does not match {model.schema_name()}: "
            f"{'.'.join(map(str, first['loc']))}: {first['msg']}",
            hint="docs/policy.md lists each point's input fields",
        ) from None
    engine = PolicyEngine.open(workspace, isolate=True)
    if engine.last_error is not None:
        raise engine.last_error
    log = DecisionLog.for_workspace(workspace) if record else None
    gate = PolicyGate(engine, log)
    try:
        decision, rec = gate.decide(inp)
    finally:
        gate.close()
    if as_json:
        _print_json(rec.model_dump(mode="json", by_alias=True))
        return
    console.print(rec.summary, highlight=False)
    for rule in decision.rules:
        console.print(f"  {rule.kind:<7} {rule.layer:<9} {rule.sentence()}", highlight=False)


@policy_app.command("test")
@fail_on_error
def test(root: ROOT_OPTION = None, as_json: JSON_OPTION = False) -> None:
    """Run the workspace's policy tests (.maestro/policy/*_test.yaml cases, *_test.rego)."""
    from maestro.policy.testing import run_tests

    results = run_tests(resolve_root(root))
    if as_json:
        _print_json(
            {
                "schema": "maestro.policy.test/1",
                "tests": [
                    {"name": r.name, "file": r.file, "passed": r.passed, "error": r.error}
                    for r in results
                ],
            }
        )
    else:
        for r in results:
            mark = "[green]PASS[/]" if r.passed else "[red]FAIL[/]"
            console.print(f"{mark} {r.name} ({r.file})" + (f": {r.error}" if r.error else ""))
        failed = sum(not r.passed for r in results)
        console.print(f"{len(results) - failed} passed, {failed} failed", highlight=False)
    if any(not r.passed for r in results):
        raise typer.Exit(1)


@policy_app.command("status")
@fail_on_error
def status(root: ROOT_OPTION = None, as_json: JSON_OPTION = False) -> None:
    """The policy in force: layers, team bundle (revision, quarantine), decision log size."""
    from maestro.paths import workspace_state_dir
    from maestro.policy.bundle import BundleStore
    from maestro.policy.engine import PolicyEngine
    from maestro.policy.records import FILE_NAME, DecisionLog

    workspace = resolve_root(root)
    engine = PolicyEngine.open(workspace, isolate=True)
    store = BundleStore(workspace_state_dir(workspace) / "policy-bundle", engine, keys={})
    bundle = store.status()
    path = workspace_state_dir(workspace) / FILE_NAME
    count = 0
    if path.is_file():
        log = DecisionLog(path)
        count = log.count()
        log.close()
    current = engine.current
    layers: dict[str, list[str]] = {}
    for m in current.sources.modules if current else []:
        layers.setdefault(m.layer, []).append(m.name)
    payload = {
        "schema": "maestro.policy.status/1",
        "policy": current.digest if current else None,
        "layers": layers,
        "shadow": sorted(current.sources.shadow) if current else [],
        "error": str(engine.last_error) if engine.last_error else None,
        "bundle": bundle,
        "decisions": count,
    }
    if as_json:
        _print_json(payload)
        return
    console.print(f"policy {payload['policy']}", highlight=False)
    for layer, names in layers.items():
        console.print(f"  {layer}: {', '.join(names)}", highlight=False)
    if payload["error"]:
        console.print(f"  [red]workspace policy not in force[/]: {payload['error']}")
    console.print(f"  team bundle: {bundle['state']}", highlight=False)
    console.print(f"  decisions kept: {count}", highlight=False)


def _show(records: list[DecisionRecord]) -> None:
    for r in records:
        console.print(f"{r.time} {r.execution_id[:12] or '-':<12} {r.summary}", highlight=False)


@policy_app.command("decisions")
@fail_on_error
def decisions(
    execution: Annotated[str | None, typer.Option("--execution", help="a run's id")] = None,
    test_id: Annotated[str | None, typer.Option("--test", help="a test file or node")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 20,
    root: ROOT_OPTION = None,
    as_json: JSON_OPTION = False,
) -> None:
    """Recent decisions (newest first), with rule ids, remediation and retry advice."""
    from maestro.policy.gate import decisions_for

    found = decisions_for(resolve_root(root), execution_id=execution, test=test_id, limit=limit)
    if as_json:
        _print_json(
            {
                "schema": "maestro.policy.decisions/1",
                "decisions": [r.model_dump(mode="json", by_alias=True) for r in found],
            }
        )
        return
    if not found:
        console.print("no decisions recorded")
    _show(found)


@policy_app.command("export")
@fail_on_error
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="file to write")],
    fmt: Annotated[str, typer.Option("--format", help="parquet or json")] = "parquet",
    root: ROOT_OPTION = None,
) -> None:
    """Write every kept decision (inputs redacted) as Parquet or JSON."""
    from maestro.paths import workspace_state_dir
    from maestro.policy.records import FILE_NAME, DecisionLog

    if fmt not in ("parquet", "json"):
        raise ConfigError(f"--format {fmt}: expected parquet or json")
    log = DecisionLog(workspace_state_dir(resolve_root(root)) / FILE_NAME)
    try:
        n = log.export(output, fmt)  # type: ignore[arg-type]
    finally:
        log.close()
    console.print(f"{n} decisions written to {output}", highlight=False)
