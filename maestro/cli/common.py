"""What every sub-command shares: consoles, the --root and --json options, and error reporting."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer

from maestro.cli.consoles import EXIT_INTERNAL as EXIT_INTERNAL
from maestro.cli.consoles import EXIT_USAGE as EXIT_USAGE
from maestro.cli.consoles import USAGE_ERRORS as USAGE_ERRORS
from maestro.cli.consoles import console as console
from maestro.cli.consoles import err_console as err_console
from maestro.cli.consoles import exit_code_for
from maestro.cli.consoles import report_error as report_error
from maestro.cli.scope import resolve_root as resolve_root
from maestro.errors import MaestroError

P = ParamSpec("P")
R = TypeVar("R")

ROOT_OPTION = Annotated[
    Path | None,
    typer.Option(
        "--root",
        help="workspace root (default: the nearest folder up with pyproject.toml, .git, ...)",
    ),
]

JSON_OPTION = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def fail_on_error(func: Callable[P, R]) -> Callable[P, R]:
    """Print MaestroErrors as message + hint and exit non-zero, never as a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except MaestroError as exc:
            report_error(exc)
            raise typer.Exit(2 if isinstance(exc, USAGE_ERRORS) else 1) from None

    return wrapper


def pytest_style_exit(exc: MaestroError) -> typer.Exit:
    """Print ``exc`` as message + hint; the exit a command about test runs raises for it."""
    report_error(exc)
    return typer.Exit(exit_code_for(exc))
