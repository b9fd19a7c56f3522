"""The CLI's consoles and error printing: rich only, so the fast path can share them.

Everything the terminal sees goes through these two consoles, whichever entry point (the full
typer CLI or maestro/cli/fast.py) runs the command: output does not depend on the route.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from maestro.errors import (
    ConfigError,
    GitError,
    MaestroError,
    PytestUsageError,
    ReportWriteError,
    UnknownTargetError,
    WorkspaceError,
)


class _Console(Console):
    """A Console that never hard-wraps when its output is not a terminal: in CI logs and pipes a
    node id or a path stays on one line, whole, for grep and copy-paste. Decided per print, since
    the stream it writes to may be swapped (a test runner's capture). Never reads emoji codes:
    a failure's location "test_x.py:100:" would print as "test_x.py" and an emoji (``escape`` leaves
    ``:100:`` alone)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("emoji", False)
        super().__init__(*args, **kwargs)

    @property
    def soft_wrap(self) -> bool:
        return not self.is_terminal

    @soft_wrap.setter
    def soft_wrap(self, value: bool) -> None:
        """Console.__init__ sets it; the terminal decides instead."""


# Usage-type problems exit 2 (like a bad command line); everything else 1.
USAGE_ERRORS = (
    ConfigError, WorkspaceError, GitError, UnknownTargetError, PytestUsageError, ReportWriteError,
)  # fmt: skip
# The commands about test runs (test, explain, stale, status) exit with pytest's codes instead:
# 3 for an internal error, 4 for a usage error (1 and 2 are failed and interrupted runs there).
EXIT_INTERNAL = 3
EXIT_USAGE = 4

console = _Console(highlight=False)
err_console = _Console(stderr=True, highlight=False)


def report_error(exc: MaestroError) -> None:
    # what the error says is text, not markup: "[tool.pytest.ini_options]", "test_x[1]"
    where = escape(f"{exc.where}: ") if exc.where else ""
    err_console.print(f"[bold red]error:[/] {where}{escape(exc.message)}")
    if exc.hint:
        err_console.print(f"  [bold]hint:[/] {escape(exc.hint)}")


def exit_code_for(exc: MaestroError) -> int:
    """The exit code of a command about test runs that failed with ``exc`` (pytest's codes)."""
    return EXIT_USAGE if isinstance(exc, USAGE_ERRORS) else EXIT_INTERNAL
