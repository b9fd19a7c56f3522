"""The Python a sample workspace's tests run under: a venv holding pytest and what pytest needs,
nothing else.

The suite's own venv holds pytest plugins (pytest-lsp, schemathesis/hypothesis, asyncio, xdist)
that pytest loads through entry points in every child it starts: ~0.8 s per child, most of the
suite's time. A user's project venv has its own plugins, not ours, so the children run here.

The venv lives inside the suite's venv, keyed by the exact distributions it links, and is made
once (atomically, so parallel test processes share it). Its packages are links to the suite's
own copies: no download, the same pytest version.

On sys.path through pytest's `pythonpath` (pyproject.toml), so every test folder imports it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from maestro.engine.interpreter import Interpreter, query_interpreter


def _closure(roots: tuple[str, ...]) -> list[metadata.Distribution]:
    """`roots` and every distribution they require in this environment (markers applied)."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        dist = metadata.distribution(name)
        seen[name] = dist
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return sorted(seen.values(), key=lambda d: d.metadata["Name"].lower())


def _top_level(dist: metadata.Distribution) -> set[str]:
    """The names a distribution installs at the top of site-packages (packages, modules, its
    .dist-info), from its RECORD."""
    names = set()
    for file in dist.files or []:
        first = file.parts[0]
        if first not in ("..", "__pycache__") and not first.endswith(".pth"):
            names.add(first)
    return names


@functools.cache
def project_python(*extras: str) -> Path:
    """The lean venv's python (made on first use), with the suite's copies of `extras` (and what
    they require) beside pytest, as a project's venv holds what its tests import."""
    dists = _closure(("pytest", *extras))
    key = hashlib.sha256(
        repr([sys.version, *((d.metadata["Name"], d.version) for d in dists)]).encode()
    ).hexdigest()[:12]
    home = Path(sys.prefix) / "maestro-test-python" / key
    python = home / "bin" / "python"
    if python.exists():
        return python
    home.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".making-", dir=home.parent))
    base = Path(getattr(sys, "_base_executable", sys.executable))
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(scratch)], check=True)
    site = next((scratch / "lib").glob("python3*/site-packages"))
    for dist in dists:
        origin = Path(str(dist.locate_file("")))
        for name in _top_level(dist):
            if (origin / name).exists():
                (site / name).symlink_to(origin / name)
    try:
        os.rename(scratch, home)
    except OSError:  # another test process made it first: use theirs
        shutil.rmtree(scratch, ignore_errors=True)
    # The venv was made under another name: its scripts' shebangs name the scratch folder, but
    # only bin/python (a link to the base interpreter) is ever run.
    return python


def plain_pytest(
    python: Path, root: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Plain pytest on `root`, the truth a Maestro run is compared with, run with bytecode of its
    own compiled now: a test edits a file within the second an earlier run compiled it, where
    CPython would run the stale `.pyc` (Maestro drops such bytecode itself)."""
    with tempfile.TemporaryDirectory() as pycache:
        return subprocess.run(
            [str(python), "-m", "pytest", "-p", "no:cacheprovider", *args],
            cwd=root, capture_output=True, text=True, timeout=timeout, check=False,
            env={**(os.environ if env is None else env), "PYTHONPYCACHEPREFIX": pycache},
        )  # fmt: skip


def venv_with(
    tmp_path_factory: pytest.TempPathFactory, *packages: str, deps: bool = False
) -> Interpreter:
    """A venv on this environment's packages (pytest, Maestro) with `packages` added (and what
    they require when `deps`), as a project's venv holds its pytest plugins; skips the test when
    they cannot be installed."""
    venv = tmp_path_factory.mktemp("plugins") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "host.pth").write_text(str(Path(pytest.__file__).parent.parent) + "\n")
    install = [str(venv / "bin/python"), "-m", "pip", "install", "-q"]
    try:
        subprocess.run(
            [*install, *(() if deps else ("--no-deps",)), *packages],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"cannot install {' '.join(packages)} here: {exc}")
    return query_interpreter(venv / "bin/python")
