"""What every sub-command shares: consoles, the --root option, and error reporting."""

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

# Usage-type problems exit 2 (like a bad command line); everything else 1.
_USAGE_ERRORS = (ConfigError, WorkspaceError, GitError, UnknownTargetError)


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
            raise typer.Exit(2 if isinstance(exc, _USAGE_ERRORS) else 1) from None

    return wrapper
