"""The first thing an in-process `maestro test` does: start its pytest process.

The run hands that process its run once planned (``WarmPytest``, maestro/engine/warm.py); the
process's own start-up and pytest's import are a large part of a small suite's first run, and
they overlap the CLI's work only from the moment the process exists. So the console script
(maestro/cli/__init__.py) calls :func:`prestart` before it imports the rest of the CLI: this
module and what it calls import little beyond ``os``, ``pathlib`` and ``subprocess`` (no typing,
dataclasses, logging or json; the daemon's address module only when a daemon might serve the
run). The decision is the full CLI's own (the workspace as it resolves it, the daemon policy,
the run's interpreter and environment); whatever stops the start (no project, a bad setting)
is left to the run, which reports it as before.
"""

from __future__ import annotations

import os
from pathlib import Path

TYPE_CHECKING = False  # typing's own flag costs an import of typing before the spawn
if TYPE_CHECKING:
    from collections.abc import Sequence

    from maestro.engine.warm import WarmPytest


def policy() -> str:
    """The daemon policy (MAESTRO_DAEMON): off, start or auto."""
    value = os.environ.get("MAESTRO_DAEMON", "auto").strip().lower()
    if value in ("0", "off", "no", "false", "never"):
        return "off"
    if value in ("1", "start", "yes", "true", "always"):
        return "start"
    return "auto"


def runs_in_process(root: Path, *, no_daemon: bool) -> bool:
    """Whether `maestro test` runs in this process: no daemon serves ``root`` and the policy is
    not ``start``. Under ``auto`` a terminal's first run does not wait for a daemon to start (a
    cold start costs about a second before the run could begin): it runs here, and
    ``start_in_background`` (maestro/cli/fast.py) leaves a daemon for the next command."""
    if no_daemon or policy() == "off":
        return True
    from maestro.daemon.address import running_socket
    from maestro.errors import MaestroError

    try:
        socket = running_socket(root)
    except MaestroError:
        return policy() != "start"
    # running_socket names where a daemon would listen even when none does.
    return not socket.exists() and policy() != "start"


def workspace(root: str | None) -> Path | None:
    """The workspace as the full CLI resolves it (maestro/cli/scope.py), or None to leave any
    problem to the full CLI, which reports it."""
    from maestro.cli.scope import project_root
    from maestro.errors import MaestroError

    if root is not None:
        given = Path(root)
        return given.resolve() if given.is_dir() else None
    try:
        return project_root()
    except MaestroError:
        return None


def prestart(argv: Sequence[str]) -> WarmPytest | None:
    """pytest's process for a `maestro test` command line (``argv`` without the program) that
    will run in process; None for any other."""
    if list(argv[:1]) != ["test"]:
        return None
    args = list(argv[1:])
    if "--" in args:
        args = args[: args.index("--")]
    if "--help" in args:
        return None
    root: str | None = None
    for i, arg in enumerate(args):
        if arg == "--root" and i + 1 < len(args):
            root = args[i + 1]
        elif arg.startswith("--root="):
            root = arg.removeprefix("--root=")
    found = workspace(root or None)
    if found is None or not runs_in_process(found, no_daemon="--no-daemon" in args):
        return None
    from maestro.engine.warm import start_warm

    return start_warm(found)


__all__ = ["policy", "prestart", "runs_in_process", "workspace"]
