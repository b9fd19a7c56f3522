"""Installed distributions of the workspace's environment, read from its site-packages on disk.

Third-party imports resolve to a distribution (name, version), not to files. Reading metadata from
the site-packages directories (instead of importing anything in the workspace's interpreter) keeps
the graph free of processes; the result is cached by the directories' mtimes.

A distribution's code can still change without a new version: a user debugging a dependency edits
it in place (a print, a fix). Its install record (``RECORD``) is written after its files, so a code
file modified later, or a deleted or new one, is an edit: `installed_edits` finds them with one
``stat`` per file and keys the module by their content. Code with no distribution (a module
dropped into site-packages) is keyed by content whole (`loose_module_files`).
"""

from __future__ import annotations

import base64
import binascii
import csv
import glob
import hashlib
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from maestro.names import is_utf8


def site_packages(root: Path, interpreter: str | None = None) -> list[Path]:
    """Site-packages of the workspace: those of the configured interpreter's virtualenv, else of
    `.venv`/`venv` in the root, else of $VIRTUAL_ENV, else ours (engine/interpreter_path.py
    picks the interpreter in that order)."""
    candidates: list[Path | str | None] = [
        root / ".venv",
        root / "venv",
        os.environ.get("VIRTUAL_ENV"),
    ]
    if interpreter:
        path = Path(interpreter).expanduser()
        if not path.is_absolute() and len(path.parts) == 1:
            path = Path(shutil.which(interpreter) or path)
        elif not path.is_absolute():
            path = root / path
        candidates.insert(0, path.parent.parent)  # bin/python (unresolved: the venv's own)
    for candidate in candidates:
        if candidate and (Path(candidate) / "pyvenv.cfg").is_file():
            # the folder's own name is no pattern: a workspace in "proj[v2]"
            pattern = os.path.join(glob.escape(str(candidate)), "lib", "python3*", "site-packages")
            found = glob.glob(pattern)
            if found:
                return [Path(p) for p in sorted(found)]
    return [Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]


def environment_key(dirs: list[Path]) -> str:
    # the map's shape: [name, version, metadata folder, the other distributions' folders]
    parts = ["map:4"]
    for d in dirs:
        try:
            parts.append(f"{d}:{d.stat().st_mtime_ns}")
        except OSError:
            parts.append(f"{d}:missing")
    return "|".join(parts)


def distribution_map(dirs: list[Path]) -> dict[str, list[str]]:
    """Top-level import name -> [distribution name, version, metadata folder, ...] for everything
    installed in `dirs`: the first distribution that installs it, then the metadata folders of
    the others (a namespace package: jaraco.context, jaraco.functools and jaraco.text all
    install into ``jaraco/``).

    Read straight from the ``*.dist-info``/``*.egg-info`` files: ``importlib.metadata`` parses
    every METADATA file with the email package (0.3 s for a 100-package environment, more than
    a cold graph build's import scan), where the name and version are the first header lines."""
    mapping: dict[str, list[str]] = {}
    for d in dirs:
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.endswith(".dist-info"):
                found = _distribution(entry.path, "METADATA")
            elif entry.name.endswith(".egg-info"):
                found = _distribution(entry.path, "PKG-INFO")
            else:
                continue
            if found is None:
                continue
            name, version, tops = found
            for top in tops:
                known = mapping.setdefault(top, [name, version, entry.path])
                if entry.path not in known[2:]:
                    known.append(entry.path)
    return mapping


def pytest_plugin_files(dirs: list[Path]) -> list[str]:
    """The source files of the pytest plugins installed in `dirs` (``pytest11`` entry points,
    which pytest loads in every run), found beside them; a plugin elsewhere (an editable install)
    is left out."""
    found: list[str] = []
    for d in dirs:
        try:
            infos = sorted(e.path for e in os.scandir(d) if e.name.endswith(".dist-info"))
        except OSError:
            continue
        for info in infos:
            for module in _entry_point_modules(_read(os.path.join(info, "entry_points.txt"))):
                parts = module.split(".")
                for path in (
                    os.path.join(d, *parts) + ".py",
                    os.path.join(d, *parts, "__init__.py"),
                ):
                    if os.path.isfile(path):
                        found.append(path)
                        break
    return found


def _entry_point_modules(text: str | None, group: str = "pytest11") -> list[str]:
    """The modules of `group`'s entry points in an ``entry_points.txt``."""
    modules: list[str] = []
    section = ""
    for raw in (text or "").splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == group and "=" in line and not line.startswith(("#", ";")):
            module = line.partition("=")[2].partition(":")[0].strip()
            if module:
                modules.append(module)
    return modules


def _distribution(info: str, metadata_file: str) -> tuple[str, str, set[str]] | None:
    """(name, version, top-level names) of one installed distribution, None if unreadable."""
    is_dir = os.path.isdir(info)
    headers = _headers(os.path.join(info, metadata_file) if is_dir else info)
    name, version = headers.get("name", ""), headers.get("version", "")
    if not name:
        return None
    tops: set[str] = set()
    top_level = _read(os.path.join(info, "top_level.txt")) if is_dir else None
    if top_level:
        tops.update(t.strip() for t in top_level.splitlines() if t.strip())
    elif is_dir:
        for line in (_read(os.path.join(info, "RECORD")) or "").splitlines():
            path = line.rsplit(",", 2)[0].strip('"') if line.count(",") >= 2 else line
            first = path.split("/", 1)[0]
            if (
                not first
                or first.endswith((".dist-info", ".egg-info", ".pth", ".data"))
                or first in ("..", "__pycache__")
            ):
                continue
            tops.add(first.removesuffix(".py").split(".")[0])
    return name, version, tops


def _headers(path: str) -> dict[str, str]:
    """The ``Name`` and ``Version`` headers (lower-cased keys) of a core metadata file."""
    found: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break  # end of the headers: the description follows
                key, sep, value = line.partition(":")
                if sep and key.lower() in ("name", "version"):
                    found.setdefault(key.lower(), value.strip())
                    if len(found) == 2:
                        break
    except OSError:
        pass
    return found


_CODE = (".py", ".so", ".pyd")  # what an import loads (bytecode follows its source)


def _is_code(name: str) -> bool:
    return name.endswith(_CODE)


def _is_bytecode(rel: str) -> bool:
    """Python's own cache (pip lists what it compiled; Python rewrites it after an edit)."""
    return "__pycache__/" in rel or rel.endswith((".pyc", ".pyo"))


def _of_module(rel: str, top: str) -> bool:
    """Is `rel` (relative to site-packages) a file of the top-level module `top` (any file of
    its package folder, or its single-file module)?"""
    first, sep, _ = rel.partition("/")
    if sep:
        return first == top
    return rel.partition(".")[0] == top and _is_code(rel)


def installed_edits(info: str, top: str, memo: ContentMemo | None = None) -> dict[str, str] | None:
    """The files of `top` (code and data, not bytecode), installed by the distribution whose
    metadata folder is `info`, that differ from the install: modified after its record was
    written, unless their content is still the one the record's hash names (an edit undone)
    (-> their content's digest), deleted (-> "deleted"), or code new in a folder of it (-> their
    digest). Relative to site-packages. None: no record to compare with (then only the version
    counts). `memo` keeps the digests of files by their stat, so a file hashed once is not
    hashed again."""
    site = os.path.dirname(info)
    record = os.path.join(info, "RECORD")
    text = _read(record)
    base = site
    if text is None:  # a legacy (setup.py) install lists its files beside its metadata
        record = os.path.join(info, "installed-files.txt")
        text = _read(record)
        base = info
    if text is None:
        return None
    try:
        since = os.stat(record).st_mtime_ns
    except OSError:
        return None
    rows = csv.reader(text.splitlines()) if base == site else ([r] for r in text.splitlines())
    listed: dict[str, str] = {}  # file -> the record's hash field ("" for none)
    plain = base == site
    for row in rows:
        if not row or not row[0]:
            continue
        rel = row[0]
        if plain and not rel.startswith(top):
            continue  # another module's (the cheap test first: thousands of rows per plan)
        if not plain or ".." in rel or "\\" in rel:
            rel = os.path.relpath(os.path.normpath(os.path.join(base, rel)), site)
        # its data too (a certificate bundle, zone or locale files, templates): read from
        # beside its code, an edit of it changes what the code does
        if not rel.startswith("..") and _of_module(rel, top) and not _is_bytecode(rel):
            listed[rel] = row[1] if len(row) > 1 else ""
    edits: dict[str, str] = {}
    folders: set[str] = set()
    prefix = site + os.sep
    for rel, recorded in listed.items():
        folders.add(rel.rpartition("/")[0])
        try:
            st = os.stat(prefix + rel)
        except OSError:
            edits[rel] = "deleted"
            continue
        if st.st_mtime_ns > since and (now := _content(prefix + rel, memo)) != _record_sha256(
            recorded
        ):
            edits[rel] = now
    for folder in sorted(f for f in folders if f):
        try:
            if os.stat(os.path.join(site, folder)).st_mtime_ns <= since:
                continue  # nothing added or renamed into it since
            names = os.listdir(os.path.join(site, folder))
        except OSError:
            continue
        for name in names:
            rel = f"{folder}/{name}"
            if _is_code(name) and rel not in listed:
                edits[rel] = _content(os.path.join(site, rel), memo)
    return edits


def _record_sha256(field: str) -> str:
    """The hex sha256 a RECORD row's hash field (``sha256=<urlsafe base64, unpadded>``) names,
    "" for another algorithm or none."""
    algorithm, _, value = field.partition("=")
    if algorithm != "sha256" or not value:
        return ""
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex()
    except (ValueError, binascii.Error):
        return ""


def loose_module_files(
    dirs: list[Path], top: str, memo: ContentMemo | None = None
) -> dict[str, str]:
    """The code of a top-level module no distribution installed (a file or a package dropped
    into site-packages) -> its content's digest; empty when there is none."""
    for d in dirs:
        single = d / f"{top}.py"
        if single.is_file():
            return {single.name: _content(str(single), memo)}
        package = d / top
        if package.is_dir():
            found: dict[str, str] = {}
            for folder, subdirs, files in os.walk(package):
                subdirs[:] = sorted(s for s in subdirs if s != "__pycache__")
                for name in sorted(files):
                    if _is_code(name):
                        path = os.path.join(folder, name)
                        found[os.path.relpath(path, d)] = _content(path, memo)
            return found
    return {}


ContentMemo = dict[str, list[Any]]
"""Absolute path -> [mtime_ns, size, inode, sha256 hex] of a file hashed before."""


def _content(path: str, memo: ContentMemo | None = None) -> str:
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            stamp = [st.st_mtime_ns, st.st_size, st.st_ino]
            if memo is not None and (known := memo.get(path)) and known[:3] == stamp:
                return str(known[3])
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return "unreadable"
    if memo is not None and is_utf8(path):  # the index is packed as UTF-8
        memo[path] = [*stamp, digest]
    return digest


class InstalledCode:
    """What each installed top-level module is now: its distribution and version, and the edits
    of its code since the install, read once per `ttl` seconds at most (a plan re-reads it
    whole: `forget`)."""

    def __init__(self, ttl: float = 1.0) -> None:
        self.ttl = ttl
        self._known: dict[str, str | None] = {}
        self._at = 0.0

    def forget(self) -> None:
        self._known = {}

    def value(self, top: str, read: Callable[[str], str | None]) -> str | None:
        """`top`'s value as `read` (`installed_value`) gives it, read again only after `ttl`
        or `forget`: keys ask it for every file importing the module."""
        now = time.monotonic()
        if now - self._at > self.ttl:
            self._known, self._at = {}, now
        if top not in self._known:
            self._known[top] = read(top)
        return self._known[top]


def installed_value(
    dists: dict[str, list[str]],
    dirs: Callable[[], list[Path]],
    top: str,
    memo: ContentMemo | None,
) -> str | None:
    """``name==version`` (and a digest of its edited files, when there are any), a digest of a
    loose module's code, or None for a name nothing installed provides."""
    found = dists.get(top)
    if found:
        edits: dict[str, str] | None = None
        for info in found[2:]:  # each distribution installing into it (a namespace package)
            if (more := installed_edits(info, top, memo)) is not None:
                edits = {**(edits or {}), **more}
        version = f"{found[0]}=={found[1]}"
        return f"{version} edited:{_digest_of(edits)} ({_first(edits)})" if edits else version
    loose = loose_module_files(dirs(), top, memo)
    return f"not installed, code:{_digest_of(loose)}" if loose else None


def _first(edits: dict[str, str]) -> str:
    """The edited files in words, for a person reading a reason: the first, and how many more."""
    first, more = min(edits), len(edits) - 1
    return f"{first} and {more} more" if more else first


def _digest_of(files: dict[str, str]) -> str:
    body = "\n".join(f"{rel}\0{value}" for rel, value in sorted(files.items()))
    return hashlib.sha256(body.encode("utf-8", "surrogateescape")).hexdigest()


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


STDLIB = frozenset(sys.stdlib_module_names)
