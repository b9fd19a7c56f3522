"""The CLI's consoles and error printing: rich only, so the fast path can share them.

Everything the terminal sees goes through these two consoles, whichever entry point (the full
typer CLI or maestro/cli/fast.py) runs the command: output does not depend on the route.
"""

from __future__ import annotations

from rich.console import Console

from maestro.errors import MaestroError


class _Console(Console):
    """A Console that never hard-wraps when its output is not a terminal: in CI logs and pipes a
    node id or a path stays on one line, whole, for grep and copy-paste. Decided per print, since
    the stream it writes to may be swapped (a test runner's capture)."""

    @property
    def soft_wrap(self) -> bool:
        return not self.is_terminal

    @soft_wrap.setter
    def soft_wrap(self, value: bool) -> None:
        """Console.__init__ sets it; the terminal decides instead."""


console = _Console(highlight=False)
err_console = _Console(stderr=True, highlight=False)


def report_error(exc: MaestroError) -> None:
    where = f"{exc.where}: " if exc.where else ""
    err_console.print(f"[bold red]error:[/] {where}{exc.message}")
    if exc.hint:
        err_console.print(f"  [bold]hint:[/] {exc.hint}")
