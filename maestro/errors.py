"""Typed errors. Each carries a remediation hint and a stable code that maps onto wire errors."""

from __future__ import annotations


class MaestroError(Exception):
    """Base of every error Maestro reports to a user: what went wrong, where, and how to fix it."""

    code = "maestro_error"

    def __init__(self, message: str, *, hint: str | None = None, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.where = where

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ConfigError(MaestroError):
    """Malformed or invalid configuration (pyproject.toml, maestro.toml)."""

    code = "config_error"


class WorkspaceError(MaestroError):
    """The workspace cannot be read (missing root, not a directory, unreadable)."""

    code = "workspace_error"


class UnknownTargetError(MaestroError):
    """A target or file named by the user is not part of the graph."""

    code = "unknown_target"


class GitError(MaestroError):
    """A git change source failed (not a repository, unknown ref, git missing)."""

    code = "git_error"


class CacheError(MaestroError):
    """The cache cannot be opened, read or written."""

    code = "cache_error"


class IntegrityError(CacheError):
    """Stored bytes do not match their digest."""

    code = "integrity_error"


class RunnerError(MaestroError):
    """Tests could not be run (interpreter or pytest missing, plugin failed to load)."""

    code = "runner_error"
