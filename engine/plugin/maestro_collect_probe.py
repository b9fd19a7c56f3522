"""Which files do the workspace's conftests collect themselves, and which test files does
their walk leave out? (engine/collect_probe.py)

Loaded only by the probe process: it replaces pytest's collection (no test module is imported)
with one question per candidate file, asked as pytest asks it while walking the directories:
is the file or a folder above it ignored, and does ``pytest_collect_file`` return a collector
for it; and for each ignorable test file, the topmost path (itself or a folder above) the walk
skips (``collect_ignore`` ...). The answer goes to the JSON file the request names; then pytest
exits.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

PROBE_ENV = "MAESTRO_COLLECT_PROBE"


def _load_conftests(config: Any, directory: Path) -> None:
    """The conftests from the rootdir down to ``directory``, as pytest loads them before it
    collects a folder."""
    pm = config.pluginmanager
    mode = config.getoption("importmode")
    if not hasattr(pm, "_loadconftestmodules"):  # pytest 7: asking for them loads them
        pm._getconftestmodules(directory, mode, rootpath=config.rootpath)
        return
    try:
        namespace = config.getini("consider_namespace_packages")
        pm._loadconftestmodules(
            directory, mode, rootpath=config.rootpath, consider_namespace_packages=namespace
        )
    except (TypeError, ValueError):  # pytest < 8.1
        pm._loadconftestmodules(directory, mode, rootpath=config.rootpath)


def walk_ignores(session: Any, path: Path, root: Path, memo: dict[Path, bool]) -> bool:
    """Whether pytest's walk from ``root`` down to ``path`` leaves it, or a folder above it, out
    (``memo``: the answers so far, per path). The walk asks the folder collecting a path, with
    that folder's conftests: a folder's own conftest (loaded once the walk is inside it) is
    never asked about the folder, nor about paths in other folders."""
    known = memo.get(path)
    if known is None:
        _load_conftests(session.config, path.parent)
        hook = session.gethookproxy(path.parent)
        known = bool(hook.pytest_ignore_collect(collection_path=path, config=session.config))
        if not known and path.parent not in (root, path):
            known = walk_ignores(session, path.parent, root, memo)
        memo[path] = known
    return known


def _ignored(session: Any, root: Path, files: list[str], memo: dict[Path, bool]) -> list[str]:
    """For each of ``files`` the walk leaves out, the topmost path it skips (the file, or a
    folder above it), relative to ``root``."""
    out: set[str] = set()
    for rel in files:
        path = root / rel
        levels = [*reversed([p for p in path.parents if root in p.parents]), path]
        try:
            top = next((p for p in levels if walk_ignores(session, p, root, memo)), None)
        except (Exception, pytest.skip.Exception, pytest.fail.Exception):
            continue  # a conftest that fails to load: pytest's run reports it
        if top is not None:
            out.add(top.relative_to(root).as_posix())
    return sorted(out)


def _environment() -> list[tuple[str, int]]:
    """This interpreter's site-packages folders and their mtimes: an install or a removal
    there changes them."""
    found = []
    for entry in sys.path:
        if entry.endswith(("site-packages", "dist-packages")):
            try:
                found.append((entry, os.stat(entry).st_mtime_ns))
            except OSError:
                continue
    return found


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: Any) -> bool:
    request_path = os.environ[PROBE_ENV]
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    config = session.config
    root = Path(request["root"])
    ignored: dict[Path, bool] = {}
    loaded: set[Path] = set()

    found: list[str] = []
    errors: list[str] = []
    # collected, but into items pytest cannot be given by the file's path (pytest-checkdocs'
    # `.::project`, hung on the folder): a run of that file would be refused
    unaddressable: list[str] = []
    # folders whose conftest skips at import (pytest.skip(allow_module_level=True)): pytest
    # reports the folder skipped and collects nothing below it
    skipped: set[Path] = set()
    for rel in request["candidates"]:
        path = root / rel
        try:
            if path.parent not in loaded:
                loaded.add(path.parent)
                try:
                    _load_conftests(config, path.parent)
                except pytest.skip.Exception:
                    skipped.add(path.parent)
            if path.parent in skipped or walk_ignores(session, path, root, ignored):
                continue
            hook = session.gethookproxy(path)
            collected = hook.pytest_collect_file(file_path=path, parent=session)
            if any(getattr(node, "path", None) == path for node in collected):
                found.append(rel)
            elif collected:
                unaddressable.extend(f"{rel}: {node.nodeid}" for node in collected)
        except (Exception, pytest.fail.Exception) as exc:  # pytest reports it collecting
            found.append(rel)
            errors.append(f"{rel}: {type(exc).__name__}: {exc}")
    out = Path(request["out"])
    answer = {
        "files": found, "errors": errors, "unaddressable": unaddressable,
        "ignored": _ignored(session, root, request.get("ignorable", []), ignored),
        "environment": _environment() if request.get("environment") else [],
    }  # fmt: skip
    out.write_text(json.dumps(answer), encoding="utf-8")
    session.items = []
    pytest.exit("maestro collection probe done", returncode=0)
