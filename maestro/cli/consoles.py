"""The CLI's consoles and error printing: rich only, so the fast path can share them.

Everything the terminal sees goes through these two consoles, whichever entry point (the full
typer CLI or maestro/cli/fast.py) runs the command: output does not depend on the route.
"""

from __future__ import annotations

from rich.console import Console

from maestro.errors import MaestroError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def report_error(exc: MaestroError) -> None:
    where = f"{exc.where}: " if exc.where else ""
    err_console.print(f"[bold red]error:[/] {where}{exc.message}")
    if exc.hint:
        err_console.print(f"  [bold]hint:[/] {exc.hint}")
