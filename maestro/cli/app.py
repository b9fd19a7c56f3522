"""Root typer application; sub-commands live in sibling modules."""

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Maestro build intelligence.")


@app.callback()
def _root() -> None:
    """Maestro: impacted tests with reasons, cached test runs."""


def main() -> None:
    app()
