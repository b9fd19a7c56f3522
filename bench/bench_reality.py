"""Static closure vs reality: does each test file's static closure hold what it loads?

    python -m bench.bench_reality [--write | --no-write] [--venv DIR]

For requests (src/ layout) and more-itertools (flat layout), from their PyPI sdists: build the
graph, then import every test module in a fresh subprocess the way pytest does (rootdir-first
`conftest.py` files, then the module under its package name, its basedir prepended to sys.path,
the project's source root importable as if installed) and record the workspace files it actually
loaded (`sys.modules` entries whose `__file__` lies in the tree). `g.closure(test)` must contain
every one of them. The subprocess runs in a scratch virtual environment (.bench/venv-reality)
holding the project's runtime and test dependencies; an import that still fails is reported as an
exception with its reason (what it loaded before failing is still checked).
Also run as a test: tests/reality/test_static_closure.py (markers network, slow).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tomllib
import venv
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import BENCH_DIR, fetch_sdist, git_rev, machine, table, today, write_section

SECTION = "Static closure vs reality (issue 2)"
METHOD = (
    "Each test module (pytest discovery by the graph) is imported in a fresh subprocess as "
    "pytest would (conftests from the rootdir down, then the module; basedirs prepended; the "
    "project's source root importable), in a scratch venv holding the project's runtime and "
    "test dependencies; every workspace module it loaded must be in `g.closure(test)`. "
    '"closure" counts the workspace .py files in the static closure and "closure not loaded" '
    "those the import did not load (over-approximation)."
)


@dataclass(frozen=True)
class Project:
    name: str
    spec: str  # pip version specifier, "" for the newest
    source_root: str  # where the project's own package lives ("." = flat layout)
    test_requirements: tuple[str, ...] = ()  # beyond [project].dependencies


PROJECTS = (
    Project(
        "requests",
        "",
        "src",
        # from requests' [dependency-groups] test and requirements-dev.txt
        (
            "PySocks>=1.5.6,!=1.5.7",
            "pytest>=3",
            "pytest-httpbin==2.1.0",
            "httpbin~=0.10.0",
            "trustme",
            "pytest-mock",
        ),
    ),
    Project("more-itertools", "", "."),
)

PROBE = r"""
import importlib, json, os, sys, traceback
tree, paths, modules = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
sys.path[:0] = paths
root = os.path.realpath(tree) + os.sep
error = None
for name in modules:
    try:
        importlib.import_module(name)
    except BaseException as exc:  # SystemExit/KeyboardInterrupt from a module body count too
        last = traceback.extract_tb(exc.__traceback__)[-1]
        where = os.path.relpath(last.filename, root) if last.filename.startswith(root) else (
            os.path.basename(last.filename))
        error = f"importing {name}: {type(exc).__name__}: {exc} ({where}:{last.lineno})"
        break
loaded = {}
for name, module in list(sys.modules.items()):
    f = getattr(module, "__file__", None)
    if f:
        real = os.path.realpath(f)
        if real.startswith(root):
            loaded[name] = os.path.relpath(real, root).replace(os.sep, "/")
print(json.dumps({"loaded": loaded, "error": error}))
"""


@dataclass
class TestResult:
    test: str
    module: str
    loaded: dict[str, str]  # module name -> file (workspace-relative)
    closure_files: int  # workspace .py files in the static closure
    extra: int  # of those, not loaded by the import (over-approximation)
    missing: list[tuple[str, str]]  # (module, file) loaded but not in the static closure
    error: str | None


@dataclass
class ProjectResult:
    project: Project
    version: str
    tests: list[TestResult] = field(default_factory=list)
    setup_problem: str | None = None

    @property
    def exceptions(self) -> list[str]:
        out = [f"setup: {self.setup_problem}"] if self.setup_problem else []
        return out + [f"{t.test}: {t.error}" for t in self.tests if t.error]

    @property
    def misses(self) -> list[str]:
        return [f"{t.test}: {m} ({f})" for t in self.tests for m, f in t.missing]


def requirements(project: Project, tree: Path) -> list[str]:
    try:
        meta = tomllib.loads((tree / "pyproject.toml").read_text(encoding="utf-8"))
        deps = list(meta.get("project", {}).get("dependencies", []))
    except (OSError, tomllib.TOMLDecodeError):
        deps = []
    return deps + list(project.test_requirements)


def ensure_venv(where: Path, reqs: list[str]) -> tuple[str, str | None]:
    """A scratch venv holding `reqs` (re-created when they change): (python, problem or None)."""
    python = where / "bin" / "python"
    stamp = where / ".requirements"
    key = hashlib.sha256("\n".join(sorted(reqs)).encode()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == key:
        return str(python), None
    if not python.exists():
        try:
            venv.EnvBuilder(with_pip=True, clear=True).create(where)
        except (OSError, subprocess.CalledProcessError) as exc:
            return sys.executable, f"cannot create a scratch venv ({exc}); using {sys.executable}"
    if reqs:
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *reqs],
            capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode != 0:
            lines = [x for x in proc.stderr.splitlines() if "ERROR" in x] or [""]
            return str(python), f"pip install of test dependencies failed: {lines[-1][:300]}"
    stamp.write_text(key)
    return str(python), None


def pytest_module_name(rel: str, files: set[str]) -> tuple[str, str]:
    """(module name, basedir) under pytest's default `prepend` import mode."""
    parts = rel.removesuffix(".py").split("/")
    i = len(parts) - 1  # parts[:i] is the directory
    while i > 0 and "/".join(parts[:i]) + "/__init__.py" in files:
        i -= 1
    return ".".join(parts[i:]), "/".join(parts[:i])


def conftests(rel: str, files: set[str]) -> list[str]:
    """conftest.py files from the rootdir down to the test's directory, as pytest loads them."""
    parts = rel.split("/")[:-1]
    found = []
    for i in range(len(parts) + 1):
        candidate = "/".join([*parts[:i], "conftest.py"])
        if candidate in files and candidate != rel:
            found.append(candidate)
    return found


def run_project(project: Project, venv_dir: Path | None = None) -> ProjectResult:
    from maestro.graph.build import BuildGraph

    tree = fetch_sdist(project.name, project.spec)
    result = ProjectResult(project, tree.name.rpartition("-")[2])
    venv_dir = venv_dir or BENCH_DIR / "venv-reality"
    reqs = requirements(project, tree)
    python, result.setup_problem = ensure_venv(venv_dir / project.name, reqs)

    g = BuildGraph.build(tree)
    files = set(g.all_files)
    source_root = str(tree / project.source_root)
    for test in sorted(g.tests):
        to_import: list[str] = []
        paths: list[str] = []
        for rel in [*conftests(test, files), test]:
            module, basedir = pytest_module_name(rel, files)
            to_import.append(module)
            base = str(tree / basedir) if basedir else str(tree)
            if base not in paths:
                paths.insert(0, base)  # pytest prepends each basedir at import time
        paths.append(source_root)  # the project itself, as an installed (editable) package
        proc = subprocess.run(
            [python, "-P", "-c", PROBE, str(tree), json.dumps(paths), json.dumps(to_import)],
            capture_output=True, text=True, cwd=tree, timeout=300,
        )  # fmt: skip
        if proc.returncode != 0 or not proc.stdout.strip():
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            result.tests.append(
                TestResult(test, to_import[-1], {}, 0, 0, [], f"probe died: {tail}")
            )
            continue
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        loaded: dict[str, str] = data["loaded"]
        closure = g.closure(test)
        missing = sorted(
            (mod, f) for mod, f in loaded.items() if f != test and f not in closure
        )  # fmt: skip
        closure_files = {n for n in closure if n in g.py}
        extra = len(closure_files - set(loaded.values()))
        result.tests.append(
            TestResult(
                test, to_import[-1], loaded, len(closure_files), extra, missing, data["error"]
            )
        )
    return result


def report(results: list[ProjectResult]) -> str:
    summary = []
    detail = []
    for r in results:
        files_loaded = {f for t in r.tests for f in t.loaded.values()}
        summary.append(
            [
                f"{r.project.name} {r.version}",
                len(r.tests),
                f"{len(files_loaded)} files ({sum(len(t.loaded) for t in r.tests)} loads)",
                "yes" if not r.misses else f"**no** ({len(r.misses)} missing)",
                "; ".join(r.exceptions) or "none",
            ]
        )
        for t in r.tests:
            detail.append(
                [
                    f"{r.project.name}: `{t.test}`",
                    len(t.loaded),
                    t.closure_files,
                    t.extra,
                    ", ".join(f"{m} ({f})" for m, f in t.missing) or "—",
                    t.error or "—",
                ]
            )
    parts = [
        table(
            ["project", "test modules", "workspace modules loaded", "all covered", "exceptions"],
            summary,
            "lrrll",
        ),
        table(
            [
                "test module",
                "loaded (incl. itself)",
                "closure (.py files)",
                "closure not loaded",
                "missing from closure",
                "exception",
            ],
            detail,
            "lrrrll",
        ),
    ]
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True,
                        help="write docs/BENCHMARKS.md (default: yes)")  # fmt: skip
    parser.add_argument(
        "--venv", type=Path, default=None, help="scratch venvs (.bench/venv-reality)"
    )
    args = parser.parse_args(argv)
    results = [run_project(p, args.venv) for p in PROJECTS]
    text = report(results)
    print(text)
    misses = [m for r in results for m in r.misses]
    if misses:
        print("\nMISSES (static closure lacks a module the test loaded):")
        for m in misses:
            print(f"  {m}")
    if args.write:
        body = "\n\n".join(
            [
                f"{today()}, {machine()}, maestro at {git_rev('graph', 'maestro')}. " + METHOD,
                "Reproduce: `make relink && .venv/bin/python -m bench.bench_reality` "
                "(or `.venv/bin/pytest -m network tests/reality`)",
                text,
            ]
        )
        write_section(SECTION, body)
        print("\nwrote docs/BENCHMARKS.md")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
