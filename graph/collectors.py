"""Test files a conftest's own collector takes: what pytest runs beyond its naming rules.

A conftest.py that defines ``pytest_collect_file`` (or binds the name: sybil's set-up) may turn
any file below it into tests (YAML specs, golden-output samples, reST examples); so may an
installed plugin (pytest-checkdocs makes ``pyproject.toml`` a test). Which files they take can
only be known by asking that hook, so the engine asks it (engine/collect_probe.py) and the
answer is kept in the workspace's state directory under a key: the collecting conftests' and
plugins' contents, pytest's configuration and the list of candidate files. Adding or removing a
file asks again; editing a data file does not (its content is an input of its tests, recorded
as any other).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

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

    @property
    def askers(self) -> str:
        """Who is asked, for messages."""
        return ", ".join((*self.conftests, *(os.path.basename(p) for p in self.plugins)))


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
    found = []
    for rel in sorted(py):
        if rel == "conftest.py" or rel.endswith("/conftest.py"):
            try:
                data = (root / rel).read_bytes()
            except OSError:
                continue
            if defines_hook(data):
                found.append(rel)
    return found


def collect_request(
    root: Path,
    config: PytestConfig,
    all_files: Iterable[str],
    py: Iterable[str],
    plugins: Sequence[str] = (),
) -> CollectRequest | None:
    """None when no conftest, nor any of the installed ``plugins``, defines
    ``pytest_collect_file`` (nothing to ask)."""
    conftests = collecting_conftests(root, py)
    if not conftests and not plugins:
        return None
    static = dataclasses.replace(config, collected_files=(), collected_files_key="")
    is_test = static.matcher()
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
    digest = hashlib.sha256(b"collectors-3\0" + repr(static).encode())
    for rel in conftests:
        try:
            digest.update(rel.encode() + b"\0" + (root / rel).read_bytes() + b"\0")
        except OSError:
            digest.update(rel.encode() + b"\0-\0")
    for path in plugins:
        try:
            with open(path, "rb") as f:
                digest.update(path.encode() + b"\0" + f.read() + b"\0")
        except OSError:
            digest.update(path.encode() + b"\0-\0")
    digest.update("\0".join(candidates).encode("utf-8", "surrogateescape"))
    return CollectRequest(digest.hexdigest(), tuple(conftests), candidates, tuple(plugins))


def load_memo(state_dir: Path, key: str) -> tuple[str, ...] | None:
    """The files collected under ``key``, as last asked; None when never asked."""
    try:
        data = json.loads((state_dir / MEMO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    files = data.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return tuple(sorted(files))


def save_memo(state_dir: Path, key: str, files: Iterable[str]) -> None:
    path = state_dir / MEMO_FILE
    tmp = path.with_name(f"{MEMO_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"key": key, "files": sorted(files)}), encoding="utf-8")
    os.replace(tmp, path)
