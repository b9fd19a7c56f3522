"""The order pytest runs a workspace's test files in, for a full run or for named paths.

pytest takes its arguments (the paths named on its command line, else ``testpaths``, each
expanded as a glob, else the invocation directory) in the order given, an argument inside
another one dropped for it (pytest >= 9's ``normalize_collection_arguments``: the outer one
keeps its place). Inside one argument its ``Dir`` and ``Package`` collectors walk the tree
depth first, each directory's entries sorted by name, files and folders together, a
package's ``__init__.py`` first. So ``a/test_x.py`` runs before ``a-b.py`` (``"a" <
"a-b.py"``) although a plain sort of the paths puts ``a-b.py`` first (``"-" < "/"``).

Maestro names its files to pytest one by one in this order, and a file's polluters "before"
it (engine/pollution.py) are those the full run collects first.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from maestro.graph.pytest_config import PytestConfig

OrderKey = tuple[int, tuple[tuple[bool, str], ...]]


def walk_key(rel: str) -> tuple[tuple[bool, str], ...]:
    """Where pytest's walk of one folder reaches `rel` (posix, relative to that folder or the
    root): each directory's entries by name, ``__init__.py`` first."""
    return tuple((part != "__init__.py", part) for part in rel.split("/"))


def _norm(path: str) -> str:
    """A named path as a workspace-relative folder or file ("" for the root): its node-id
    part dropped."""
    path = path.partition("::")[0].strip("/")
    while path.startswith("./"):
        path = path[2:]
    return "" if path in ("", ".") else path


@dataclass(frozen=True, slots=True)
class FileOrder:
    """pytest's run order of test files given its arguments `roots` (workspace-relative; ""
    is the root), in the order given."""

    roots: tuple[str, ...] = ("",)

    def key(self, rel: str) -> OrderKey:
        """Sort key of test file `rel`: the argument that collects it, then the walk. A file
        under none of them (a polluter collected with a named file) sorts first, in walk
        order: a full run collects such a file before the ones it is run with."""
        found = -1
        best = -1
        for i, root in enumerate(self.roots):
            if root == "" or rel == root or rel.startswith(root + "/"):
                depth = root.count("/") + 1 if root else 0
                # the outermost argument holding the file collects it; of equal ones the first
                if best < 0 or depth < best:
                    found, best = i, depth
        return found, walk_key(rel)

    def sorted(self, files: Iterable[str]) -> list[str]:
        return sorted(files, key=self.key)


def full_run(config: PytestConfig, root: Path) -> FileOrder:
    """The order of plain ``pytest`` run at the workspace root: its ``testpaths``, each a glob
    whose matches are sorted (none matching at all: the root)."""
    roots: list[str] = []
    for pattern in config.testpaths:
        found = glob.glob(pattern, root_dir=root, recursive=True)
        roots.extend(_norm(p) for p in sorted(found))
    return FileOrder(tuple(roots) or ("",))


def named(paths: Sequence[str]) -> FileOrder:
    """The order of ``pytest PATHS...``: the paths (folders, files, node ids) as given."""
    return FileOrder(tuple(_norm(p) for p in paths) or ("",))


def reordered(
    run: FileOrder,
    full: FileOrder,
    files: Iterable[str],
    before: Callable[[str, Container[str]], Iterable[str]] | None = None,
) -> set[str]:
    """The `files` whose outcome this session's order may have made other than the full run's:
    one run after a file the full run runs after it (a predecessor the full run does not give
    it), or before one of its polluters (`before`: the files a full run must collect before
    it, among those given). A file that only misses some of the full run's predecessors is
    what every partial run is: the polluters it needs run with it."""
    in_run = run.sorted(set(files))
    at = {f: i for i, f in enumerate(in_run)}
    found: set[str] = set()
    latest: OrderKey | None = None
    for f in in_run:
        key = full.key(f)
        after_later = latest is not None and latest > key
        if after_later or (
            before is not None and any(at.get(p, -1) > at[f] for p in before(f, at))
        ):
            found.add(f)
        latest = key if latest is None else max(latest, key)
    return found
