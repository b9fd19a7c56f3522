"""Typed errors. Each carries a remediation hint and a stable code that maps onto wire errors."""

from __future__ import annotations

from maestro.names import printable

TYPE_CHECKING = False  # typing's own flag: an import of typing on the way to a test run's spawn
if TYPE_CHECKING:
    from typing import Any


class MaestroError(Exception):
    """Base of every error Maestro reports to a user: what went wrong, where, and how to fix it."""

    code = "maestro_error"

    def __init__(self, message: str, *, hint: str | None = None, where: str | None = None) -> None:
        # a message may name a file whose name is not UTF-8: shown escaped, it prints and
        # travels anywhere
        message = printable(message)
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.where = printable(where) if where is not None else None

    def wire_data(self) -> dict[str, Any]:
        """Machine-readable details for the wire error's ``data`` (none by default)."""
        return {}

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


class PytestUsageError(MaestroError):
    """pytest refused the command line of a run (a node id not found, an unknown option, a bad
    ``-k`` expression): it ran no test, as plain pytest given the same would not."""

    code = "pytest_usage"


class BrokenDependencyError(MaestroError):
    """A library Maestro imports does not import: this environment's copy of it is broken
    (often the very project being edited, installed in the venv Maestro runs from)."""

    code = "broken_dependency"


def broken_dependency(exc: BaseException) -> BrokenDependencyError | None:
    """``exc`` (an ImportError or SyntaxError) as the user's error when it comes from a module
    outside Maestro's own package; None when Maestro's own code is at fault (a bug to show)."""
    if not isinstance(exc, ImportError | SyntaxError):
        return None
    import traceback
    from pathlib import Path

    own = Path(__file__).parent  # as imported: an editable install links the files here
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"{exc.filename}:{exc.lineno}" if exc.lineno else exc.filename
        culprit = exc.filename
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        culprit = frames[-1].filename if frames else ""
        where = f"{culprit}:{frames[-1].lineno}" if frames else ""
        if isinstance(exc, ImportError) and exc.path:  # `from m import x`: m's file
            culprit = str(exc.path)
    if not culprit or culprit.startswith("<") or Path(culprit).is_relative_to(own):
        return None
    return BrokenDependencyError(
        f"a library Maestro uses does not import: {type(exc).__name__}: {exc}",
        where=where or None,
        hint="this environment's copy of it is broken (often the project you are editing, "
        "installed in the venv Maestro runs from): fix it, or install Maestro in its own "
        "environment (pipx install maestro-conductor) and run it with the project's venv "
        "activated; pytest still runs in the project's interpreter",
    )


class GitError(MaestroError):
    """A git change source failed (not a repository, unknown ref, git missing)."""

    code = "git_error"


class CacheError(MaestroError):
    """The cache cannot be opened, read or written."""

    code = "cache_error"


class IntegrityError(CacheError):
    """Stored bytes do not match their digest."""

    code = "integrity_error"


class ReportWriteError(MaestroError):
    """A report file the user asked for (``--junitxml``) could not be written."""

    code = "report_write_error"


class RunnerError(MaestroError):
    """Tests could not be run (interpreter or pytest missing, plugin failed to load)."""

    code = "runner_error"


class ProtocolError(MaestroError):
    """A peer sent bytes that are not a valid frame or envelope of the daemon protocol."""

    code = "protocol_error"


class ProtocolMismatchError(ProtocolError):
    """Client and daemon speak different protocol versions (usually: Maestro was upgraded)."""

    code = "protocol_mismatch"


class DaemonError(MaestroError):
    """The workspace daemon cannot be reached or failed to serve a request."""

    code = "daemon_error"


class DaemonNotRunningError(DaemonError):
    """No daemon listens on the workspace socket."""

    code = "daemon_not_running"


class DaemonStartError(DaemonError):
    """A daemon was spawned but never answered on its socket."""

    code = "daemon_start_failed"


class ConnectionLostError(DaemonError):
    """The connection to the daemon closed while a request was in flight."""

    code = "connection_lost"


class DaemonStoppingError(ConnectionLostError):
    """The daemon stopped (shutdown, idle, SIGTERM) with the request in flight: ask again, a
    fresh daemon answers (clients retry it like a lost connection)."""

    code = "daemon_stopping"


class RequestTimeoutError(DaemonError):
    """The daemon did not answer in time."""

    code = "timeout"


class RequestCancelledError(DaemonError):
    """The request was cancelled by the client."""

    code = "cancelled"


class UnknownMethodError(DaemonError):
    """The daemon does not serve the requested method."""

    code = "unknown_method"


class InvalidParamsError(DaemonError):
    """The request's params do not match the method's params model."""

    code = "invalid_params"


class DaemonBusyError(DaemonError):
    """Too many requests are in flight on one connection."""

    code = "busy"


class InternalError(DaemonError):
    """A handler raised an unexpected exception (details are in the daemon log)."""

    code = "internal_error"


class CoordinatorError(MaestroError):
    """The remote coordinator refused a request, is unreachable, or its data dir is unusable.

    `status` is the HTTP status the coordinator answered (None when no answer came: unreachable,
    or a local problem), so callers classify errors by it instead of by their message."""

    code = "coordinator_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        hint: str | None = None,
        where: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint, where=where)
        self.status = status


class CoordinatorUnreachableError(CoordinatorError):
    """No answer came from the coordinator's URL (refused, DNS, TLS, a proxy in between)."""

    code = "coordinator_unreachable"


class CoordinatorAuthError(CoordinatorError):
    """The coordinator rejected our credentials (unknown, revoked or expired key or token)."""

    code = "coordinator_auth"


class PolicyError(MaestroError):
    """The policy cannot be loaded or evaluated (docs/policy.md)."""

    code = "policy_error"


class PolicySyntaxError(PolicyError):
    """A Rego module does not compile; ``where`` is file:line:column."""

    code = "policy_syntax"


class PolicyEvalError(PolicyError):
    """Evaluating a decision failed; the decision point's fail mode decides."""

    code = "policy_eval"


class PolicyDeniedError(PolicyError):
    """The policy denied the request; the hint is the rule's remediation."""

    code = "policy_denied"

    def __init__(
        self,
        message: str,
        *,
        retry_after_ms: int | None = None,
        execution_id: str = "",
        hint: str | None = None,
        where: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint, where=where)
        self.retry_after_ms = retry_after_ms
        self.execution_id = execution_id

    def wire_data(self) -> dict[str, Any]:
        """``retryAfterMs`` (absent: no advice) and ``executionId`` (for explain)."""
        data: dict[str, Any] = {"executionId": self.execution_id}
        if self.retry_after_ms is not None:
            data["retryAfterMs"] = self.retry_after_ms
        return data


class PolicyBundleError(PolicyError):
    """A policy bundle is unsigned, wrongly signed, expired, older than the one held, or broken."""

    code = "policy_bundle"
