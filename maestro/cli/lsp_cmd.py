"""`maestro lsp`: the language server on stdio (editors launch it; see docs/lsp.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def lsp(
    stdio: Annotated[
        bool,
        typer.Option(
            "--stdio",
            help="Speak LSP on stdin/stdout (the default; for clients that always pass it).",
        ),
    ] = True,
    log_file: Annotated[
        Path | None, typer.Option("--log-file", help="Write the server log here, not to stderr.")
    ] = None,
) -> None:
    """Run the Maestro language server over stdio (editors start it; it talks to the daemon)."""
    from maestro.server.main import main

    main(str(log_file) if log_file else None)
