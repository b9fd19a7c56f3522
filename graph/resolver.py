"""Module name -> workspace file, the way the import system finds files (see docs/graph.md,
"Resolution"): the source roots, each file's basedir, packages and namespace packages, and the
reverse question for a deleted file (which imports would have reached it)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from maestro.config import Settings
from maestro.graph import environment
from maestro.graph.index import FileEntry
from maestro.graph.pytest_config import PytestConfig
from maestro.graph.records import DIST, Edge, EdgeKind
from maestro.graph.scanner import RawImport

AddEdge = Callable[[str, str, Edge], None]

# a compiled module built in place: `name.so`, `name.cpython-311-x86_64-linux-gnu.so`,
# `name.abi3.so`, `name.cp311-win_amd64.pyd`
_COMPILED = re.compile(r"([A-Za-z_]\w*)(?:\.[\w-]+)?\.(?:so|pyd)")


def source_roots(root: Path, config: Settings, pytest: PytestConfig) -> list[str]:
    """Where absolute imports are looked for after the importer's basedir, as path prefixes
    ("" for the workspace root, "src/" ...)."""
    roots = list(config.roots) if config.roots is not None else ["."]
    if config.roots is None and (root / "src").is_dir():
        roots.insert(0, "src")
    roots += [p for p in pytest.pythonpath if p not in roots]
    return ["" if r in (".", "") else r.strip("/") + "/" for r in roots]


def module_of(rel: str) -> str:
    """The dotted module a workspace file is imported as (from its root)."""
    return rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


class Resolver:
    """Resolves one file's imports against a fixed set of files. Lookups are memoized per
    directory and top-level name: they depend only on the file set, which a new build replaces
    along with its resolver."""

    __slots__ = ("_basedir_cache", "_compiled", "_top_cache", "all_files", "dirs", "roots")

    def __init__(self, all_files: set[str], dirs: set[str], roots: list[str]) -> None:
        self.all_files = all_files
        self.dirs = dirs
        self.roots = roots
        self._basedir_cache: dict[str, str] = {}
        self._top_cache: dict[tuple[str, str], str | None] = {}
        self._compiled: dict[str, list[str]] | None = None

    def compiled(self, stem: str) -> list[str]:
        """The compiled modules (C extensions built in place) an import of the module at path
        `stem` (``pkg/_speedups``) may load: the import system tries them before a .py file."""
        if self._compiled is None:
            found: dict[str, list[str]] = {}
            for rel in self.all_files:
                if rel.endswith((".so", ".pyd")):
                    directory, _, name = rel.rpartition("/")
                    if match := _COMPILED.fullmatch(name):
                        prefix = directory + "/" if directory else ""
                        found.setdefault(prefix + match.group(1), []).append(rel)
            self._compiled = {stem: sorted(files) for stem, files in found.items()}
        return self._compiled.get(stem, [])

    def copy(self, all_files: set[str], dirs: set[str]) -> Resolver:
        """The same resolver over copies of its file sets (its memos stay valid for them)."""
        other = Resolver(all_files, dirs, list(self.roots))
        other._basedir_cache = dict(self._basedir_cache)
        other._top_cache = dict(self._top_cache)
        return other

    def basedir(self, rel: str) -> str:
        """The first ancestor directory without __init__.py: what pytest's prepend mode and a
        script run put on sys.path."""
        directory = rel.rsplit("/", 1)[0] if "/" in rel else ""
        cached = self._basedir_cache.get(directory)
        if cached is not None:
            return cached
        d = directory
        while d and f"{d}/__init__.py" in self.all_files:
            d = d.rsplit("/", 1)[0] if "/" in d else ""
        result = d + "/" if d else ""
        self._basedir_cache[directory] = result
        return result

    def find_root(self, importer: str, top: str) -> str | None:
        base = self.basedir(importer)
        key = (base, top)
        if key in self._top_cache:
            return self._top_cache[key]
        found = None
        for root in (base, *self.roots):
            if (
                f"{root}{top}.py" in self.all_files
                or f"{root}{top}/__init__.py" in self.all_files
                or f"{root}{top}" in self.dirs
                or self.compiled(f"{root}{top}")
            ):
                found = root
                break
        self._top_cache[key] = found
        return found

    def module_path(self, base: str, parts: list[str]) -> Iterator[tuple[str, bool]]:
        """Files executed by importing `parts` below `base`: (file, is_the_module_itself)."""
        for i in range(1, len(parts) + 1):
            stem = base + "/".join(parts[:i])
            last = i == len(parts)
            compiled = self.compiled(stem)
            for file in compiled:
                yield file, True
            if f"{stem}/__init__.py" in self.all_files:
                yield f"{stem}/__init__.py", last
            elif f"{stem}.py" in self.all_files:
                yield f"{stem}.py", True
                return  # the rest are attributes of a module
            elif compiled or stem not in self.dirs:
                return  # not in the workspace (an attribute, or missing)

    def resolve(self, rel: str, imp: RawImport, add: AddEdge) -> bool:
        """Hand `add` the edges `rel` gets from `imp`; False if it resolved to nothing (an
        attribute or a missing module). Standard-library imports resolve to no edge."""
        parts = imp.module.split(".") if imp.module else []
        if imp.level:
            directory = rel.rsplit("/", 1)[0] if "/" in rel else ""
            for _ in range(imp.level - 1):
                directory = directory.rsplit("/", 1)[0] if "/" in directory else ""
            base = directory + "/" if directory else ""
            dotted = "." * imp.level + imp.module
        else:
            if not parts:
                return True
            top = parts[0]
            found = self.find_root(rel, top)
            if found is None:
                if top in environment.STDLIB or top == "__future__":
                    return True
                if imp.kind == "dynamic" and imp.names == ("*",):
                    return True  # a package guessed from a name's literal prefix: none here
                # Third-party or missing: the distribution is looked up lazily (distributions()).
                add(rel, DIST + top, Edge("dist", imp.line, imp.module))
                return True
            base = found
            dotted = imp.module
        kind: EdgeKind = "import" if imp.kind == "from" else imp.kind
        linked = False
        module_file = None
        for file, is_module in self.module_path(base, parts):
            edge_kind: EdgeKind = kind if is_module else "init"
            # a package by its module name: under a source root (src/), not its file's path
            inside = file[len(base) :] if not imp.level and file.startswith(base) else file
            name = dotted if is_module else inside.removesuffix("/__init__.py").replace("/", ".")
            add(rel, file, Edge(edge_kind, imp.line, name))
            linked = True
            if is_module:
                module_file = file
        if imp.kind == "dynamic" and imp.names == ("*",) and module_file is not None:
            self._package_modules(rel, module_file, dotted, imp.line, add)
        if imp.kind == "from":
            # `from pkg import sub` imports the submodule pkg/sub when it exists.
            package = base + "/".join(parts)
            if module_file is None or module_file.endswith("/__init__.py") or not parts:
                package = package.rstrip("/")
                prefix = package + "/" if package else ""
                for name in imp.names:
                    if name == "*":
                        continue
                    detail = f"{dotted}.{name}" if dotted.strip(".") else f"{dotted}{name}"
                    for candidate in self.compiled(prefix + name):
                        add(rel, candidate, Edge(kind, imp.line, detail))
                        linked = True
                    for candidate in (f"{prefix}{name}.py", f"{prefix}{name}/__init__.py"):
                        if candidate in self.all_files:
                            add(rel, candidate, Edge(kind, imp.line, detail))
                            linked = True
                            break
            if imp.level and not parts and not linked:
                linked = True  # `from . import x` where x is an attribute of the package
        return linked or (imp.level > 0 and module_file is not None)

    def _package_modules(self, rel: str, init: str, dotted: str, line: int, add: AddEdge) -> None:
        """Edges from `rel` to each module of the package whose ``__init__.py`` is `init` (and to
        each subpackage's): a module name computed at run time below it may be any of them."""
        if not init.endswith("/__init__.py"):
            return
        folder = init.removesuffix("__init__.py")
        for file in sorted(f for f in self.all_files if f.startswith(folder)):
            rest = file[len(folder) :]
            if rest.count("/") == 1 and rest.endswith("/__init__.py"):
                name = rest.removesuffix("/__init__.py")
            elif "/" not in rest and rest.endswith(".py") and rest != "__init__.py":
                name = rest.removesuffix(".py")
            else:
                continue
            add(rel, file, Edge("dynamic", line, f"{dotted}.{name}"))

    def former_importers(self, rel: str, py: Mapping[str, FileEntry]) -> list[tuple[str, str]]:
        """(file, module as it names it) for each file whose imports would have resolved to
        `rel` (deleted or renamed away): the importer's own name (`pkg.mod`), not the path
        from the workspace root (`src.pkg.mod`)."""
        module = rel.removesuffix(".py").removesuffix("/__init__")
        found = []
        for importer, entry in py.items():
            directory = importer.rsplit("/", 1)[0] if "/" in importer else ""
            bases = [self.basedir(importer), *self.roots]
            for imp in entry.imports:
                # (path stem it may resolve to, the dotted name as written)
                candidates: list[tuple[str, str]] = []
                if imp.level:
                    d = directory
                    for _ in range(imp.level - 1):
                        d = d.rsplit("/", 1)[0] if "/" in d else ""
                    stem = "/".join(filter(None, [d, imp.module.replace(".", "/")]))
                    dots = "." * imp.level + imp.module
                    sep = "." if imp.module else ""
                    candidates = [(stem, dots)]
                    candidates += [
                        (f"{stem}/{n}" if stem else n, f"{dots}{sep}{n}") for n in imp.names
                    ]
                else:
                    stem = imp.module.replace(".", "/")
                    candidates = [(b + stem, imp.module) for b in bases]
                    candidates += [
                        (f"{b}{stem}/{n}", f"{imp.module}.{n}") for b in bases for n in imp.names
                    ]
                # importing pkg.x runs pkg/__init__: a deleted package init has dependents too
                hit = next(
                    (name for c, name in candidates if c == module or c.startswith(module + "/")),
                    None,
                )
                if hit is not None:
                    found.append((importer, hit))
                    break
        return found
