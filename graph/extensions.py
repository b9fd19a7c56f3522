"""Sources of compiled extension modules: a test imports the built module (``_speedups.*.so``),
never its C source, so an edit to the source reaches no test until the module is rebuilt (then
the built module counts as changed). An impacted answer that leaves such a source out says why,
and which tests the rebuild reaches."""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from maestro.counts import plural

if TYPE_CHECKING:
    from maestro.graph.build import BuildGraph, Change
    from maestro.graph.query import Impact

SOURCE_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".pyx", ".m")
_BUILT_SUFFIXES = (".so", ".pyd")
_BUILD_FILES = ("setup.py", "pyproject.toml", "setup.cfg")


_NAMED = re.compile(
    r"""(?:\bExtension\(\s*(?:name\s*=\s*)?|\bname\s*=\s*)["']([A-Za-z_][\w.]*)["']"""
)
"""An extension's name in a build file: ``Extension("pkg._speed", ...)`` (setup.py) or
``name = "pkg._speed"`` (an ext-modules table); its sources follow it."""


def built_next_to(root: str, source: str) -> list[str]:
    """The extension modules built in place from `source` (workspace-relative), ``.so``/``.pyd``
    with or without an ABI tag (``_speedups.cpython-312-...so``): in its folder, of the same
    name, of that name less CPython's ``module`` suffix (``pvectorcmodule.c`` builds
    ``pvectorc``), or of the name a build file gives the extension it lists the source in
    (there, or in the folder that dotted name places it in)."""
    folder, name = posixpath.split(source)
    stem = posixpath.splitext(name)[0]
    places: dict[str, set[str]] = {folder: {stem}}
    if stem.endswith("module") and stem != "module":
        places[folder].add(stem[: -len("module")])
    for dotted in _extension_names(root, source):
        package, _, last = dotted.rpartition(".")
        places[folder].add(last)
        where = package.replace(".", "/")
        for place in (where, posixpath.join("src", where) if where else "src"):
            places.setdefault(place, set()).add(last)
    found: set[str] = set()
    for place, stems in places.items():
        try:
            entries = os.listdir(os.path.join(root, place) if place else root)
        except OSError:
            continue
        found.update(
            posixpath.join(place, e)
            for e in entries
            if e.endswith(_BUILT_SUFFIXES) and e.split(".", 1)[0] in stems
        )
    return sorted(found)


def _build_files_naming(root: str, source: str) -> Iterator[tuple[str, str]]:
    """(name, text) of each build file (setup.py, pyproject.toml, setup.cfg) naming `source`."""
    for name in _BUILD_FILES:
        try:
            with open(os.path.join(root, name), encoding="utf-8", errors="replace") as f:
                text = f.read(1_000_000)
        except OSError:
            continue
        if source in text:
            yield name, text


def _extension_names(root: str, source: str) -> list[str]:
    """The dotted names build files give the extensions whose sources list `source`."""
    names: list[str] = []
    for _, text in _build_files_naming(root, source):
        found = list(_NAMED.finditer(text))
        for i, match in enumerate(found):
            end = found[i + 1].start() if i + 1 < len(found) else len(text)
            chunk = text[match.end() : end]
            if f'"{source}"' in chunk or f"'{source}'" in chunk:
                names.append(match.group(1))
    return names


def rebuilt_since(root: str, changes: Sequence[Change]) -> list[Change]:
    """The built modules of changed extension sources that were rebuilt after their source was
    last written: the tests import them, so they see the edit as of the rebuild."""
    from maestro.graph.build import Change as ChangeRecord

    have = {c.path for c in changes}
    found: list[Change] = []
    for change in changes:
        if not change.path.endswith(SOURCE_SUFFIXES) or change.status == "deleted":
            continue
        try:
            written = os.stat(os.path.join(root, change.path)).st_mtime
        except OSError:
            continue
        for built in built_next_to(root, change.path):
            try:
                newer = os.stat(os.path.join(root, built)).st_mtime >= written
            except OSError:
                continue
            if newer and built not in have:
                have.add(built)
                found.append(ChangeRecord(built, "modified"))
    return found


def _named_in_build_files(root: str, source: str) -> str | None:
    """The build file (setup.py, pyproject.toml, setup.cfg) that names `source`, if any."""
    return next((name for name, _ in _build_files_naming(root, source)), None)


def extension_notes(
    graph: BuildGraph, changes: Sequence[Change], impacts: Iterable[Impact]
) -> list[str]:
    """For each changed extension source no impacted target reaches: that the tests read the
    built module, which must be rebuilt, and what its rebuild reaches. A source the workspace
    builds nothing from (no module beside it, no build file naming it) gets no note."""
    from maestro.graph.build import Change as ChangeRecord

    reached = {i.changed for i in impacts}
    root = str(graph.root)
    notes: list[str] = []
    for change in changes:
        path = change.path
        if not path.endswith(SOURCE_SUFFIXES) or path in reached or change.status == "deleted":
            continue
        built = built_next_to(root, path)
        if reached.intersection(built):
            continue  # rebuilt since the edit: the tests of the built module are impacted
        if built:
            tests = {
                i.target
                for i in graph.impacted([ChangeRecord(b, "modified") for b in built])
                if i.kind == "test"
            }
            imports = "imports" if len(tests) == 1 else "import"
            reach = f", which {plural(len(tests), 'test file')} {imports}" if tests else ""
            notes.append(
                f"{path} is a source of the extension module {', '.join(built)}{reach}: tests "
                "import the built module, not its source; rebuild it (pip install -e ., or "
                "python setup.py build_ext --inplace) for the tests to see this change"
            )
        elif (named := _named_in_build_files(root, path)) is not None:
            notes.append(
                f"{path} is an extension module source ({named} names it): tests import the "
                "built module, not its source; rebuild it (pip install -e .) for the tests to "
                "see this change"
            )
    return notes
