"""Which environment variables reach pytest: the allowlist and its matching, stdlib only; and
Maestro's own numeric tuning variables (``MAESTRO_DAEMON_IDLE``, ...), read one way.

Shared by the runner (what the child receives), the action key (what the key covers) and the
CLI's fast path (what it sends the daemon), which must not import the runner or the cache just
to filter ``os.environ``.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

TYPE_CHECKING = False  # no typing at run time: `maestro test` imports this before its spawn
if TYPE_CHECKING:
    from typing import TypeVar

    Number = TypeVar("Number", int, float)

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
    # set by every CI service; tools change what a test sees under it (Hypothesis' settings
    # profile: no deadline, derandomised): keyed from the start rather than learned per file
    "CI",
    # the interpreter's own settings that change what a test sees, as plain pytest gets them
    # (warnings as errors, hash order, asserts, encodings, the order a child's output comes out
    # in); not PYTHONPATH, which tools set for their own processes (an editor, a wrapper): opt in
    # with `env-allowlist`
    "PYTHONWARNINGS",
    "PYTHONHASHSEED",
    "PYTHONOPTIMIZE",
    "PYTHONSAFEPATH",
    "PYTHONDEVMODE",
    "PYTHONUTF8",
    "PYTHONIOENCODING",
    "PYTHONINTMAXSTRDIGITS",
    "PYTHONUNBUFFERED",
)


# The user's own variables, passed to pytest but keyed only for the test files whose tests (or
# collection, conftests, fixtures) read them, set or not, so that two developers, or a laptop
# and CI, share the results of the files that read none (docs/action-key.md). The plugin
# reports their reads (engine/plugin/maestro_record.py holds the same names). Named in
# the workspace's `env-allowlist`, one is keyed for every file, as the other variables are.
KEYED_WHEN_READ: tuple[str, ...] = ("HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "TERM")


def keyed_when_read(env_allowlist: Iterable[str]) -> frozenset[str]:
    """Those of `KEYED_WHEN_READ` the workspace's own ``env-allowlist`` does not name."""
    return frozenset(KEYED_WHEN_READ).difference(env_allowlist)


# Variables that steer the interpreter, pytest or Maestro's own child: passing the user's value
# would change how the run is made (PYTEST_ADDOPTS: which tests), not what a test sees. Never
# found in the workspace's code, never withheld-and-learned.
STEERING = ("PYTHON", "PYTEST_", "MAESTRO_", "VIRTUAL_ENV", "COV_CORE_", "COVERAGE_")
# The names (never the values) of the variables the environment a run is for sets but the
# allowlist does not pass: comma-separated, from the CLI to the daemon inside its allowlisted
# environment (the daemon's own environment is not the user's), and from the runner to the
# plugin, which reports the tests that read one of them.
WITHHELD_ENV = "MAESTRO_WITHHELD_ENV"


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
    return tuple(sorted((name, value) for name, value in environ.items() if passes(name, pats)))


def passes(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether the allowlist ``patterns`` (`NAME`, or `PREFIX*`) passes ``name`` to pytest."""
    return any(fnmatch.fnmatchcase(name, p) if p.endswith("*") else name == p for p in patterns)


def withheld_names(patterns: Iterable[str], environ: Mapping[str, str]) -> frozenset[str]:
    """The variables set in the environment a run is for that pytest does not get, steering
    ones aside: those ``environ`` sets that the allowlist ``patterns`` does not pass, and those
    a client named in ``WITHHELD_ENV`` (set in its environment, their values not sent). A test
    that reads one sees it unset, where plain pytest would see its value."""
    pats = tuple(patterns)
    named = environ.get(WITHHELD_ENV, "").split(",")
    passed = (n for n in environ if not passes(n, pats))
    return frozenset(
        name for name in (*passed, *named) if name.isidentifier() and not name.startswith(STEERING)
    )


def client_withheld(patterns: Iterable[str], environ: Mapping[str, str]) -> str:
    """``WITHHELD_ENV``'s value for a client sending the allowlisted part of ``environ``."""
    return ",".join(sorted(withheld_names(patterns, {**environ, WITHHELD_ENV: ""})))


def env_names_file(state_dir: Path) -> Path:
    """Where a workspace keeps the variable names its code reads (graph/env_refs.py), for the
    CLI's fast path: it sends the daemon those variables without building the graph."""
    return state_dir / "env-names.json"


def read_env_names(state_dir: Path) -> list[str]:
    """The names last written there; none when missing or unreadable (a memo)."""
    return _read_names(env_names_file(state_dir))


def _read_names(path: Path) -> list[str]:
    """A JSON list of names; none when missing or unreadable."""
    import json  # not at the top: the console script spawns pytest before json is needed

    try:
        names = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def learned_env_file(state_dir: Path) -> Path:
    """Where a workspace keeps the variables its tests were seen reading while withheld (by an
    installed package, which graph/env_refs.py does not read): passed from then on."""
    return state_dir / "env-learned.json"


def read_learned_env(state_dir: Path) -> list[str]:
    """The names learned so far, steering ones never; none when missing or unreadable."""
    names = _read_names(learned_env_file(state_dir))
    return sorted({n for n in names if not n.startswith(STEERING)})


def tuning(
    name: str,
    default: Number,
    *,
    minimum: Number | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Number:
    """The number a tuning variable of Maestro's own sets (of ``default``'s type, at least
    ``minimum``); ``default`` when unset or empty, and, with a warning, when not such a number."""
    value = environ.get(name)
    if not value:
        return default
    try:
        number = type(default)(value)
    except ValueError:
        import logging  # not at the top: the CLI's fast path imports this module

        logging.getLogger(__name__).warning("ignoring %s=%r (not a number)", name, value)
        return default
    return number if minimum is None else max(minimum, number)
