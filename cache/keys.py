"""Action keys of test targets: one sha256 over everything that can change a test file's outcome.

The key is the digest of a flat, canonical *inputs map* (name -> digest or value) so that the same
map, stored with the result, lets `explain` say exactly which input changed between two runs. The
names are namespaced: workspace files by their relative path, global-input sections as
`file#section`, distributions as `dist:<module>`, and everything that is not a file as `@name` /
`env:NAME`. See docs/action-key.md for the precise definition; bump KEY_SCHEMA whenever it changes.

Pure: reads files to hash them, never starts a process.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from maestro.envvars import allowlisted_env as allowlisted_env

if TYPE_CHECKING:
    from maestro.graph.build import BuildGraph

KEY_SCHEMA = 19
"""Version of the key definition: part of every key, so a change never reuses old entries."""

ABSENT = "absent"
"""Digest of an input that does not exist (a deleted module, a recorded data file that is gone)."""

WHOLE_FILE = "whole file"

ENV = "env:"
"""The prefix of an environment variable's input."""

WORKSPACE = "@workspace"
"""A recorded input meaning "everything": a test ran a program whose reads Maestro cannot see."""

# Options that only change how pytest reports, never which tests run or how they behave.
_DISPLAY_FLAGS = frozenset(
    {
        "-q", "--quiet", "-v", "--verbose", "-l", "--showlocals", "--no-showlocals",
        "--no-header", "--no-summary", "--code-highlight=yes", "--code-highlight=no",
    }
)  # fmt: skip
_DISPLAY_PREFIXES = ("--tb=", "--color=", "--durations=", "--durations-min=", "-r", "--junitxml=",
                     "--junit-xml=", "-vv", "-qq")  # fmt: skip
_DISPLAY_WITH_VALUE = frozenset({"--tb", "--color", "--durations", "--durations-min", "-r",
                                 "--junitxml", "--junit-xml", "--code-highlight"})  # fmt: skip


@dataclass(frozen=True, slots=True)
class KeyContext:
    """What is common to every target of one run: runner, interpreter, environment, options."""

    pytest_version: str
    implementation: str
    python_version: str  # "3.11.9"
    platform: str  # sysconfig platform of the interpreter, e.g. "linux-x86_64"
    environment: str  # digest of the interpreter's installed-distribution listing
    pytest_args: tuple[str, ...] = ()  # already filtered by outcome_args()
    env: tuple[tuple[str, str], ...] = ()  # allowlisted variables (name, value), sorted
    # those of `env` keyed only for the files that read them (recorded `env:NAME` inputs)
    keyed_when_read: frozenset[str] = frozenset()
    # digest of the installed code edited in place since its install, "" when none: such an
    # edit is a change of the environment (installed code is not traced per test)
    edited: str = ""

    def entries(self) -> dict[str, str]:
        """The context's part of an inputs map. Env values are hashed: maps are stored and may be
        shared through a remote cache, values (tokens, paths) must not be readable there."""
        out = {
            "@runner": f"pytest=={self.pytest_version}",
            "@python": f"{self.implementation} {self.python_version} {self.platform}",
            "@environment": f"{self.environment} edited:{self.edited}"
            if self.edited
            else self.environment,
            "@args": _canonical(list(self.pytest_args)),
        }
        for name, value in self.env:
            if name not in self.keyed_when_read:
                out[f"env:{name}"] = _sha(f"{name}={value}".encode())
        return out

    def read_entry(self, input_name: str) -> str:
        """The value now of ``env:NAME``, an input a run recorded (its tests read the variable):
        as `entries` has it, or `ABSENT` when it is unset."""
        name = input_name.removeprefix(ENV)
        value = dict(self.env).get(name)
        return ABSENT if value is None else _sha(f"{name}={value}".encode())


@dataclass(frozen=True, slots=True)
class ActionKey:
    """A target's key and the inputs map it was computed from."""

    target: str
    hex: str
    inputs: dict[str, str]


def outcome_args(args: Sequence[str]) -> tuple[str, ...]:
    """The pytest arguments that can change outcomes (all but display options), in order."""
    kept: list[str] = []
    skip_value = False
    for arg in args:
        if skip_value:
            skip_value = False
            continue
        if arg in _DISPLAY_WITH_VALUE:
            skip_value = True
            continue
        if arg in _DISPLAY_FLAGS or arg.startswith(_DISPLAY_PREFIXES):
            continue
        kept.append(arg)
    return tuple(kept)


def site_dirs(prefix: Path, version: tuple[int, int, int], *, is_venv: bool) -> list[Path]:
    """Where an interpreter's distributions live (the venv's site-packages; for a system Python
    also the Debian dist-packages and the user site)."""
    pyver = f"python{version[0]}.{version[1]}"
    candidates = [prefix / "lib" / pyver / "site-packages"]
    if not is_venv:
        candidates += [
            prefix / "lib" / "python3" / "dist-packages",
            prefix / "local" / "lib" / pyver / "dist-packages",
            Path.home() / ".local" / "lib" / pyver / "site-packages",
        ]
    return [p for p in candidates if p.is_dir()]


def environment_digest(dirs: Iterable[Path]) -> str:
    """Digest of the installed-distribution listing: every `*.dist-info`/`*.egg-info` name (which
    carries name and version), `*.egg-link` and `*.pth` file of `dirs`.

    One directory listing each, no metadata parsing: cheap enough for every run. Installing,
    removing or upgrading anything (a pytest plugin included) changes it. Each folder is named
    by its last three parts (`lib/python3.11/site-packages`), not its absolute path: the same
    distributions in a virtualenv elsewhere (another clone, another machine of the team) are
    the same environment.
    """
    names: list[str] = []
    for d in dirs:
        label = "/".join(d.parts[-3:])
        try:
            entries = os.listdir(d)
        except OSError:
            names.append(f"{label}:missing")
            continue
        names.append(f"{label}:")
        names += sorted(
            e for e in entries if e.endswith((".dist-info", ".egg-info", ".egg-link", ".pth"))
        )
    return _sha("\n".join(names).encode())


def target_inputs(
    graph: BuildGraph,
    target: str,
    *,
    file_digest: Callable[[str], str | None] | None = None,
) -> dict[str, str]:
    """The workspace part of a target's inputs map: its static closure (imports, conftests,
    package inits, global sections) joined with the dynamic deps already recorded in the graph.

    `file_digest` lets a caller memoise or pin digests (see daemon/testing.py); default: the
    graph's (index digest for Python files, a fresh hash otherwise).
    """
    digest_of = file_digest or graph.file_digest
    inputs: dict[str, str] = {}
    for node in (target, *graph.closure(target)):
        value = input_value(graph, node, digest_of)
        if value is not None:
            inputs[node] = value
    return inputs


def input_value(graph: BuildGraph, node: str, digest_of: Callable[[str], str | None]) -> str | None:
    """The inputs-map value a graph node has now (None: a node that is not a test input). A
    variable a run recorded (``env:NAME``) is `ABSENT` here: its value is the run's
    (`KeyContext.read_entry`)."""
    if node.startswith(ENV):
        return ABSENT
    if node.startswith("dist:"):
        return graph.installed_value(node) or ABSENT
    if node.startswith("//"):
        return None  # declared targets are not test inputs
    if node == WORKSPACE:
        return workspace_digest(graph, digest_of)
    if "#" in node:
        return graph.sections.get(node, ABSENT)
    return digest_of(node) or ABSENT


def workspace_digest(graph: BuildGraph, digest_of: Callable[[str], str | None]) -> str:
    """One digest over every file of the workspace (path and content): the conservative input
    of a test whose reads cannot be recorded."""
    h = hashlib.sha256()
    for rel in sorted(graph.all_files):
        h.update(os.fsencode(rel) + b"\0" + (digest_of(rel) or ABSENT).encode() + b"\n")
    return h.hexdigest()


def action_key(
    target: str,
    context: KeyContext,
    workspace_inputs: Mapping[str, str],
    *,
    selection: Sequence[str] | None = None,
) -> ActionKey:
    """Key of running `target` (a test file) with `selection` (node ids; None = the whole file)."""
    inputs = dict(workspace_inputs)
    inputs.update(context.entries())
    # a digest, not the node ids: the inputs map is stored (action results, the last keys) and
    # a parametrize id can hold a secret
    inputs["@select"] = _sha(_canonical(sorted(selection)).encode()) if selection else WHOLE_FILE
    return ActionKey(target, key_hex(target, inputs), inputs)


def key_hex(target: str, inputs: Mapping[str, str]) -> str:
    """The key of `target` with the inputs map `inputs` (a stored result's own: the key it was
    stored under, unless it was stored for other inputs)."""
    body = _canonical({"schema": KEY_SCHEMA, "target": target, "inputs": dict(inputs)})
    return _sha(body.encode())


def lookup_pointer(lookup_hex: str) -> str:
    """Where a result is also kept for a machine that knows only its lookup key: a clean clone
    of the workspace keys a file by its static closure (no run has recorded what its tests
    read), which names less than the key the result was stored under. The entry under this
    name is served only once its own inputs are checked to hold on that machine."""
    return _sha(b"maestro lookup pointer\0" + lookup_hex.encode())


def changed_inputs(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """Names whose digest differs, appeared or vanished between two inputs maps, sorted."""
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
