"""What every sub-command shares: consoles, the --root and --json options, and error reporting."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer

from maestro.cli.consoles import console as console
from maestro.cli.consoles import err_console as err_console
from maestro.cli.consoles import report_error as report_error
from maestro.errors import ConfigError, GitError, MaestroError, UnknownTargetError, WorkspaceError

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

# Usage-type problems exit 2 (like a bad command line); everything else 1.
USAGE_ERRORS = (ConfigError, WorkspaceError, GitError, UnknownTargetError)
# The commands about test runs (test, explain, stale, status) exit with pytest's codes instead:
# 3 for an internal error, 4 for a usage error (1 and 2 are failed and interrupted runs there).
EXIT_INTERNAL = 3
EXIT_USAGE = 4


def resolve_root(root: Path | None) -> Path:
    """--root as given, else the project around the current folder (an error outside one)."""
    from maestro.cli.scope import project_root

    if root is not None:
        if not root.is_dir():
            raise WorkspaceError(f"--root {root} is not a directory", hint="pass a directory")
        return root.resolve()
    return project_root()


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
    return typer.Exit(EXIT_USAGE if isinstance(exc, USAGE_ERRORS) else EXIT_INTERNAL)
