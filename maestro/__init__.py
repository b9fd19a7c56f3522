"""Maestro: build intelligence for Python workspaces."""

__version__ = "0.1.0"
