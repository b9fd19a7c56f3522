"""Test files a conftest's own collector takes: what pytest runs beyond its naming rules.

A conftest.py that defines ``pytest_collect_file`` (or binds the name: sybil's set-up) may turn
any file below it into tests (YAML specs, golden-output samples, reST examples); so may an
installed plugin (pytest-checkdocs makes ``pyproject.toml`` a test). Which files they take can
only be known by asking that hook, so the engine asks it (engine/collect_probe.py) and the
answer is kept in the workspace's state directory under a key: the collecting conftests' and
plugins' contents, pytest's configuration and the list of candidate files. Adding or removing a
file asks again; editing a data file does not (its content is an input of its tests, recorded
as any other).

A conftest may also leave files out of pytest's walk: ``collect_ignore`` and
``collect_ignore_glob`` (lists its code builds, often by version or by what is installed) or its
own ``pytest_ignore_collect``. Those are asked in the same process, of the test files below
such a conftest: the answer is the topmost path (file or folder) the walk skips for each.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from maestro.envvars import STEERING
from maestro.graph.env_refs import read_names
from maestro.graph.pytest_config import PytestConfig

MEMO_FILE = "collectors.json"
# a function defined under the hook's name, the name bound to a collector a factory made
# (sybil's ``pytest_collect_file = Sybil(...).pytest()``), or the name imported
_HOOK = re.compile(
    rb"^[ \t]*(?:(?:async[ \t]+)?def[ \t]+pytest_collect_file\b"
    rb"|pytest_collect_file[ \t]*(?::[^=\n]*)?=(?!=)"
    rb"|(?:from[ \t]+\S+[ \t]+)?import(?:[ \t][^\n#]*|[ \t]*\([^)]*)\bpytest_collect_file\b)",
    re.MULTILINE,
)


@dataclass(frozen=True, slots=True)
class CollectRequest:
    """The question to ask the conftests (and installed plugins) defining the hook: which of
    ``candidates`` do they collect?"""

    key: str
    conftests: tuple[str, ...]
    candidates: tuple[str, ...]
    plugins: tuple[str, ...] = ()  # installed plugins' source files
    # the conftests that may leave paths out of the walk (collect_ignore ...), and the test
    # files and conftests below them: which does the walk skip?
    ignoring: tuple[str, ...] = ()
    ignorable: tuple[str, ...] = ()
    # the environment variables those conftests read by name (``if os.environ.get("E2E")``):
    # their values are part of the answer
    variables: tuple[str, ...] = ()

    @property
    def askers(self) -> str:
        """Who is asked, for messages."""
        names = dict.fromkeys((*self.conftests, *self.ignoring))
        return ", ".join((*names, *(os.path.basename(p) for p in self.plugins)))


@dataclass(frozen=True, slots=True)
class CollectAnswer:
    """The files the conftests' collectors take, and the paths their walk skips."""

    files: tuple[str, ...]
    ignored: tuple[str, ...] = ()
    # the asking interpreter's site-packages folders and their mtimes, when a conftest may
    # ignore files: its lists often follow what is installed (``try: import django``), so an
    # install or removal there asks again
    environment: tuple[tuple[str, int], ...] = ()
    # the values the variables the ignoring conftests read had (None: unset)
    variables: tuple[tuple[str, str | None], ...] = ()

    def holds(self, environ: Mapping[str, str]) -> bool:
        """Whether the environment the answer was given in is unchanged: the installed
        packages, and the variables the conftests read (``environ``'s)."""
        if not same_variables(self.variables, environ):
            return False
        for folder, mtime in self.environment:
            try:
                if os.stat(folder).st_mtime_ns != mtime:
                    return False
            except OSError:
                return False
        return True


def same_variables(variables: Iterable[tuple[str, str | None]], environ: Mapping[str, str]) -> bool:
    """Whether each variable has the value it had (``environ``'s now)."""
    return all(environ.get(name) == value for name, value in variables)


# a conftest that may leave paths out of the walk: any mention costs one probe, never a test
_IGNORES = re.compile(rb"\b(?:collect_ignore(?:_glob)?|pytest_ignore_collect)\b")


def defines_hook(data: bytes) -> bool:
    return b"pytest_collect_file" in data and _HOOK.search(data) is not None


def collecting_plugins(files: Iterable[str]) -> list[str]:
    """Of installed pytest plugins' source files, those defining ``pytest_collect_file``
    (pytest-checkdocs makes ``pyproject.toml`` a test): a text check."""
    found = []
    for path in files:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        if defines_hook(data):
            found.append(path)
    return found


def collecting_conftests(root: Path, py: Iterable[str]) -> list[str]:
    """The conftest.py files (of ``py``) that define ``pytest_collect_file``: a text check."""
    return _conftests(root, py)[0]


def _conftests(root: Path, py: Iterable[str]) -> tuple[list[str], list[str], dict[str, bytes]]:
    """The conftest.py files (of ``py``) that define ``pytest_collect_file``, those that may
    leave paths out of the walk (text checks), and the contents of both."""
    collecting, ignoring = [], []
    contents: dict[str, bytes] = {}
    for rel in sorted(py):
        if rel == "conftest.py" or rel.endswith("/conftest.py"):
            try:
                data = (root / rel).read_bytes()
            except OSError:
                continue
            if defines_hook(data):
                collecting.append(rel)
                contents[rel] = data
            if _IGNORES.search(data):
                ignoring.append(rel)
                contents[rel] = data
    return collecting, ignoring, contents


def collect_request(
    root: Path,
    config: PytestConfig,
    all_files: Iterable[str],
    py: Iterable[str],
    plugins: Sequence[str] = (),
) -> CollectRequest | None:
    """None when no conftest, nor any of the installed ``plugins``, defines
    ``pytest_collect_file``, and no conftest may leave files out of the walk (nothing to ask)."""
    conftests, ignoring, contents = _conftests(root, py)
    if not conftests and not plugins and not ignoring:
        return None
    # as a run passes them (graph/env_refs.py): the steering ones never reach pytest
    read = {n for c in ignoring for n in read_names(contents[c]) if not n.startswith(STEERING)}
    variables = tuple(sorted(read))
    static = dataclasses.replace(
        config, collected_files=(), collected_files_key="", ignored_files=()
    )
    is_test = static.matcher()
    below = tuple(c.removesuffix("conftest.py") for c in ignoring)
    # the test files, and the conftests of folders a walk may run by their conftest alone
    ignorable = tuple(
        sorted(
            rel
            for rel in all_files
            if rel.startswith(below) and (is_test(rel) or rel.endswith("/conftest.py"))
        )
    )
    if not conftests and not plugins:
        return CollectRequest(
            _key(static, contents, plugins, (), ignorable), (), (), (),
            tuple(ignoring), ignorable, variables,
        )  # fmt: skip
    # where pytest walks at all (testpaths, norecursedirs): any file name would do there
    walked = dataclasses.replace(
        static, python_files=("*",), doctest_globs=("*",), doctest_modules=True
    ).matcher()
    # a plugin collects anywhere; a conftest in its own folder and below
    prefixes = ("",) if plugins else tuple(c.removesuffix("conftest.py") for c in conftests)
    candidates = tuple(
        sorted(
            rel
            for rel in all_files
            if rel.startswith(prefixes)
            and walked(rel)
            # a text file of doctests may be a conftest's test too (its own items beside them)
            and not (rel.endswith(".py") and is_test(rel))
        )
    )
    key = _key(static, contents, plugins, candidates, ignorable)
    return CollectRequest(
        key, tuple(conftests), candidates, tuple(plugins), tuple(ignoring), ignorable, variables
    )


def _key(
    static: PytestConfig,
    conftests: dict[str, bytes],
    plugins: Sequence[str],
    candidates: tuple[str, ...],
    ignorable: tuple[str, ...],
) -> str:
    """The question's key: pytest's configuration, the asked conftests' and plugins' contents,
    and the files asked about."""
    digest = hashlib.sha256(b"collectors-4\0" + repr(static).encode())
    for rel, data in conftests.items():
        digest.update(rel.encode() + b"\0" + data + b"\0")
    for path in plugins:
        try:
            with open(path, "rb") as f:
                digest.update(path.encode() + b"\0" + f.read() + b"\0")
        except OSError:
            digest.update(path.encode() + b"\0-\0")
    digest.update("\0".join(candidates).encode("utf-8", "surrogateescape"))
    digest.update(b"\0\0" + "\0".join(ignorable).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def load_memo(
    state_dir: Path, key: str, environ: Mapping[str, str] | None = None
) -> CollectAnswer | None:
    """The answer under ``key``, as last asked, if it still holds in ``environ`` (default:
    this process's); None when never asked."""
    try:
        data = json.loads((state_dir / MEMO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    lists = [data.get("files"), data.get("ignored", [])]
    if not all(isinstance(v, list) and all(isinstance(f, str) for f in v) for v in lists):
        return None
    files, ignored = (tuple(sorted(str(f) for f in v)) for v in lists)
    stamps = data.get("environment", [])
    if not isinstance(stamps, list):
        return None
    values = data.get("variables", [])
    try:
        environment = tuple((str(folder), int(mtime)) for folder, mtime in stamps)
        variables = tuple((str(n), None if v is None else str(v)) for n, v in values)
    except (TypeError, ValueError):
        return None
    answer = CollectAnswer(files, ignored, environment, variables)
    return answer if answer.holds(os.environ if environ is None else environ) else None


def save_memo(state_dir: Path, key: str, answer: CollectAnswer) -> None:
    path = state_dir / MEMO_FILE
    tmp = path.with_name(f"{MEMO_FILE}.{os.getpid()}.tmp")
    data = {
        "key": key, "files": sorted(answer.files), "ignored": sorted(answer.ignored),
        "environment": [list(stamp) for stamp in answer.environment],
        "variables": [list(value) for value in answer.variables],
    }  # fmt: skip
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)
