"""The typer command `maestro explain`: its options, and the policy decisions of a run
(--execution). What it says of a test is maestro/cli/explain_cmd.py's, which the lean entry
point (maestro/cli/fast.py) prints too, without typer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from maestro.cli import common
from maestro.cli.common import JSON_OPTION, ROOT_OPTION, console, report_error, resolve_root
from maestro.cli.explain_cmd import Refused, _decisions, _policy_row, explain_test
from maestro.cli.test_cmd import PYTEST_ARGS
from maestro.cli.test_cmd import TestCommand as TestCommand  # splits at `--` (cli/app.py)
from maestro.errors import MaestroError


def explain(
    ctx: typer.Context,
    test: Annotated[str | None, typer.Argument(help="a test file or node id (path::name)")] = None,
    record: Annotated[
        bool, typer.Option("--record", help="also list the functions and files it used")
    ] = False,
    as_json: JSON_OPTION = False,
    execution: Annotated[
        str | None, typer.Option("--execution", help="a run's id: its policy decisions")
    ] = None,
    root: ROOT_OPTION = None,
) -> None:
    """Why TEST would run (which changed code it executed), or why it is served from cache;
    with the policy decisions about it (or about the run --execution ID). Give the run's pytest
    arguments after `--`, as to `maestro test` (PYTEST_ADDOPTS is read as pytest reads it)."""
    if execution is not None or test is None:
        _explain_execution(execution, as_json, root)
        return
    try:
        workspace = resolve_root(root)
    except MaestroError as exc:
        raise common.pytest_style_exit(exc) from None
    given = ctx.meta.get(PYTEST_ARGS, [])
    try:
        explain_test(workspace, test, given, record=record, as_json=as_json)
    except Refused as refused:
        raise common.pytest_style_exit(refused.error) from None


def _explain_execution(execution: str | None, as_json: bool, root: Path | None) -> None:
    if execution is None:
        report_error(MaestroError("name a TEST or --execution ID", hint="maestro explain --help"))
        raise typer.Exit(common.EXIT_USAGE)
    try:
        found = list(reversed(_decisions(resolve_root(root), execution_id=execution)))
    except MaestroError as exc:
        report_error(exc)
        raise typer.Exit(common.EXIT_INTERNAL) from None
    if as_json:
        payload = {
            "schema": "maestro.explain.execution/1",
            "execution_id": execution,
            "decisions": [_policy_row(r) for r in found],
        }
        console.print_json(json.dumps(payload))
        return
    if not found:
        console.print(f"no policy decisions recorded for execution {execution}")
    for r in found:
        console.print(escape(f"{r.time} {r.summary}"), highlight=False)
