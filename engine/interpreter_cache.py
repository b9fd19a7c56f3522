"""Remember the workspace interpreter's answers across CLI invocations.

Querying the interpreter costs a process start (~0.2 s), as much as the rest of a no-change
`maestro test`. The answer is kept in the workspace state dir and reused while the interpreter
binary and its site-packages directories keep their mtimes: installing or upgrading anything
(pytest included) touches site-packages, recreating the venv touches the binary.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from maestro.cache.keys import site_dirs
from maestro.engine.interpreter import (
    Describe,
    Interpreter,
    find_interpreter_path,
    resolve_interpreter,
)
from maestro.paths import workspace_state_dir

log = logging.getLogger(__name__)

FILE = "interpreter.json"


def _stamp(path: Path, prefix: Path, version: tuple[int, int, int], is_venv: bool) -> list[Any]:
    stamp: list[Any] = [str(path.resolve()), path.stat().st_mtime_ns]
    for d in site_dirs(prefix, version, is_venv=is_venv):
        stamp += [str(d), d.stat().st_mtime_ns]
    return stamp


def workspace_interpreter(
    root: Path,
    *,
    configured: str | Path | None = None,
    describe: Describe | None = None,
    environ: Mapping[str, str] | None = None,
) -> Interpreter:
    """resolve_interpreter(), served from the state dir while nothing changed. ``environ``: where
    ``VIRTUAL_ENV`` and ``PATH`` come from (default: this process's environment)."""
    path, source = find_interpreter_path(root, configured=configured, environ=environ)
    state = workspace_state_dir(root) / FILE
    try:
        saved = json.loads(state.read_text())
        if saved["path"] == str(path):
            found = Interpreter(
                path=path,
                version=tuple(saved["version"]),
                implementation=saved["implementation"],
                platform=saved["platform"],
                pytest_version=saved["pytest_version"],
                prefix=Path(saved["prefix"]),
                is_venv=saved["is_venv"],
                source=source,
            )
            if saved["stamp"] == _stamp(path, found.prefix, found.version, found.is_venv):
                found.require_pytest()
                return found
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found = resolve_interpreter(root, configured=configured, describe=describe, environ=environ)
    try:
        data = {
            "path": str(path),
            "version": list(found.version),
            "implementation": found.implementation,
            "platform": found.platform,
            "pytest_version": found.pytest_version,
            "prefix": str(found.prefix),
            "is_venv": found.is_venv,
            "stamp": _stamp(path, found.prefix, found.version, found.is_venv),
        }
        tmp = state.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, state)
    except OSError:
        log.debug("could not remember the interpreter", exc_info=True)
    return found
