"""Root typer application; sub-commands live in sibling modules."""

import typer

from maestro.cli.cache_cmd import cache_app
from maestro.cli.graph_cmd import graph_app, impacted, why

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Maestro build intelligence.")
app.add_typer(graph_app, name="graph")
app.add_typer(cache_app, name="cache")
app.command("impacted")(impacted)
app.command("why")(why)


@app.callback()
def _root() -> None:
    """Maestro: impacted tests with reasons, cached test runs."""


def main() -> None:
    app()
