"""The `maestro` command line."""


def main() -> None:
    """Console-script entry: the lean fast path (maestro/cli/fast.py), else the typer CLI.

    Nothing is imported at package import time, so `maestro test` through a warm daemon never
    loads typer or pydantic."""
    from maestro.cli.fast import main as entry

    entry()


__all__ = ["main"]
