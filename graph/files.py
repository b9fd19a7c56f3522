"""Walk a workspace: every file Maestro should know of, honouring .gitignore and the usual noise.

Symlinked directories are followed once (loops are detected by the real path and reported, never
followed forever); a virtual environment anywhere in the tree is skipped, as pytest does. A name
that is not valid UTF-8 is reported and left out (see maestro.names).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maestro.errors import ConfigError
from maestro.names import is_utf8, undecodable_message
from maestro.paths import own_dirs

if TYPE_CHECKING:
    from collections.abc import Callable

    import pathspec

    from maestro.graph.pytest_config import PytestConfig

# Directories never worth reading (pytest's norecursedirs defaults plus tool caches).
NOISE_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", ".venv", "venv", "__pycache__", "node_modules", ".tox", ".nox",
        ".mypy_cache", ".pytest_cache", ".ruff_cache", ".eggs", "build", "dist", "_darcs", "CVS",
        ".idea", ".vscode", ".maestro",
    }
)  # fmt: skip


COMPILED_SUFFIXES = (".so", ".pyd")

# Entries a run or a tool adds to any directory it touches: no part of what a listing says.
_LISTING_NOISE = frozenset(
    {"__pycache__", ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache"}
)


def listing_names(root: Path, rel: str) -> list[str] | None:
    """The entry names of a workspace directory that a listing input counts, sorted by their
    bytes (None when it is absent)."""
    try:
        names = os.listdir(os.path.join(root, rel))
    except OSError:
        return None
    return sorted((n for n in names if listed_name(n)), key=os.fsencode)


def listed_name(name: str) -> bool:
    """Whether an entry's name is part of what its directory's listing says."""
    return name not in _LISTING_NOISE and not name.endswith(".pyc")


def listing_digest(root: Path, rel: str) -> str | None:
    """sha256 over the sorted entry names of a workspace directory (None when it is absent).
    Names only: each file the test then reads is an input of its own."""
    names = listing_names(root, rel)
    if names is None:
        return None
    return names_digest(names)


def names_digest(names: list[str]) -> str:
    """The digest of a listing's names (sorted as `listing_names` sorts them)."""
    return hashlib.sha256(b"\0".join(map(os.fsencode, names))).hexdigest()


@dataclass(slots=True)
class WalkResult:
    files: list[str] = field(default_factory=list)  # posix paths relative to the root, sorted
    # (path, message); a path may hold lone surrogates (a name that is not UTF-8)
    diagnostics: list[tuple[str, str]] = field(default_factory=list)
    # of `files`, those .gitignore hides that pytest uses all the same (git knows no version)
    hidden: list[str] = field(default_factory=list)


def _gitignore(directory: str) -> pathspec.PathSpec[Any] | None:
    """The ignore patterns that hold from ``directory`` down: its .gitignore and, at the top
    of a repository, the repository's own `.git/info/exclude` (git reads both; the .gitignore's
    lines come last, so they win where both match, as in git)."""
    lines: list[str] = []
    for name in (os.path.join(".git", "info", "exclude"), ".gitignore"):
        try:
            with open(os.path.join(directory, name), encoding="utf-8", errors="replace") as f:
                lines += f.read().splitlines()
        except OSError:
            continue
    return _spec(lines) if lines else None


def _spec(lines: list[str], *, user: bool = False) -> pathspec.PathSpec[Any]:
    """The patterns of a .gitignore, skipping a line git cannot read either (`!` alone): git
    ignores such a line, it never fails. ``user``: the workspace's `exclude` setting, where a
    pattern that means nothing is an error to fix."""
    import pathspec  # ~70 ms to import: only when a .gitignore or an exclude exists

    try:
        return pathspec.PathSpec.from_lines("gitignore", lines)
    except ValueError:  # pathspec's GitIgnorePatternError
        pass
    readable = []
    for line in lines:
        try:
            pathspec.PathSpec.from_lines("gitignore", [line])
        except ValueError as exc:
            if user:
                raise ConfigError(
                    f"exclude pattern {line!r} is not a gitignore pattern ({exc})",
                    hint="fix or remove it in the `exclude` list of maestro.toml "
                    "(or [tool.maestro] in pyproject.toml)",
                ) from exc
            continue
        readable.append(line)
    return pathspec.PathSpec.from_lines("gitignore", readable)


def own_prefixes(root: Path) -> tuple[str, ...]:
    """Root-relative posix prefixes ("x/y/") of Maestro's own cache and state directories that
    lie inside the workspace: their files change on every run and are nobody's input."""
    real_root = os.path.realpath(root)
    found = []
    for d in own_dirs():
        rel = os.path.relpath(os.path.realpath(d), real_root)
        if rel != "." and not rel.startswith(".."):  # the root itself: a user's odd choice
            found.append(Path(rel).as_posix() + "/")
    return tuple(found)


def walk(
    root: Path, exclude: tuple[str, ...] | list[str] = (), pytest: PytestConfig | None = None
) -> WalkResult:
    """All files under `root` that are not ignored, as sorted relative posix paths. With
    `pytest` (its configuration), a file .gitignore hides is kept when pytest would collect or
    load it all the same (pytest reads no .gitignore; see `_pytest_keeps`)."""
    result = WalkResult()
    user_spec = _spec(list(exclude), user=True) if exclude else None
    own = own_prefixes(root)
    # pytest's rules, each made at the first hidden path that needs it
    keeps: Callable[[str], bool] | None = None
    holds: Callable[[str], bool] | None = None

    def pytest_uses(rel: str, is_dir: bool) -> bool:
        nonlocal keeps, holds
        if pytest is None:
            return False
        if is_dir:
            holds = holds or pytest.may_hold_tests()
            return holds(rel)
        keeps = keeps or _pytest_keeps(pytest)
        return keeps(rel)

    seen_dirs: set[str] = set()
    # (directory, its relative prefix, the gitignore specs in force with their base prefixes,
    # whether .gitignore hides the directory itself: then only what pytest keeps is taken)
    stack: list[tuple[str, str, list[tuple[str, pathspec.PathSpec[Any]]], bool]] = [
        (str(root), "", [], False)
    ]
    seen_dirs.add(os.path.realpath(root))
    while stack:
        directory, prefix, specs, hidden = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError as exc:
            result.diagnostics.append((prefix or ".", f"cannot list directory: {exc.strerror}"))
            continue
        names = {entry.name for entry in entries}
        if prefix and _is_venv(directory, names):
            continue  # a virtual environment (known from its listing: no stat per directory)
        if not hidden and (".gitignore" in names or ".git" in names):
            spec = _gitignore(directory)
            if spec is not None:
                specs = [*specs, (prefix, spec)]
        filtering = bool(specs) or user_spec is not None
        files = result.files
        for entry in entries:
            rel = prefix + entry.name
            try:
                # regular files first: the answer comes from the directory entry, no syscall
                if entry.is_file():
                    if filtering:
                        if user_spec is not None and user_spec.match_file(rel):
                            continue
                        if hidden or _ignored(rel, _file_specs(entry.name, specs)):
                            if not pytest_uses(rel, False):
                                continue
                            result.hidden.append(rel)
                    if is_utf8(entry.name):
                        files.append(rel)
                    else:
                        result.diagnostics.append(_undecodable(rel, directory=False))
                    continue
                is_dir = entry.is_dir()  # follows symlinks
            except OSError as exc:  # ELOOP on a self-referencing link
                result.diagnostics.append((rel, f"unreadable entry: {exc.strerror}"))
                continue
            if not is_dir:
                if entry.is_symlink():
                    result.diagnostics.append((rel, "broken symlink; skipped"))
                continue
            if entry.name in NOISE_DIRS or entry.name.endswith(".egg-info"):
                continue
            if own and rel + "/" in own:
                continue
            sub_hidden = hidden
            if filtering:
                if user_spec is not None and user_spec.match_file(rel + "/"):
                    continue
                if not hidden and _ignored(rel + "/", specs):
                    sub_hidden = True
                # a hidden folder is walked only where pytest's walk would look for tests
                if sub_hidden and not pytest_uses(rel, True):
                    continue
            if not is_utf8(entry.name):
                result.diagnostics.append(_undecodable(rel, directory=True))
                continue
            if entry.is_symlink():
                real = os.path.realpath(entry.path)
                if real in seen_dirs or _is_ancestor(real, seen_dirs, directory):
                    result.diagnostics.append(
                        (rel, f"symlink loop (points to {real}); not followed")
                    )
                    continue
                seen_dirs.add(real)
            stack.append((entry.path, rel + "/", specs, sub_hidden))
    result.files.sort()
    return result


def _is_venv(directory: str, names: set[str]) -> bool:
    """pytest's test for a virtual environment it does not walk: a `pyvenv.cfg`, or a conda
    environment's `conda-meta/history`."""
    if "pyvenv.cfg" in names:
        return True
    return "conda-meta" in names and os.path.isfile(
        os.path.join(directory, "conda-meta", "history")
    )


def kept_by_pytest(pytest: PytestConfig) -> Callable[[str, bool], bool]:
    """A predicate for paths .gitignore hides: ``(rel, is_dir)``: does pytest use the file
    (see `_pytest_keeps`), or may its walk find tests in the folder?"""
    keeps = _pytest_keeps(pytest)
    holds = pytest.may_hold_tests()
    return lambda rel, is_dir: holds(rel) if is_dir else keeps(rel)


def _pytest_keeps(pytest: PytestConfig) -> Callable[[str], bool]:
    """A predicate: does pytest, which reads no .gitignore, still use the file ``rel``? A test
    file it collects (a local `tests/test_scratch.py` a personal rule hides, a generated
    `_version.py` under `--doctest-modules`), or a `conftest.py` where its walk looks (it
    loads it). Which of them its ignore options and conftests' hooks drop is the run's to
    find out, as for any test file."""
    collects = pytest.matcher()
    holds = pytest.may_hold_tests()
    collected = frozenset(pytest.collected_files)
    # by its name alone, most of a hidden folder (a built site, coverage HTML) is no test
    globs = pytest.doctest_globs
    by_name = None
    if not any("/" in g for g in globs):
        by_name = re.compile("|".join([r".*\.py\Z", *map(fnmatch.translate, globs)])).match

    def keeps(rel: str) -> bool:
        directory, _, name = rel.rpartition("/")
        if by_name is not None and by_name(name) is None and rel not in collected:
            return False
        if collects(rel):
            return True
        return name == "conftest.py" and holds(directory)

    return keeps


def kept_when_gitignored(name: str) -> bool:
    """A compiled module built in place (``_speedups.cpython-312-x86_64-linux-gnu.so``): a
    .gitignore keeps build products out of the repository, yet the import system loads this
    one from the workspace, so it stays a workspace file (an import edge's end, an input by
    content). A directory .gitignore hides (``build/``) is still skipped, and so is a file the
    user's own ``exclude`` names."""
    return name.endswith(COMPILED_SUFFIXES)


def _file_specs(
    name: str, specs: list[tuple[str, pathspec.PathSpec[Any]]]
) -> list[tuple[str, pathspec.PathSpec[Any]]]:
    return [] if kept_when_gitignored(name) else specs


def _undecodable(rel: str, directory: bool) -> tuple[str, str]:
    # Such a name cannot be a node: graph keys, the index, the wire and cache keys are UTF-8.
    # (The path stays exact here; a Diagnostic shows it printably.)
    return rel, undecodable_message(directory=directory)


def is_excluded(rel: str, exclude: tuple[str, ...] | list[str]) -> bool:
    """Whether the user's exclude patterns keep `rel` (a file or a directory) out of a walk."""
    if not exclude:
        return False
    spec = _spec(list(exclude), user=True)
    parts = rel.split("/")
    ancestors = ("/".join(parts[:i]) + "/" for i in range(1, len(parts) + 1))
    return spec.match_file(rel) or any(spec.match_file(d) for d in ancestors)


def _is_ancestor(real: str, seen: set[str], directory: str) -> bool:
    here = os.path.realpath(directory)
    return here == real or here.startswith(real.rstrip("/") + "/")


def _ignored(rel: str, specs: list[tuple[str, pathspec.PathSpec[Any]]]) -> bool:
    """Whether a .gitignore in force hides `rel` (a folder's ends with "/")."""
    return any(rel.startswith(base) and spec.match_file(rel[len(base) :]) for base, spec in specs)
