"""`maestro test` in the typer CLI: the command line, then :func:`maestro.cli.test_run.run_test`.

Exit codes follow pytest: 0 all passed, 1 failures, 2 interrupted, 3 internal error (Maestro or
pytest could not run), 4 usage error, 5 no tests selected (but 0 for --impacted when nothing is
impacted: a docs-only change must not fail CI).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from maestro.cli.common import ROOT_OPTION
from maestro.cli.test_run import _relative as _relative
from maestro.cli.test_run import file_results as file_results
from maestro.cli.test_run import print_predictive as print_predictive
from maestro.cli.test_run import report_failure as report_failure
from maestro.cli.test_run import run_in_process as run_in_process
from maestro.cli.test_run import run_test
from maestro.cli.via_daemon import NO_DAEMON_OPTION

PYTEST_ARGS = "maestro.pytest_args"  # where `TestCommand` keeps what follows `--`


class TestCommand(TyperCommand):
    """Splits the command line at `--`: what follows goes to pytest, not to PATHS (`maestro
    test`, and `maestro explain`, which answers for a run given those arguments)."""

    __test__ = False

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if "--" in args:
            cut = args.index("--")
            ctx.meta[PYTEST_ARGS] = list(args[cut + 1 :])
            args = args[:cut]
        try:
            parsed: list[str] = super().parse_args(ctx, args)
        except Exception as exc:
            # click's NoSuchOption (typer may vendor click): most often a pytest option (`-x`,
            # `--doctest-modules`), so say where those go
            name, message = getattr(exc, "option_name", None), getattr(exc, "message", None)
            if isinstance(name, str) and isinstance(message, str):
                hint = f"pytest's own options go after `--`:\n  maestro {ctx.info_name} -- {name}"
                exc.message = f"{message}\n  {hint}"  # type: ignore[attr-defined]
            raise
        return parsed


def test(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="test files, directories or node ids (with --impacted: changed files)",
            show_default=False,
        ),
    ] = None,
    impacted: Annotated[
        bool,
        typer.Option("--impacted", help="only tests impacted by changes (default: git)"),
    ] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="REF", help="tests impacted since merge-base with REF"),
    ] = None,
    all_tests: Annotated[
        bool, typer.Option("--all", help="every test file of the project, served from cache")
    ] = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="run everything selected; still store results")
    ] = False,
    junit_xml: Annotated[
        Path | None,
        typer.Option(
            "--junit-xml", "--junitxml", metavar="PATH", help="cached + fresh results as JUnit XML"
        ),
    ] = None,
    predictive: Annotated[
        bool,
        typer.Option(
            "--predictive",
            help="run only files likely to fail (P >= threshold); list what was skipped and why",
        ),
    ] = False,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            metavar="P",
            min=0.0,
            max=1.0,
            help="predictive threshold (default: ml.predictive.threshold, 0.05)",
        ),
    ] = None,
    root: ROOT_OPTION = None,
    no_daemon: NO_DAEMON_OPTION = False,
) -> None:
    """Run tests whose inputs changed; serve the rest from the cache. `-- ARGS` go to pytest.

    From a subfolder, runs that folder's tests, as pytest does (--all: the whole project).

    \f
    Through the workspace daemon when one runs (see maestro/cli/via_daemon.py), in this process
    otherwise; the display, summary, exit code and JUnit file are the same either way: both paths
    produce a RunTestsResult and render it with the same functions."""
    from maestro.engine.runner import WarmPytest

    code = run_test(
        paths=paths or (),
        impacted=impacted,
        since=since,
        all_tests=all_tests,
        no_cache=no_cache,
        junit_xml=junit_xml,
        predictive=predictive,
        threshold=threshold,
        root=root,
        no_daemon=no_daemon,
        pytest_args=tuple(ctx.meta.get(PYTEST_ARGS, ())),
        warm=ctx.find_object(WarmPytest),
    )
    raise typer.Exit(code)
