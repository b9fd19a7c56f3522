"""The edges of the graph and how they are made: `Links` holds them (forward and reverse), and
the functions here add them from each file's imports (through the resolver), from pytest's
conftest and package rules, from global-input sections, from declared targets and from the
dynamic inputs a run recorded."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from maestro.config import Target
from maestro.errors import ConfigError
from maestro.graph.index import FileEntry
from maestro.graph.records import DIST, TARGET, Edge
from maestro.graph.resolver import Resolver
from maestro.graph.scanner import RawImport

if TYPE_CHECKING:
    import pathspec


class Links:
    """The linked graph: `deps` (dependent -> dependency -> why), its reverse `rdeps`, the test
    files, and the files with an import that resolved nowhere."""

    __slots__ = ("deps", "rdeps", "tests", "unresolved")

    def __init__(
        self,
        deps: dict[str, dict[str, Edge]] | None = None,
        rdeps: dict[str, set[str]] | None = None,
        tests: set[str] | None = None,
        unresolved: dict[str, list[RawImport]] | None = None,
    ) -> None:
        self.deps = deps if deps is not None else {}
        self.rdeps = rdeps if rdeps is not None else {}
        self.tests = tests if tests is not None else set()
        self.unresolved = unresolved if unresolved is not None else {}

    def add(self, source: str, target: str, edge: Edge) -> None:
        """Add an edge unless the pair is linked already (the first reason found is kept)."""
        out = self.deps.setdefault(source, {})
        if target not in out and source != target:
            out[target] = edge
            self.rdeps.setdefault(target, set()).add(source)

    def drop(self, source: str) -> None:
        """Remove every edge out of `source`."""
        for target in self.deps.pop(source, {}):
            users = self.rdeps.get(target)
            if users is not None:
                users.discard(source)

    def copy(self) -> Links:
        """An independent copy: no container is shared (edges are immutable tuples)."""
        return Links(
            {src: dict(out) for src, out in self.deps.items()},
            {dst: set(users) for dst, users in self.rdeps.items()},
            set(self.tests),
            {rel: list(imports) for rel, imports in self.unresolved.items()},
        )


def link_file(links: Links, resolver: Resolver, rel: str, entry: FileEntry) -> None:
    """The edges of one file's imports; remembers the imports that resolved to nothing."""
    link_imports(links, resolver, rel, entry.imports)


def link_imports(links: Links, resolver: Resolver, rel: str, imports: list[RawImport]) -> None:
    add = links.add
    unresolved = [imp for imp in imports if not resolver.resolve(rel, imp, add)]
    if unresolved:
        links.unresolved[rel] = unresolved
    else:
        links.unresolved.pop(rel, None)


def link_tests(
    links: Links,
    resolver: Resolver,
    py: Mapping[str, FileEntry],
    is_test: Callable[[str], bool],
    all_files: Iterable[str] = (),
    text_imports: Callable[[str], list[RawImport] | None] | None = None,
    walked: Callable[[str], bool] | None = None,
) -> None:
    """Find the test files (pytest's discovery: Python modules, and text files its doctest
    plugin collects) and link each to its conftests and packages; a text file also to what its
    examples import (`text_imports`: None for a file pytest collects no test from)."""
    links.tests = {rel for rel in py if is_test(rel)}
    if walked is not None:
        links.tests |= walk_conftests(py, links.tests, walked)
    for rel in all_files:
        if not rel.endswith(".py") and is_test(rel):
            imports = text_imports(rel) if text_imports is not None else []
            if imports is not None:
                links.tests.add(rel)
                link_imports(links, resolver, rel, imports)
    for rel in links.tests:
        link_test(links, resolver, rel, py)


def walk_conftests(
    py: Mapping[str, FileEntry], tests: set[str], walked: Callable[[str], bool]
) -> set[str]:
    """The conftest.py files of the folders pytest's walk enters that hold no test file (`walked`:
    does the walk enter this folder), the topmost of each such subtree: the walk imports them
    (a broken one is an error of the folder, a module-level skip skips it), and Maestro, naming
    test files to pytest, runs each such folder as a target of its own."""
    tested: set[str] = set()  # the folders holding a test file, at any depth
    for rel in tests:
        directory = rel.rpartition("/")[0]
        while directory and directory not in tested:
            tested.add(directory)
            directory = directory.rpartition("/")[0]
    found: set[str] = set()
    for rel in py:
        if not rel.endswith("/conftest.py") or rel in tests:
            continue
        folder = rel.removesuffix("/conftest.py")
        if folder in tested or not walked(folder):
            continue
        above = folder.rpartition("/")[0]
        while above and not (f"{above}/conftest.py" in py and walked(above)):
            above = above.rpartition("/")[0]
        if not above or above in tested:
            found.add(rel)  # else the walk of a folder above imports it
    return found


def link_test(links: Links, resolver: Resolver, rel: str, py: Mapping[str, FileEntry]) -> None:
    """What pytest runs before a test module: its conftests and its packages' __init__ files;
    for a conftest.py (a folder without test files, or one pytest collects itself) also every
    conftest below it (the walk of its folder imports them)."""
    # every conftest.py from the test's directory up to the rootdir
    directory = rel.rsplit("/", 1)[0] if "/" in rel else ""
    if rel.endswith("/conftest.py"):
        prefix = directory + "/"
        for other in py:
            if other.startswith(prefix) and other.endswith("/conftest.py") and other != rel:
                links.add(rel, other, Edge("conftest"))
    while True:
        conftest = f"{directory}/conftest.py" if directory else "conftest.py"
        if conftest in py and conftest != rel:
            links.add(rel, conftest, Edge("conftest"))
        if not directory:
            break
        directory = directory.rsplit("/", 1)[0] if "/" in directory else ""
    # importing a test module inside packages runs their __init__ files
    base = resolver.basedir(rel)
    directory = rel.rsplit("/", 1)[0] if "/" in rel else ""
    while directory and directory + "/" != base and directory.startswith(base.rstrip("/")):
        init = f"{directory}/__init__.py"
        if init in py:
            links.add(rel, init, Edge("init", 0, directory.replace("/", ".")))
        directory = directory.rsplit("/", 1)[0] if "/" in directory else ""


def link_globals(links: Links, tests: Iterable[str], sections: Iterable[str]) -> None:
    """Every test reads every global-input section."""
    sections = list(sections)
    for test in tests:
        for section in sections:
            links.add(test, section, Edge("global", 0, section))


def link_declared(
    links: Links, targets: Mapping[str, Target], all_files: set[str], config_file: str
) -> None:
    """Declared targets: their source and input globs, their deps, their own config table."""
    for name, spec in targets.items():
        node = TARGET + name
        links.deps.setdefault(node, {})
        for pattern in [*spec.srcs, *spec.inputs]:
            for rel in glob(pattern).match_files(all_files):
                links.add(node, rel, Edge("src", 0, pattern))
        for dep in spec.deps:
            links.add(node, TARGET + dep, Edge("dep", 0, dep))
        links.add(node, f"{config_file}#targets.{name}", Edge("global", 0, name))


def link_recorded(
    links: Links, dynamic: Mapping[str, list[str]], py: Mapping[str, FileEntry]
) -> None:
    """What earlier runs recorded: for a test file, what it read while running; for a module,
    what its import read; for an import name the graph could not resolve, the files a run found
    it loaded from."""
    for test, inputs in dynamic.items():
        if test in links.tests or test in py or test.startswith(DIST):
            for rel in inputs:
                links.add(test, rel, Edge("recorded"))


def replace_recorded(links: Links, test: str, recorded: list[str]) -> None:
    """The latest run replaces what earlier runs recorded: a file no longer read is no dep."""
    out = links.deps.get(test, {})
    for rel in [r for r, e in out.items() if e.kind == "recorded" and r not in recorded]:
        del out[rel]
        links.rdeps.get(rel, set()).discard(test)
    for rel in recorded:
        links.add(test, rel, Edge("recorded"))


def check_target_cycles(targets: Mapping[str, Target], source: str | None) -> None:
    """Declared targets must form a DAG; a cycle is a config error naming it."""
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in targets[name].deps:
            if state.get(dep) == 1:
                cycle = " -> ".join([*path[path.index(dep) :], dep])
                raise ConfigError(
                    f"declared targets form a cycle: {cycle}",
                    where=source,
                    hint="remove one of the deps so the targets form a DAG",
                )
            if dep not in state:
                visit(dep, [*path, dep])
        state[name] = 2

    for name in targets:
        if name not in state:
            visit(name, [name])


def glob(pattern: str) -> pathspec.PathSpec[Any]:
    """A target glob, anchored at the workspace root (`docs/*.md` is not `x/docs/*.md`)."""
    import pathspec

    return pathspec.PathSpec.from_lines("gitignore", ["/" + pattern])
