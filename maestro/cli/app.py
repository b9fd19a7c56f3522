"""Root typer application: every command is imported when it is invoked (or listed by --help).

A command line names one command, so building all of them first (their modules, pydantic
models and typer's signature walk: over a tenth of a second) is paid by every invocation for
nothing; the root group below maps each name to the module that owns it instead.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    # typer vendors click: its command types live there
    from typer._click.core import Command

    from maestro.engine.runner import WarmPytest

_COMMANDS: dict[str, tuple[str, ...]] = {
    # name: (module, attribute[, click class]): a command function, or a Typer for a group
    "test": ("maestro.cli.test_cmd", "test", "TestCommand"),
    "impacted": ("maestro.cli.graph_cmd", "impacted"),
    "why": ("maestro.cli.graph_cmd", "why"),
    "explain": ("maestro.cli.explain_typer", "explain", "TestCommand"),
    "stale": ("maestro.cli.workspace_cmd", "stale", "TestCommand"),
    "status": ("maestro.cli.workspace_cmd", "status"),
    "demo": ("maestro.cli.demo_cmd", "demo"),
    "lsp": ("maestro.cli.lsp_cmd", "lsp"),
    "graph": ("maestro.cli.graph_cmd", "graph_app"),
    "cache": ("maestro.cli.cache_cmd", "cache_app"),
    "daemon": ("maestro.cli.daemon_cmd", "daemon_app"),
    "coordinator": ("maestro.cli.coordinator_cmd", "coordinator_app"),
    "model": ("maestro.cli.model_cmd", "model_app"),
    "policy": ("maestro.cli.policy_cmd", "policy_app"),
    "flags": ("maestro.cli.flags_cmd", "flags_app"),
}


def load_command(name: str) -> Command:
    """The click command for ``name`` (a key of the root's commands), its module imported now."""
    module_name, attribute, *cls = _COMMANDS[name]
    module = importlib.import_module(module_name)
    target: Any = getattr(module, attribute)
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.name = name
        return group
    holder = typer.Typer(add_completion=False)
    holder.command(name, cls=getattr(module, cls[0]) if cls else None)(target)
    return typer.main.get_command(holder)


class _LazyCommands(MutableMapping[str, "Command"]):
    """Command names known up front (help order, "did you mean"), each built on first use."""

    def __init__(self, load: Callable[[str], Command]) -> None:
        self._load = load
        self._built: dict[str, Command] = {}

    def __getitem__(self, name: str) -> Command:
        if name not in _COMMANDS:
            raise KeyError(name)
        if name not in self._built:
            self._built[name] = self._load(name)
        return self._built[name]

    def __setitem__(self, name: str, command: Command) -> None:
        raise TypeError(f"the root commands are fixed in {__name__}._COMMANDS, not {name!r}")

    def __delitem__(self, name: str) -> None:
        raise TypeError(f"the root commands are fixed in {__name__}._COMMANDS, not {name!r}")

    def __iter__(self) -> Iterator[str]:
        return iter(_COMMANDS)

    def __len__(self) -> int:
        return len(_COMMANDS)


class _LazyRoot(TyperGroup):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commands = _LazyCommands(load_command)


app = typer.Typer(
    cls=_LazyRoot, no_args_is_help=True, add_completion=False, help="Maestro build intelligence."
)


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
    from maestro.cli.fast import log_to_stderr

    log_to_stderr()
    if warm is None:
        app()
        return
    with warm:
        app(obj=warm)
