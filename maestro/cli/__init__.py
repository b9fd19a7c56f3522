"""The `maestro` command line."""

from maestro.cli.app import main

__all__ = ["main"]
