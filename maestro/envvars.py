"""Which environment variables reach pytest: the allowlist and its matching, stdlib only.

Shared by the runner (what the child receives), the action key (what the key covers) and the
CLI's fast path (what it sends the daemon), which must not import the runner or the cache just
to filter ``os.environ``.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

# Variables a test may legitimately need from the user's environment; everything else is
# dropped so that a result depends on what the action key records. Trailing ``*`` is a prefix.
DEFAULT_ENV_ALLOWLIST: tuple[str, ...] = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TMPDIR",
    "TERM",
    # the interpreter's own settings that change what a test sees, as plain pytest gets them
    # (warnings as errors, hash order, asserts, encodings); not PYTHONPATH, which tools set for
    # their own processes (an editor, a wrapper): opt in with `env-allowlist`
    "PYTHONWARNINGS",
    "PYTHONHASHSEED",
    "PYTHONOPTIMIZE",
    "PYTHONSAFEPATH",
    "PYTHONDEVMODE",
    "PYTHONUTF8",
    "PYTHONIOENCODING",
    "PYTHONINTMAXSTRDIGITS",
)


def allowlist_with(extra: Iterable[str]) -> tuple[str, ...]:
    """The default allowlist, then the workspace's own ``env-allowlist`` names."""
    return (*DEFAULT_ENV_ALLOWLIST, *(e for e in extra if e not in DEFAULT_ENV_ALLOWLIST))


def allowlisted_env(
    patterns: Iterable[str], environ: Mapping[str, str]
) -> tuple[tuple[str, str], ...]:
    """(name, value) of every variable the runner passes to pytest, sorted by name.

    Same matching as the runner (`NAME`, or `PREFIX*`), so the key covers exactly what the child
    receives. Unset variables are simply absent: setting one later changes the key.
    """
    pats = tuple(patterns)
    return tuple(
        sorted(
            (name, value)
            for name, value in environ.items()
            if any(fnmatch.fnmatchcase(name, p) if p.endswith("*") else name == p for p in pats)
        )
    )


def env_names_file(state_dir: Path) -> Path:
    """Where a workspace keeps the variable names its code reads (graph/env_refs.py), for the
    CLI's fast path: it sends the daemon those variables without building the graph."""
    return state_dir / "env-names.json"


def read_env_names(state_dir: Path) -> list[str]:
    """The names last written there; none when missing or unreadable (a memo)."""
    try:
        names = json.loads(env_names_file(state_dir).read_bytes())
    except (OSError, ValueError):
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
