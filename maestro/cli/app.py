"""Root typer application; sub-commands live in sibling modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from maestro.cli.cache_cmd import cache_app
from maestro.cli.coordinator_cmd import coordinator_app
from maestro.cli.daemon_cmd import daemon_app
from maestro.cli.demo_cmd import demo
from maestro.cli.explain_cmd import explain
from maestro.cli.flags_cmd import flags_app
from maestro.cli.graph_cmd import graph_app, impacted, why
from maestro.cli.lsp_cmd import lsp
from maestro.cli.model_cmd import model_app
from maestro.cli.policy_cmd import policy_app
from maestro.cli.test_cmd import TestCommand, test
from maestro.cli.workspace_cmd import stale, status

if TYPE_CHECKING:
    from maestro.engine.runner import WarmPytest

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Maestro build intelligence.")
app.command("test", cls=TestCommand)(test)
app.command("impacted")(impacted)
app.command("why")(why)
app.command("explain")(explain)
app.command("stale")(stale)
app.command("status")(status)
app.command("demo")(demo)
app.command("lsp")(lsp)
app.add_typer(graph_app, name="graph")
app.add_typer(cache_app, name="cache")
app.add_typer(daemon_app, name="daemon")
app.add_typer(coordinator_app, name="coordinator")
app.add_typer(model_app, name="model")
app.add_typer(policy_app, name="policy")
app.add_typer(flags_app, name="flags")


def _print_version(value: bool) -> None:
    if value:
        from maestro import __version__

        typer.echo(f"maestro {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="print the version"
    ),
) -> None:
    """Maestro: impacted tests with reasons, cached test runs."""


def main(warm: WarmPytest | None = None) -> None:
    """Run the command line; ``warm``: pytest's process, started early for `maestro test`
    (maestro/cli/fast.py), which the command takes from the context or kills."""
    import logging
    import sys

    from maestro.redaction import RedactingFormatter

    # warnings of the in-process paths reach stderr redacted (commands that serve set their own)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(message)s"))  # as logging's last resort prints
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    if warm is None:
        app()
        return
    with warm:
        app(obj=warm)
