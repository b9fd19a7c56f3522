"""Fidelity (design 7c): does `maestro test` report, node for node, what plain pytest reports?

For six real suites from PyPI sdists (pinned in PROJECTS; extracted and installed under
.bench/fidelity/, never committed), each tree with its own `.venv` (made by --python, holding the
project installed editable, its test requirements and pytest-testmon; Maestro finds it as the
workspace interpreter) and its own git repository (one commit of the pristine tree):

1. pristine tree, plain pytest twice: nodes whose outcome differs between the two runs are
   flaky and left out of every comparison (their count is reported);
2. first run: `maestro test` on an empty cache and state (private to the bench: MAESTRO_CACHE_DIR,
   MAESTRO_STATE_DIR, no daemon) vs the first pytest run;
3. no-change run: `maestro test` again vs the same pytest run;
4. seeded mutants of several kinds (library function bodies: bench_precision's operator and
   constant flips; module-level constants; conftest.py code; fixture bodies; data files the tests
   or the library read (text: a first line added; binary: cut in half); hand-written per
   project where the suite has them: code the tests run in a subprocess, session-scoped fixtures;
   a case file added to a directory of data files, which a suite that lists the directory
   (`os.listdir`, a glob, a template loader's listing) sees as one more name;
   drawn in the order of KINDS, a kind a project lacks replaced by a function flip): each is
   applied, then `maestro test` (all files; it re-runs what changed and serves the rest) vs a full
   plain pytest on the same mutated tree, and `pytest --testmon` from a copy of its pristine
   baseline database, to count what it selects; then the mutant is reverted (an added file
   removed) and `maestro test` must again match the pristine pytest run.

Every difference is classified: STALE PASS (Maestro passed, pytest failed or errored), FALSE
FAILURE (Maestro failed or errored, pytest passed), MISSING (pytest reported the node, Maestro
did not), EXTRA (the other way round), other (skipped vs passed, failed vs error, ...).

Outcomes, node for node. Plain pytest (and testmon) runs load a tiny report plugin (`-p
fidelity_report`, written under .bench/ at bench time, nothing in the projects changes): it keeps
pytest's own node ids and folds setup/call/teardown the way Maestro's plugin does, and records a
failed or skipped collector (a module that does not import, a module-level skip) under its node id
(the file); under `--testmon` it also mends pytest-testmon 2.2's one crash seen here (a measured
file without a dot in its name, jinja2's tests/res/templates2/foo, stopped every testmon session
with IndexError, so testmon's selection on jinja2 was what ran before the crash): such a file is
text to it, as a `.html` template is. Maestro's side is its `--junit-xml` report (cached and fresh
results alike): its testcases carry the node id's file in `file=` and classname = dotted file path +
classes, so the node id is rebuilt exactly (`file::Class::name`); a file-level case (empty
classname, the dotted module as name, as pytest writes it) is the file. Both sides are compared in
JUnit's vocabulary: passed, failed, error, skipped (xfailed counts as skipped, a non-strict xpass as
passed, as both JUnit writers do). A testcase without the `maestro.cached` property ran in that
`maestro test`: that gives the files and nodes Maestro ran. Every pytest process (plain, testmon and
Maestro's) gets the same environment: Maestro's allowlist of variables plus the activated venv, the
same --rootdir and the same extra arguments (a fixed --hypothesis-seed where hypothesis is
installed; its example database for plain pytest and testmon is kept outside the tree, so they never
change Maestro's inputs).

    .venv/bin/python -m bench.bench_fidelity [--projects attrs,click] [--mutants 10]
        [--python python3.11] [--no-write] [--retrace process|daemon] [--work-dir DIR]

Before Python 3.12 Maestro's first run is untraced and a warm daemon re-records it, traced, once
idle (engine/retrace.py); the bench runs without a daemon, so by default its mutants are judged
against the untraced first run, as for a user of ``--no-daemon``. ``--retrace daemon`` makes the
first run through a daemon and waits for that re-recording (a daemon user's case);
``--retrace process`` runs the same re-recording in process after the first run.

Every command is bounded (--timeout-s; the process group is killed); a project whose download,
install or baseline fails is reported as skipped with the reason. Results (every mismatch) also go
to .bench/fidelity/results.json. docs/BENCHMARKS.md is written only for a run of every project
with >= 10 mutants each, unless --no-write.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from bench.bench_precision import mutants as flips
from bench.bench_test_cache import MAESTRO_CODE
from bench.common import (
    BENCH_DIR,
    FetchError,
    fetch_sdist,
    fmt_s,
    git_rev,
    machine,
    table,
    today,
    write_section,
)
from maestro.counts import plural

WORK = BENCH_DIR / "fidelity"
DEFAULT_PYTHON = "python3.11"


def work_dir(python: str) -> Path:
    """Trees, venvs and logs of one interpreter: venvs are made once, so another --python needs
    its own trees (the default keeps the top folder)."""
    return WORK if python == DEFAULT_PYTHON else WORK / Path(python).name.replace("python", "py")


SECTION = "Fidelity: maestro test vs plain pytest, node for node (bench/bench_fidelity.py)"
PYTEST = "pytest>=8,<9"
TESTMON = "pytest-testmon>=2.1"


@dataclass(frozen=True)
class Edit:
    """A hand-written mutant: replace `old` (must occur once) by `new` in `path`."""

    kind: str
    path: str
    old: str
    new: str
    label: str


@dataclass(frozen=True)
class Spec:
    name: str
    version: str
    library: tuple[str, ...]  # library source folders (tree-relative)
    tests: str  # the test folder
    deps: tuple[str, ...]  # test requirements, from the sdist's pyproject/tox/requirements
    pytest_args: tuple[str, ...] = ()
    edits: tuple[Edit, ...] = ()


_SEED0 = ("--hypothesis-seed=0",)
PROJECTS = [
    Spec(
        "attrs", "25.4.0", ("src/attr", "src/attrs"), "tests",
        # dependency-groups.tests (less pytest-xdist: runs are serial)
        ("cloudpickle", "hypothesis", "pympler", PYTEST),
        _SEED0,
        edits=(
            # a session-scoped fixture's body: its class is built once, by the first user
            Edit(
                "session", "tests/test_funcs.py", "        x = attr.ib()\n        y = attr.ib()\n",
                "        x = attr.ib(init=False)\n        y = attr.ib()\n",
                "tests/test_funcs.py: session fixture C: x = attr.ib(init=False)",
            ),
        ),
    ),
    Spec(
        "python-dateutil", "2.9.0.post0", ("src/dateutil",), "tests",
        # requirements-dev.txt less coverage/build (pytest-cov stays: the suite uses its mark)
        ("six", PYTEST, "pytest-cov", "freezegun", "hypothesis>=3.30"),
        _SEED0,
    ),
    Spec(
        "structlog", "25.4.0", ("src/structlog",), "tests",
        ("freezegun>=0.2.8", "pretend", "pytest-asyncio>=0.17", PYTEST, "simplejson"),
        edits=(
            # a session-scoped fixture (set up once, by the first test that uses it)
            Edit(
                "session", "tests/test_dev.py", 'dev._pad("test", dev._EVENT_WIDTH)',
                'dev._pad("test", dev._EVENT_WIDTH + 1)',
                "tests/test_dev.py: session fixture padded: width + 1",
            ),
        ),
    ),
    Spec(
        "click", "8.2.1", ("src/click",), "tests", (PYTEST,),
        edits=(
            # tests/test_imports.py imports click in a child interpreter and checks what it
            # imported: only the child can see this import.
            Edit(
                "subprocess", "src/click/_compat.py", "import codecs\n",
                "import codecs\nimport xml.dom.minidom as _fidelity_mutant  # noqa\n",
                "src/click/_compat.py: import a module the child may not",
            ),
        ),
    ),
    Spec("pluggy", "1.6.0", ("src/pluggy",), "testing", (PYTEST, "pytest-benchmark")),
    Spec("jinja2", "3.1.6", ("src/jinja2",), "tests", (PYTEST, "trio")),  # requirements/tests.in
]  # fmt: skip

# Mutant kinds in the order they are drawn (cycled); a kind without candidates in a project is
# replaced by a function-body flip.
KINDS = (
    "function", "constant", "conftest", "fixture", "data", "subprocess", "session", "dir",
    "function", "constant", "fixture", "function", "conftest", "function",
)  # fmt: skip
CATEGORIES = ("STALE PASS", "FALSE FAILURE", "MISSING", "EXTRA", "other")

# -- the report plugin for plain pytest (and testmon) runs ---------------------------------------

REPORT_PLUGIN = '''"""Node id -> outcome for the fidelity bench (phases folded like Maestro's).

Installed in the project venv (entry point), so it runs in Maestro's pytest too; appends one JSON
line per session to the file named in <venv>/fidelity-report-path.
"""
import json
import os
import sys

import pytest

_phases = {}
_nodes = {}


def _outcome(phases):
    setup, call, teardown = phases.get("setup"), phases.get("call"), phases.get("teardown")
    if setup is not None and setup.failed:
        return "error"
    if setup is not None and setup.skipped:
        return "xfailed" if hasattr(setup, "wasxfail") else "skipped"
    if call is not None:
        if call.failed:
            return "failed"
        if call.skipped:
            return "xfailed" if hasattr(call, "wasxfail") else "skipped"
    if teardown is not None and teardown.failed:
        return "error"
    if call is not None and hasattr(call, "wasxfail"):
        return "xpassed"
    return "passed" if call is not None else "error"


def pytest_runtest_logreport(report):
    _phases.setdefault(report.nodeid, {})[report.when] = report


def pytest_runtest_logfinish(nodeid, location):
    _nodes[nodeid] = _outcome(_phases.pop(nodeid, {}))


def pytest_collectreport(report):
    if report.failed:
        _nodes[report.nodeid] = "error"
    elif report.skipped:
        _nodes[report.nodeid] = "skipped"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # pytest-testmon 2.2 takes what follows a measured file name's last dot for its extension:
    # a file with no dot in its name (jinja2 compiles tests/res/templates2/foo) ended each of
    # its sessions with IndexError after a few hundred tests. It gets the handling testmon gives
    # a file of another extension (a .html template): one text block. Before testmon's own
    # pytest_configure, which reads its database.
    if not any(str(a).startswith("--testmon") for a in config.invocation_params.args):
        return
    try:
        from testmon import testmon_core
    except Exception:
        return
    original = testmon_core.SourceTree.get_file

    def get_file(self, filename):
        if "." not in filename and filename not in self.cache:
            code, fsha = testmon_core.get_source_sha(directory=self.rootdir, filename=filename)
            path = os.path.join(self.rootdir, filename)
            self.cache[filename] = None
            if fsha and os.path.exists(path):
                self.cache[filename] = testmon_core.Module(
                    source_code=code, mtime=os.path.getmtime(path), ext="", fs_fsha=fsha,
                    filename=filename, rootdir=self.rootdir,
                )
        return original(self, filename)

    testmon_core.SourceTree.get_file = get_file


def pytest_sessionfinish(session, exitstatus):
    try:
        with open(os.path.join(sys.prefix, "fidelity-report-path"), encoding="utf-8") as f:
            path = f.read().strip()
    except OSError:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"exit": int(exitstatus), "nodes": _nodes}) + "\\n")
'''

_JUNIT = {"xfailed": "skipped", "xpassed": "passed"}


def _category(outcome: str) -> str:
    return _JUNIT.get(outcome, outcome)


# -- processes -----------------------------------------------------------------------------------


@dataclass
class Ran:
    wall: float
    code: int
    out: str
    timed_out: bool = False


def run(
    cmd: Sequence[str], cwd: Path, env: dict[str, str], timeout: float, log: Path | None = None
) -> Ran:
    """`cmd` in its own process group; the whole group is killed after `timeout` seconds."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, errors="replace", start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        timed_out = True
    else:  # a grandchild (pytest under maestro) left behind
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    if log is not None:
        log.write_text(f"$ {' '.join(cmd)}\n{out}", encoding="utf-8")
    return Ran(time.perf_counter() - start, proc.returncode, out or "", timed_out)


def _user_env() -> dict[str, str]:
    """The environment a user runs the three tools in: this process's, without the variables
    that run the bench itself (the interpreter's path to a Maestro snapshot, Maestro's own
    settings, an activated venv) and without a terminal's size, which a shell keeps to itself."""
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "COLUMNS", "LINES")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("MAESTRO_")}


# -- trees and venvs -------------------------------------------------------------------------------

_GITIGNORE = "\n".join(
    [".venv/", "__pycache__/", "*.pyc", "*.egg-info/", "build/", "dist/", ".pytest_cache/",
     ".hypothesis/", ".testmondata*", ".benchmarks/", ""]
)  # fmt: skip


class Skip(RuntimeError):
    """The project cannot be benched here (download, install or baseline failed)."""


def prepare(spec: Spec, python: str, timeout: float) -> Path:
    """The project's tree with its `.venv` and git repository (made once; reset to pristine)."""
    try:
        src = fetch_sdist(spec.name, f"=={spec.version}")
    except FetchError as exc:
        raise Skip(str(exc)) from exc
    work = work_dir(python)
    tree = work / src.name
    git = ["git", "-C", str(tree), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    if not (tree / ".venv" / ".bench-ready").exists():
        shutil.rmtree(tree, ignore_errors=True)
        shutil.copytree(src, tree)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        made = run([python, "-m", "venv", str(tree / ".venv")], tree, env, timeout)
        if made.code != 0:
            raise Skip(f"{python} -m venv failed: {made.out.strip()[-300:]}")
        pip = [str(tree / ".venv/bin/python"), "-m", "pip", "install", "-q"]
        pip += ["--disable-pip-version-check", "-e", ".", *spec.deps, TESTMON]
        got = run(pip, tree, env, timeout, work / f"install-{spec.name}.log")
        if got.code != 0 or got.timed_out:
            raise Skip(f"pip install failed ({got.code}): {got.out.strip()[-300:]}")
        # (installed before `git init`: setuptools-scm/hatch-vcs read PKG-INFO, not an empty repo)
        (tree / ".gitignore").write_text(_GITIGNORE, encoding="utf-8")
        for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "pristine sdist"]):
            subprocess.run([*git, *cmd], check=True, capture_output=True, timeout=120)
        (tree / ".venv" / ".bench-ready").touch()
    _install_plugin(tree / ".venv")
    # Undo what an interrupted run may have left (a mutant, scratch files).
    subprocess.run([*git, "checkout", "-q", "--", "."], check=True, timeout=120)
    subprocess.run([*git, "clean", "-fdq"], check=True, timeout=120)
    return tree


def _install_plugin(venv: Path) -> None:
    """The report plugin as an installed distribution with a pytest11 entry point (same bytes
    every run, so the venv's listing, part of Maestro's keys, stays the same)."""
    site = next(venv.glob("lib/python*/site-packages"))
    info = site / "fidelity_report-1.0.dist-info"
    info.mkdir(exist_ok=True)
    files = {
        site / "fidelity_report.py": REPORT_PLUGIN,
        info / "METADATA": "Metadata-Version: 2.1\nName: fidelity-report\nVersion: 1.0\n",
        info / "entry_points.txt": "[pytest11]\nfidelity_report = fidelity_report\n",
        info / "RECORD": "",
    }
    for path, text in files.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


# -- mutants ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutant:
    kind: str
    path: str  # tree-relative
    label: str
    old: bytes
    new: bytes
    flip: object = None  # a bench_precision Mutant, applied to `old` when picked
    added: bool = False  # `path` is a new file (`old` empty): reverting removes it

    def made(self) -> Mutant | None:
        """With `new` computed (None when the flip does not parse)."""
        if self.flip is None:
            return self
        new = self.flip.apply(self.old.decode()).encode()  # type: ignore[attr-defined]
        try:
            ast.parse(new)
        except SyntaxError:
            return None
        return Mutant(self.kind, self.path, self.label, self.old, new)


@functools.cache  # (per parsed module: AST nodes hash by identity)
def _functions(module: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(module) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def _is_fixture(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for dec in fn.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        text = ast.unparse(target)
        if text.endswith("fixture") or text.endswith("yield_fixture"):
            return True
    return False


def _within(line: int, fns: Sequence[ast.AST]) -> bool:
    return any(
        f.lineno <= line <= (f.end_lineno or f.lineno)  # type: ignore[attr-defined]
        for f in fns
    )


def _flip_mutants(tree: Path, folder: str, kind: str, keep: object) -> Iterator[Mutant]:
    """bench_precision's single-point flips under `folder`, those `keep(path, line, module)`."""
    parsed: dict[str, tuple[bytes, ast.Module]] = {}
    for m in flips(tree, folder):
        if m.path not in parsed:
            raw = (tree / m.path).read_bytes()
            parsed[m.path] = (raw, ast.parse(raw))
        raw, module = parsed[m.path]
        if keep(m.path, m.line, module):  # type: ignore[operator]
            yield Mutant(kind, m.path, m.label, raw, b"", m)  # `new` made when picked


def _string_constants(tree: Path, folder: str) -> Iterator[Mutant]:
    """Module-level `NAME = "text"` assignments (not __version__ and friends), text changed."""
    for path in sorted((tree / folder).rglob("*.py")):
        rel = path.relative_to(tree).as_posix()
        raw = path.read_bytes()
        module = ast.parse(raw)
        for stmt in module.body:
            if not isinstance(stmt, ast.Assign | ast.AnnAssign) or stmt.value is None:
                continue
            value = stmt.value
            if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                continue
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            names = [ast.unparse(t) for t in targets]
            if any(n.startswith("__") for n in names) or value.end_col_offset is None:
                continue
            lines = raw.decode().splitlines(keepends=True)
            if value.lineno != value.end_lineno:
                continue
            line = lines[value.lineno - 1].encode()
            new_line = (
                line[: value.col_offset]
                + repr(value.value + "~").encode()
                + line[value.end_col_offset :]
            )
            lines[value.lineno - 1] = new_line.decode()
            label = f"{rel}:{value.lineno} {names[0]} = {value.value[:20]!r} + '~'"
            yield Mutant("constant", rel, label, raw, "".join(lines).encode())


def _fixture_returns(tree: Path, folder: str) -> Iterator[Mutant]:
    """`return X` / `yield X` in a fixture -> `... None`."""
    for path in sorted((tree / folder).rglob("*.py")):
        rel = path.relative_to(tree).as_posix()
        raw = path.read_bytes()
        module = ast.parse(raw)
        for fn in _functions(module):
            if not _is_fixture(fn):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, ast.Return | ast.Yield) or node.value is None:
                    continue
                if isinstance(node.value, ast.Constant) and node.value.value is None:
                    continue
                v = node.value
                if v.end_lineno is None or v.end_col_offset is None:
                    continue
                lines = raw.decode().splitlines(keepends=True)
                start = sum(len(x) for x in lines[: v.lineno - 1]) + _char(
                    lines[v.lineno - 1], v.col_offset
                )
                end = sum(len(x) for x in lines[: v.end_lineno - 1]) + _char(
                    lines[v.end_lineno - 1], v.end_col_offset
                )
                text = raw.decode()
                new = (text[:start] + "None" + text[end:]).encode()
                label = f"{rel}:{node.lineno} fixture {fn.name}: {type(node).__name__} None"
                yield Mutant("fixture", rel, label, raw, new)


def _char(line: str, offset: int) -> int:
    return len(line.encode()[:offset].decode(errors="ignore"))


_NOT_DATA = {".py", ".pyc", ".pyi", ".typed", ".toml", ".cfg", ".ini"}


def _data_files(tree: Path, spec: Spec) -> Iterator[Mutant]:
    """Non-Python files in the test folder or the library: text gets a first line, binary is cut
    in half."""
    for folder in (spec.tests, *spec.library):
        for path in sorted((tree / folder).rglob("*")):
            if not path.is_file() or path.suffix in _NOT_DATA or "__pycache__" in path.parts:
                continue
            if ".egg-info" in path.as_posix() or path.name.startswith("."):
                continue
            rel = path.relative_to(tree).as_posix()
            raw = path.read_bytes()
            try:
                raw.decode()
                new, how = b"fidelity mutant\n" + raw, "first line added"
            except UnicodeDecodeError:
                new, how = raw[: len(raw) // 2], "cut in half"
            yield Mutant("data", rel, f"{rel}: {how}", raw, new)


_NOT_CASES = {".py", ".pyc", ".pyi", ".typed"}  # code, stubs and markers: no case files


def _added_case_files(tree: Path, spec: Spec) -> Iterator[Mutant]:
    """For each directory of the test folder or the library holding a file other than Python
    code (test cases, templates, fixtures' data): that directory's first such file copied under
    a new name beside it. Whatever lists the directory sees one more name: a case that
    parametrizes a test, a template a loader lists and compiles."""
    for folder in (spec.tests, *spec.library):
        found: dict[Path, Path] = {}
        for path in sorted((tree / folder).rglob("*")):
            if not path.is_file() or path.suffix in _NOT_CASES or path.parent in found:
                continue
            if "__pycache__" in path.parts or ".egg-info" in path.as_posix():
                continue
            if any(part.startswith(".") for part in path.relative_to(tree).parts):
                continue
            found[path.parent] = path
        for directory, source in sorted(found.items()):
            new = directory / f"fidelity_mutant_{source.name}"
            rel = new.relative_to(tree).as_posix()
            label = f"{rel}: added (a copy of {source.name})"
            yield Mutant("dir", rel, label, b"", source.read_bytes(), added=True)


def candidates(tree: Path, spec: Spec) -> dict[str, list[Mutant]]:
    found: dict[str, list[Mutant]] = {k: [] for k in dict.fromkeys(KINDS)}
    for lib in spec.library:

        def in_function(path: str, line: int, module: ast.Module) -> bool:
            return _within(line, _functions(module))

        def module_level(path: str, line: int, module: ast.Module) -> bool:
            return not _within(line, _functions(module))

        found["function"] += _flip_mutants(tree, lib, "function", in_function)
        # constants only (ints, bools) at module or class level; string constants below
        found["constant"] += [
            m
            for m in _flip_mutants(tree, lib, "constant", module_level)
            if re.search(r" (True|False|\d+)->", m.label)
        ]
        found["constant"] += _string_constants(tree, lib)

    def conftest_code(path: str, line: int, module: ast.Module) -> bool:
        fixtures = [f for f in _functions(module) if _is_fixture(f)]
        return path.endswith("conftest.py") and not _within(line, fixtures)

    def fixture_code(path: str, line: int, module: ast.Module) -> bool:
        return _within(line, [f for f in _functions(module) if _is_fixture(f)])

    found["conftest"] += _flip_mutants(tree, spec.tests, "conftest", conftest_code)
    found["fixture"] += _flip_mutants(tree, spec.tests, "fixture", fixture_code)
    found["fixture"] += _fixture_returns(tree, spec.tests)
    found["data"] += _data_files(tree, spec)
    found["dir"] += _added_case_files(tree, spec)
    for e in spec.edits:
        raw = (tree / e.path).read_bytes()
        if raw.decode().count(e.old) != 1:
            print(f"  {spec.name}: hand-written mutant does not apply: {e.label}", flush=True)
            continue
        new = raw.decode().replace(e.old, e.new).encode()
        found.setdefault(e.kind, []).append(Mutant(e.kind, e.path, e.label, raw, new))
    return found


def pick(
    found: dict[str, list[Mutant]], count: int, seed: int, kinds: Sequence[str] = KINDS
) -> list[Mutant]:
    """`count` mutants drawn in the order of KINDS (those in `kinds`), cycled."""
    rng = random.Random(seed)
    pools = {k: list(v) for k, v in found.items()}
    order = [k for k in KINDS if k in kinds] or list(KINDS)
    chosen: list[Mutant] = []
    for i in range(count * 3):
        if len(chosen) == count:
            break
        kind = order[i % len(order)]
        pool = pools.get(kind) or pools["function"]
        while pool:
            made = pool.pop(rng.randrange(len(pool))).made()
            if made is not None:
                chosen.append(made)
                break
    return chosen


# -- outcomes and comparison -----------------------------------------------------------------------


def read_report(path: Path) -> dict[str, str] | None:
    """The report plugin's node id -> JUnit category (every pytest session of the command), or
    None when no session finished."""
    sessions = read_sessions(path)
    if sessions is None:
        return None
    found: dict[str, str] = {}
    for nodes in sessions:
        found.update(nodes)
    return found


def read_sessions(path: Path) -> list[dict[str, str]] | None:
    """Each pytest session of the command that ran a test, in order: node id -> category. A
    `maestro test`'s first is the run it planned; later ones re-run what it doubted (a failure
    in part of a file, confirmed up to it) or what read a variable pytest did not get."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    sessions: list[dict[str, str]] = []
    for line in lines:
        try:
            nodes = {n: _category(o) for n, o in json.loads(line)["nodes"].items()}
        except (ValueError, KeyError, AttributeError):
            continue
        if nodes:
            sessions.append(nodes)
    return sessions


def read_junit(path: Path) -> dict[str, str] | None:
    """Maestro's JUnit file (cached and fresh results) as node id -> category."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    found: dict[str, str] = {}
    for case in root.iter("testcase"):
        file, classname = case.get("file", ""), case.get("classname", "")
        name = case.get("name", "")
        module = file.removesuffix(".py").replace("/", ".")
        if not classname and name == module:  # a file's own result, named as pytest names it
            node = file
        else:
            classes = classname[len(module) :].lstrip(".")
            node = "::".join([file, *(classes.split(".") if classes else []), name])
        if case.find("failure") is not None:
            found[node] = "failed"
        elif case.find("error") is not None:
            found[node] = "error"
        elif case.find("skipped") is not None:
            found[node] = "skipped"
        else:
            found[node] = "passed"
    return found


@dataclass
class Mismatch:
    scenario: str
    category: str
    node: str
    maestro: str  # outcome, "(served)" when Maestro's pytest did not run the node
    pytest: str
    pytest_flaky: bool = False  # a plain pytest re-run of the node gave Maestro's outcome


def classify(maestro: str | None, pytest: str | None) -> str | None:
    if maestro == pytest:
        return None
    if maestro is None:
        return "MISSING"
    if pytest is None:
        return "EXTRA"
    if maestro == "passed" and pytest in ("failed", "error"):
        return "STALE PASS"
    if maestro in ("failed", "error") and pytest == "passed":
        return "FALSE FAILURE"
    return "other"


def compare(
    scenario: str, maestro: dict[str, str], ran: set[str], pytest: dict[str, str], flaky: set[str]
) -> list[Mismatch]:
    out = []
    for node in sorted((set(maestro) | set(pytest)) - flaky):
        m, p = maestro.get(node), pytest.get(node)
        cat = classify(m, p)
        if cat is not None:
            shown = f"{m}{'' if node in ran else ' (served)'}" if m else "-"
            out.append(Mismatch(scenario, cat, node, shown, p or "-"))
    return out


# -- one project -----------------------------------------------------------------------------------


@dataclass
class MutantResult:
    kind: str
    label: str
    pytest_failing: int = 0
    maestro_files: int = 0
    maestro_nodes: int = 0
    maestro_planned: tuple[int, int] = (0, 0)  # files, nodes of its first pytest session
    testmon_files: int = 0
    testmon_nodes: int = 0
    maestro_misses: int = 0  # failing under pytest, not run by Maestro's pytest
    testmon_misses: int = 0  # failing under pytest, not run by testmon
    revert_files: int = 0  # what Maestro's pytest ran after the mutant was undone
    revert_nodes: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    revert_mismatches: list[Mismatch] = field(default_factory=list)
    note: str = ""
    times: dict[str, float] = field(default_factory=dict)


@dataclass
class ProjectResult:
    name: str
    skipped: str = ""
    nodes: int = 0
    files: int = 0
    flaky: list[str] = field(default_factory=list)
    pytest_failing: int = 0  # pristine tree
    times: dict[str, float] = field(default_factory=dict)
    first: list[Mismatch] = field(default_factory=list)
    nochange: list[Mismatch] = field(default_factory=list)
    nochange_ran: tuple[int, int] = (0, 0)  # Maestro's files, nodes
    testmon_nochange_ran: int = 0
    mutants: list[MutantResult] = field(default_factory=list)


class Bench:
    """The commands of one project: plain pytest, testmon and `maestro test`, same environment."""

    def __init__(self, spec: Spec, tree: Path, timeout: float) -> None:
        self.spec, self.tree, self.timeout = spec, tree, timeout
        self.last_sessions: list[dict[str, str]] = []
        self.out = tree.parent / "out" / spec.name
        shutil.rmtree(self.out, ignore_errors=True)
        self.out.mkdir(parents=True)
        venv = tree / ".venv"
        self.path_file = venv / "fidelity-report-path"
        # one environment for the three, the user's: Maestro passes pytest what plain pytest
        # in it would read (a variable it withheld and a test read makes it run the file again)
        user = _user_env()
        base = {**user, "VIRTUAL_ENV": str(venv)}
        base["PATH"] = os.pathsep.join(p for p in (str(venv / "bin"), user.get("PATH")) if p)
        self.pytest_env = {**base, "HYPOTHESIS_STORAGE_DIRECTORY": str(self.out / "hyp-pytest")}
        self.testmon_env = {**base, "TESTMON_DATAFILE": str(self.out / "testmondata")}
        self.testmon_env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(self.out / "hyp-testmon")
        state = self.out / "maestro"
        self.maestro_env = {
            k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "COLUMNS", "LINES")
        }
        self.maestro_env.update(
            MAESTRO_CACHE_DIR=str(state / "cache"), MAESTRO_STATE_DIR=str(state / "state"),
            MAESTRO_DAEMON="off",
        )  # fmt: skip
        self.args = [f"--rootdir={tree}", *spec.pytest_args]
        self.python = str(venv / "bin/python")
        self.n = 0

    def _start(self, what: str) -> tuple[Path, Path]:
        """A fresh report file, named to the plugin; the command's log file."""
        self.n += 1
        # kept beside the log: which nodes each command ran, for a per-mutant look afterwards
        report = self.out / f"{self.n:03d}-{what}.jsonl"
        report.unlink(missing_ok=True)
        self.path_file.write_text(str(report), encoding="utf-8")
        return report, self.out / f"{self.n:03d}-{what}.log"

    def pytest(
        self, what: str, testmon: bool = False, nodes: Sequence[str] = ()
    ) -> tuple[Ran, dict[str, str] | None]:
        report, log = self._start(what)
        env = self.testmon_env if testmon else self.pytest_env
        cmd = [self.python, "-m", "pytest", "-q", *self.args]
        cmd += ["--testmon"] if testmon else ["-p", "no:cacheprovider"]
        ran = run([*cmd, *nodes], self.tree, env, self.timeout, log)
        return ran, None if ran.timed_out else read_report(report)

    def maestro(
        self, what: str, *, daemon: bool = False
    ) -> tuple[Ran, dict[str, str] | None, dict[str, str]]:
        """(the run, Maestro's JUnit outcomes, what its own pytest ran: node -> outcome); with
        ``daemon``, through the workspace daemon (``daemon("start")`` started it). The last
        report's sessions stay in ``last_sessions``."""
        report, log = self._start(what)
        junit = self.out / "maestro.xml"
        junit.unlink(missing_ok=True)
        cmd = [sys.executable, "-c", MAESTRO_CODE, "test", "--root", str(self.tree)]
        cmd += [] if daemon else ["--no-daemon"]
        cmd += ["--junit-xml", str(junit)]
        cmd += ["--", *self.spec.pytest_args] if self.spec.pytest_args else []
        env = self.daemon_env() if daemon else self.maestro_env
        ran = run(cmd, self.tree, env, self.timeout, log)
        self.last_sessions = [] if ran.timed_out else read_sessions(report) or []
        if ran.timed_out:
            return ran, None, {}
        return ran, read_junit(junit), read_report(report) or {}

    def daemon_env(self) -> dict[str, str]:
        return {k: v for k, v in self.maestro_env.items() if k != "MAESTRO_DAEMON"}

    def daemon(self, command: str) -> Ran:
        """`maestro daemon start|stop` for the tree (its state under the bench's state dir)."""
        cmd = [sys.executable, "-c", MAESTRO_CODE, "daemon", command, "--root", str(self.tree)]
        return run(cmd, self.tree, self.daemon_env(), self.timeout)

    def wait_retraced(self, timeout: float) -> float:
        """Seconds until the daemon's log says it re-recorded the first run's files; NaN if
        it did not within `timeout`."""
        from maestro.daemon.address import LOG_NAME

        start = time.monotonic()
        state = Path(self.maestro_env["MAESTRO_STATE_DIR"])
        while time.monotonic() - start < timeout:
            for log in state.rglob(LOG_NAME):
                if "re-recorded " in log.read_text(encoding="utf-8", errors="replace"):
                    return time.monotonic() - start
            time.sleep(0.5)
        return float("nan")

    def confirm(self, what: str, mismatches: list[Mismatch]) -> None:
        """Re-run the nodes of outcome mismatches with plain pytest (twice, same tree): a node
        that then gives Maestro's outcome is marked pytest_flaky (flaky or order-dependent)."""
        todo = [m for m in mismatches if m.category in ("STALE PASS", "FALSE FAILURE", "other")]
        if not todo:
            return
        nodes = sorted({m.node for m in todo})[:300]
        seen: dict[str, set[str]] = {}
        for k in range(2):
            _, got = self.pytest(f"{what}-confirm{k}", nodes=nodes)
            for node, outcome in (got or {}).items():
                seen.setdefault(node, set()).add(outcome)
        for m in todo:
            if m.maestro.split()[0] in seen.get(m.node, set()):
                m.pytest_flaky = True


def copy_sqlite(src: Path, dst: Path) -> None:
    """`dst` := what a reader of the SQLite database `src` sees. testmon keeps its database in WAL
    mode and its process may exit without a checkpoint: copying the file alone drops the writes
    still in `src`-wal, and a `dst`-wal left by an earlier run would be replayed into the copy."""
    for stale in (dst, *(dst.with_name(dst.name + s) for s in ("-wal", "-shm", "-journal"))):
        stale.unlink(missing_ok=True)
    with (
        contextlib.closing(sqlite3.connect(src)) as source,
        contextlib.closing(sqlite3.connect(dst)) as copy,
    ):
        source.backup(copy)


def _files(nodes: Sequence[str] | set[str] | dict[str, str]) -> int:
    return len({n.split("::")[0] for n in nodes})


def _failing(outcomes: dict[str, str]) -> set[str]:
    return {n for n, o in outcomes.items() if o in ("failed", "error")}


RETRACE_CODE = """\
import asyncio, contextlib, logging, sys
from pathlib import Path
from maestro.engine.core import Engine
from maestro.engine.retrace import retrace
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
with contextlib.closing(Engine.open(Path(sys.argv[1]))) as engine:
    summary = asyncio.run(retrace(engine, pytest_args=sys.argv[2:]))
print("re-recorded", 0 if summary is None else sum(o.stored for o in summary.files), "files")
"""
"""What a warm daemon does once idle after a run that stored untraced results (Python < 3.12,
engine/retrace.py), run in process by ``--retrace process`` right after the first run."""


def bench_project(
    spec: Spec,
    count: int,
    seed: int,
    python: str,
    timeout: float,
    retrace: str = "",
    kinds: Sequence[str] = KINDS,
) -> ProjectResult:
    res = ProjectResult(f"{spec.name} {spec.version}")
    tree = prepare(spec, python, timeout)
    b = Bench(spec, tree, timeout)
    say = lambda text: print(f"{spec.name}: {text}", flush=True)  # noqa: E731

    # 1. pristine pytest, twice: flaky nodes
    r1, p1 = b.pytest("pytest-1")
    if p1 is None or r1.code not in (0, 1):
        raise Skip(f"plain pytest failed (exit {r1.code}): {r1.out.strip()[-300:]}")
    r2, p2 = b.pytest("pytest-2")
    p2 = p2 or {}
    res.flaky = sorted(n for n in set(p1) | set(p2) if p1.get(n) != p2.get(n))
    flaky = set(res.flaky)
    families = {n.split("[")[0] for n in flaky if "[" in n}  # see mark_flaky_families
    shaky = {n for n in p1 if "[" in n and n.split("[")[0] in families}
    res.nodes = len(p1)
    res.files = _files(p1)
    res.pytest_failing = len(_failing(p1))
    res.times["pytest"] = statistics.median([r1.wall, r2.wall])
    say(
        f"{res.nodes} nodes in {res.files} files, {res.pytest_failing} failing, "
        f"{len(flaky)} flaky; pytest {r1.wall:.1f}/{r2.wall:.1f} s"
    )

    # 2./3. Maestro first and no-change runs; testmon's baseline
    if retrace == "daemon":
        started = b.daemon("start")
        if started.code != 0:
            raise Skip(f"maestro daemon start failed: {started.out.strip()[-300:]}")
        time.sleep(3.0)  # the daemon builds its graph (as bench_first_run's SETTLE_S)
    try:
        rm, m1, ran1 = b.maestro("maestro-first", daemon=retrace == "daemon")
        if retrace == "daemon":
            res.times["maestro retrace"] = took = b.wait_retraced(timeout)
            say(f"the daemon re-recorded the first run {took:.1f} s after it")
    finally:
        if retrace == "daemon":
            b.daemon("stop")
    res.times["maestro first"] = rm.wall
    if m1 is None:
        raise Skip(f"maestro test wrote no JUnit (exit {rm.code}): {rm.out.strip()[-300:]}")
    res.first = compare("first run", m1, set(ran1), p1, flaky)
    if retrace == "process":
        _, log = b._start("maestro-retrace")
        cmd = [sys.executable, "-c", RETRACE_CODE, str(tree), *spec.pytest_args]
        rr = run(cmd, tree, b.maestro_env, timeout, log)
        res.times["maestro retrace"] = rr.wall
        say(f"re-recorded traced in {rr.wall:.1f} s (exit {rr.code}): {rr.out.strip()[-200:]}")
    rm2, m2, ran2 = b.maestro("maestro-nochange")
    res.times["maestro no-change"] = rm2.wall
    if m2 is None:
        raise Skip(f"maestro no-change run wrote no JUnit (exit {rm2.code})")
    res.nochange = compare("no-change", m2, set(ran2), p1, flaky)
    res.nochange_ran = (_files(ran2), len(ran2))
    b.confirm("pristine", res.first + res.nochange)
    say(
        f"maestro first {rm.wall:.1f} s ({len(res.first)} mismatches), no-change "
        f"{rm2.wall:.1f} s ({len(res.nochange)} mismatches, ran {res.nochange_ran})"
    )
    tm_data = b.out / "testmondata"
    rt, _ = b.pytest("testmon-first", testmon=True)
    res.times["testmon first"] = rt.wall
    rt2, t2 = b.pytest("testmon-nochange", testmon=True)
    res.times["testmon no-change"] = rt2.wall
    res.testmon_nochange_ran = len(t2 or {})
    testmon_ok = tm_data.exists() and not rt.timed_out
    if testmon_ok:
        copy_sqlite(tm_data, b.out / "testmondata.base")
    say(f"testmon first {rt.wall:.1f} s, no-change {rt2.wall:.1f} s")

    # 4. mutants
    chosen = pick(candidates(tree, spec), count, seed, kinds)
    for i, mutant in enumerate(chosen):
        mr = MutantResult(mutant.kind, mutant.label)
        res.mutants.append(mr)
        target = tree / mutant.path
        tag = f"m{i:02d}"
        try:
            target.write_bytes(mutant.new)
            rp, pm = b.pytest(f"{tag}-pytest")
            rm, mm, ran = b.maestro(f"{tag}-maestro")
            mr.times = {"pytest": rp.wall, "maestro": rm.wall}
            tm = None
            if testmon_ok:
                copy_sqlite(b.out / "testmondata.base", tm_data)
                rt, tm = b.pytest(f"{tag}-testmon", testmon=True)
                mr.times["testmon"] = rt.wall
            if pm is None or mm is None:
                mr.note = (
                    f"incomplete: pytest {'timed out' if rp.timed_out else f'exit {rp.code}'}, "
                    f"maestro {'timed out' if rm.timed_out else f'exit {rm.code}'}"
                )
            else:
                failing = _failing(pm) - flaky - shaky  # (what a selector must re-run)
                mr.pytest_failing = len(failing)
                mr.mismatches = compare("mutant", mm, set(ran), pm, flaky)
                b.confirm(tag, mr.mismatches)  # (on the mutated tree)
                mr.maestro_files, mr.maestro_nodes = _files(ran), len(ran)
                planned = b.last_sessions[0] if b.last_sessions else {}
                mr.maestro_planned = (_files(planned), len(planned))
                mr.maestro_misses = len(failing - set(ran))
                if tm is not None:
                    mr.testmon_nodes, mr.testmon_files = len(tm), _files(tm)
                    mr.testmon_misses = len(failing - set(tm))
        finally:
            if mutant.added:
                target.unlink(missing_ok=True)
            else:
                target.write_bytes(mutant.old)
        # revert: Maestro must again agree with the pristine run
        rr, mrv, ranv = b.maestro(f"{tag}-maestro-revert")
        if mrv is None:
            mr.note += f"; revert run wrote no JUnit (exit {rr.code})"
        else:
            mr.revert_mismatches = compare("revert", mrv, set(ranv), p1, flaky)
            mr.revert_files, mr.revert_nodes = _files(ranv), len(ranv)
            b.confirm(f"{tag}-revert", mr.revert_mismatches)
        say(
            f"[{i + 1}/{len(chosen)}] {mutant.kind} {mutant.label}: {mr.pytest_failing} failing; "
            f"maestro ran {mr.maestro_files}f/{mr.maestro_nodes}n, testmon "
            f"{mr.testmon_files}f/{mr.testmon_nodes}n; mismatches {len(mr.mismatches)}, "
            f"after revert {len(mr.revert_mismatches)} (ran {mr.revert_files}f/"
            f"{mr.revert_nodes}n) {mr.note}"
        )
    return res


# -- report ----------------------------------------------------------------------------------------


def _counts(ms: Sequence[Mismatch]) -> str:
    """ "N (a stale pass, b missing ...)", not counting the pytest-flaky ones (shown apart)."""
    real = [m for m in ms if not m.pytest_flaky]
    shaky = len(ms) - len(real)
    if not ms:
        return "0"
    by = {c: sum(1 for m in real if m.category == c) for c in CATEGORIES}
    parts = [f"{n} {c.lower()}" for c, n in by.items() if n]
    parts += [f"+{shaky} pytest-flaky"] if shaky else []
    return f"{len(real)} (" + ", ".join(parts) + ")"


def _count(ms: Sequence[Mismatch], category: str) -> str:
    n = sum(1 for m in ms if m.category == category and not m.pytest_flaky)
    shaky = sum(1 for m in ms if m.category == category and m.pytest_flaky)
    return f"{n}" + (f" (+{shaky} pytest-flaky)" if shaky else "")


def _all_mismatches(r: ProjectResult) -> list[tuple[str, Mismatch]]:
    out = [("", m) for m in r.first + r.nochange]
    for mr in r.mutants:
        out += [(mr.label, m) for m in mr.mismatches + mr.revert_mismatches]
    return out


def _mean(xs: Sequence[float]) -> float:
    return statistics.fmean(xs) if xs else 0.0


def summary_row(r: ProjectResult) -> list[str]:
    if r.skipped:
        return [r.name, f"skipped: {r.skipped[:120]}", *["-"] * 9]
    done = [m for m in r.mutants if not m.note.startswith("incomplete")]
    mism = [m for mr in r.mutants for m in mr.mismatches + mr.revert_mismatches]
    t = r.times
    return [
        r.name,
        f"{r.nodes} ({len(r.flaky)} flaky)",
        _counts(r.first),
        _counts(r.nochange),
        f"{len(done)}/{len(r.mutants)}",
        _count(mism, "STALE PASS"),
        _count(mism, "FALSE FAILURE"),
        f"{_mean([m.maestro_files for m in done]):.1f} / "
        f"{_mean([m.maestro_nodes for m in done]):.0f} "
        f"(planned {_mean([m.maestro_planned[0] for m in done]):.1f} / "
        f"{_mean([m.maestro_planned[1] for m in done]):.0f}) vs "
        f"{_mean([m.testmon_files for m in done]):.1f} / "
        f"{_mean([m.testmon_nodes for m in done]):.0f}",
        f"{sum(m.maestro_misses for m in done)} vs {sum(m.testmon_misses for m in done)}",
        f"{t['maestro first'] / t['pytest']:.2f}x",
        f"{t['maestro first'] / t['testmon first']:.2f}x" if t.get("testmon first") else "-",
    ]


SUMMARY_HEADER = [
    "project", "nodes", "first-run mismatches", "no-change mismatches", "mutants",
    "stale passes", "false failures",
    "files / nodes run per mutant: maestro (its planned run, without confirmations) vs testmon",
    "misses: maestro vs testmon", "first run: maestro / pytest", "maestro / testmon first",
]  # fmt: skip


def project_section(r: ProjectResult, limit: int = 25) -> str:
    if r.skipped:
        return f"### {r.name}\n\nskipped: {r.skipped}"
    t = r.times
    lines = [
        f"### {r.name}",
        "",
        f"{r.nodes} nodes in {r.files} files; {r.pytest_failing} fail or error under plain pytest "
        f"on the pristine tree; {len(r.flaky)} flaky (outcome differed between two pytest runs; "
        f"left out){': ' + ', '.join(r.flaky[:5]) if r.flaky else ''}. Times: pytest "
        f"{fmt_s(t['pytest'])} (median of 2), maestro first {fmt_s(t['maestro first'])}, "
        f"testmon first {fmt_s(t.get('testmon first', 0))}; no-change: maestro "
        f"{fmt_s(t['maestro no-change'])} (ran {plural(r.nochange_ran[0], 'file')}, "
        f"{plural(r.nochange_ran[1], 'node')}), testmon {fmt_s(t.get('testmon no-change', 0))} "
        f"(ran {plural(r.testmon_nochange_ran, 'node')}).",
        "",
    ]
    rows = [
        [
            m.kind,
            f"`{m.label}`",
            m.pytest_failing if not m.note else m.note,
            f"{m.maestro_files} / {m.maestro_nodes}"
            + (
                f" (planned {m.maestro_planned[0]} / {m.maestro_planned[1]})"
                if m.maestro_planned[1] != m.maestro_nodes
                else ""
            ),
            f"{m.testmon_files} / {m.testmon_nodes}",
            f"{m.maestro_misses} / {m.testmon_misses}",
            _counts(m.mismatches),
            _counts(m.revert_mismatches),
            f"{m.revert_files} / {m.revert_nodes}",
        ]
        for m in r.mutants
    ]
    head = ["kind", "mutant", "failing (pytest)", "maestro ran files / nodes",
            "testmon ran files / nodes", "misses maestro / testmon", "mismatches",
            "after revert", "maestro ran after revert"]  # fmt: skip
    lines += [table(head, rows, "ll" + "r" * 7), ""]
    every = sorted(_all_mismatches(r), key=lambda x: x[1].pytest_flaky)  # defects first
    if not every:
        return "\n".join(lines)
    # One line per (scenario, mutant, category, file, outcomes, flaky): a broken file or run
    # makes thousands of identical mismatches.
    groups: dict[tuple[str, str, str, str, str, str, bool, str], list[str]] = {}
    per_run: dict[tuple[str, str], int] = {}
    for label, m in every:
        per_run[(m.scenario, label)] = per_run.get((m.scenario, label), 0) + 1
    for label, m in every:
        many = per_run[(m.scenario, label)] > 50  # then one line across files
        maestro = m.maestro.replace(" (served)", "")
        served = "served" if "(served)" in m.maestro else ""
        key = (
            m.scenario,
            label,
            m.category,
            "" if many else m.node.split("::")[0],
            maestro,
            m.pytest,
            m.pytest_flaky,
            served,
        )
        groups.setdefault(key, []).append(m.node)
    lines.append(f"Mismatches ({len(every)}, grouped by scenario, category and file):")
    lines.append("")
    for n, ((scenario, label, cat, file, maestro, pytest, shaky, served), nodes) in enumerate(
        groups.items()
    ):
        if n == limit:
            lines.append(f"- ... {len(groups) - limit} more groups: see .bench/fidelity/")
            break
        where = f"{scenario} `{label}`" if label else scenario
        files = len({x.split("::")[0] for x in nodes})
        shown = (
            f"`{nodes[0]}`"
            if len(nodes) == 1
            else f"{len(nodes)} nodes of `{file}`"
            if file
            else f"{len(nodes)} nodes in {files} files"
        )
        lines.append(
            f"- {cat}: {where}: {shown}: maestro {maestro}{' (' + served + ')' if served else ''}"
            f", pytest {pytest}"
            + (" (pytest-flaky: a plain re-run gave Maestro's outcome)" if shaky else "")
        )
    return "\n".join(lines)


def mark_flaky_families(r: ProjectResult) -> None:
    """A parametrized test one of whose cases flipped between the two pristine pytest runs is
    flaky as a family: its other cases' mismatches count as pytest-flaky too."""
    families = {n.split("[")[0] for n in r.flaky if "[" in n}
    for _, m in _all_mismatches(r):
        if "[" in m.node and m.node.split("[")[0] in families:
            m.pytest_flaky = True


def report(results: list[ProjectResult]) -> str:
    for r in results:
        mark_flaky_families(r)
    parts = [table(SUMMARY_HEADER, [summary_row(r) for r in results]), ""]
    parts += [project_section(r) + "\n" for r in results]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    global WORK
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    names = [s.name for s in PROJECTS]
    parser.add_argument("--projects", default=",".join(names), help="comma-separated")
    parser.add_argument("--mutants", type=int, default=10, help="mutants per project")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--python", default=DEFAULT_PYTHON, help="makes the project venvs")
    parser.add_argument("--timeout-s", type=float, default=1200.0, help="per command")
    parser.add_argument("--no-write", action="store_true", help="leave docs/BENCHMARKS.md alone")
    parser.add_argument("--jobs", type=int, default=1, help="projects benched at once")
    parser.add_argument("--results", type=Path, default=None, help="JSON out")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help=f"trees, venvs and logs here instead of {WORK} (a bench of its own beside another)",
    )
    parser.add_argument(
        "--kinds",
        default=",".join(dict.fromkeys(KINDS)),
        help="comma-separated mutant kinds to draw (in the order of KINDS; e.g. dir)",
    )
    parser.add_argument(
        "--retrace",
        choices=("process", "daemon"),
        default="",
        help="re-record the untraced first run (Python < 3.12) before the mutants: 'process' runs "
        "the idle daemon's job in process after it; 'daemon' makes the first run through a "
        "daemon and waits for the daemon to do it (the later runs stay in process)",
    )
    ns = parser.parse_args(argv)
    if ns.work_dir is not None:
        WORK = ns.work_dir.resolve()
    kinds = [k.strip() for k in ns.kinds.split(",") if k.strip()]
    if set(kinds) - set(KINDS):
        parser.error(f"unknown kinds {sorted(set(kinds) - set(KINDS))}; known: {', '.join(KINDS)}")
    ns.results = ns.results or work_dir(ns.python) / "results.json"
    wanted = [p.strip() for p in ns.projects.split(",") if p.strip()]
    unknown = set(wanted) - set(names)
    if unknown:
        parser.error(f"unknown projects {sorted(unknown)}; known: {', '.join(names)}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # runs the `finally` that reverts
    started = time.monotonic()
    specs = [s for s in PROJECTS if s.name in wanted]
    results = _in_parallel(specs, ns) if ns.jobs > 1 else []
    if results:
        ns.results.write_text(json.dumps([asdict(x) for x in results], indent=1), encoding="utf-8")
    for spec in specs if ns.jobs <= 1 else []:
        t0 = time.monotonic()
        try:
            r = bench_project(spec, ns.mutants, ns.seed, ns.python, ns.timeout_s, ns.retrace, kinds)
        except Skip as exc:
            r = ProjectResult(f"{spec.name} {spec.version}", skipped=str(exc))
            print(f"{spec.name}: skipped: {exc}", flush=True)
        except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
            r = ProjectResult(f"{spec.name} {spec.version}", skipped=f"bench error: {exc!r}")
            print(f"{spec.name}: bench error: {exc!r}", flush=True)
        print(f"{spec.name}: {time.monotonic() - t0:.0f} s", flush=True)
        results.append(r)
        ns.results.parent.mkdir(parents=True, exist_ok=True)
        ns.results.write_text(json.dumps([asdict(x) for x in results], indent=1), encoding="utf-8")
    body = report(results)
    print(body)
    took = time.monotonic() - started
    print(f"bench took {took:.0f} s")
    full = set(wanted) == set(names) and ns.mutants >= 10 and set(kinds) == set(KINDS)
    if ns.no_write or not full:
        return
    command = f".venv/bin/python -m bench.bench_fidelity --mutants {ns.mutants}"
    command += f" --python {ns.python}" if ns.python != DEFAULT_PYTHON else ""
    command += f" --jobs {ns.jobs}" if ns.jobs > 1 else ""
    if ns.seed != 7:
        command += f" --seed {ns.seed}"
    if ns.timeout_s != 1200.0:
        command += f" --timeout-s {ns.timeout_s:g}"
    version = _venv_python(ns.python)
    title = SECTION if ns.python == DEFAULT_PYTHON else f"{SECTION}, on {version}"
    write_section(title, preamble(command, took, version) + "\n\n" + body)


def _venv_python(python: str) -> str:
    """The version the projects' venvs run (the harness's own may differ)."""
    got = subprocess.run([python, "--version"], capture_output=True, text=True, check=False)
    return (got.stdout or got.stderr).strip() or python


def preamble(command: str, took: float, project_python: str) -> str:
    return (
        f"{today()}, {machine()}, projects' venvs on {project_python}, "
        f"maestro at {git_rev('cache', 'daemon', 'graph', 'maestro')}; "
        f"the bench took {took / 60:.0f} min. Reproduce: `{command}`\n\n"
        "Per project: plain pytest twice on the pristine tree (nodes whose outcome differs are "
        "flaky and left out), `maestro test` on an empty cache (first run) and again (no-change "
        "run), then per seeded mutant `maestro test` vs a full plain pytest on the mutated tree "
        "and, after reverting it, `maestro test` vs the pristine run. Outcomes compared node for "
        "node (passed / failed / error / skipped). STALE PASS: Maestro passed, pytest failed; "
        "FALSE FAILURE: the reverse; MISSING / EXTRA: a node only pytest / only Maestro reported; "
        "pytest-flaky: an outcome mismatch where re-running the node alone with plain pytest "
        "(twice, same tree) gave Maestro's outcome, or a case of a parametrized test another case "
        "of which flipped between the two pristine runs (flaky or order-dependent; not counted "
        "as a defect). Files / nodes run: what Maestro's own pytest ran per mutant (the report "
        "plugin runs there too), and what `pytest --testmon` ran from its pristine baseline; "
        "misses: nodes failing under pytest that Maestro's pytest / testmon did not run. Times: "
        "single runs on a shared 2-vCPU host with other jobs (plain pytest first run: median of 2)."
    )


def _load(path: Path) -> list[ProjectResult]:
    results = []
    for raw in json.loads(path.read_text(encoding="utf-8")):
        raw["first"] = [Mismatch(**m) for m in raw["first"]]
        raw["nochange"] = [Mismatch(**m) for m in raw["nochange"]]
        raw["nochange_ran"] = tuple(raw["nochange_ran"])
        mutants = []
        for m in raw["mutants"]:
            m["mismatches"] = [Mismatch(**x) for x in m["mismatches"]]
            m["revert_mismatches"] = [Mismatch(**x) for x in m["revert_mismatches"]]
            mutants.append(MutantResult(**m))
        raw["mutants"] = mutants
        results.append(ProjectResult(**raw))
    return results


def _in_parallel(specs: list[Spec], ns: argparse.Namespace) -> list[ProjectResult]:
    """`ns.jobs` child processes, each benching its share of the projects one after another."""
    groups = [specs[i :: ns.jobs] for i in range(ns.jobs)]
    children = []
    for k, group in enumerate(g for g in groups if g):
        out = ns.results.with_name(f"{ns.results.stem}-{k}.json")
        out.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "bench.bench_fidelity", "--no-write", "--results", str(out)]
        cmd += ["--projects", ",".join(s.name for s in group), "--mutants", str(ns.mutants)]
        cmd += ["--seed", str(ns.seed), "--python", ns.python, "--timeout-s", str(ns.timeout_s)]
        cmd += ["--retrace", ns.retrace] if ns.retrace else []
        cmd += ["--kinds", ns.kinds] + (["--work-dir", str(WORK)] if ns.work_dir else [])
        children.append((out, subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[1])))
    try:
        for _, child in children:
            child.wait()
    finally:
        for _, child in children:
            if child.poll() is None:
                child.terminate()  # SIGTERM: the child reverts its mutant
                child.wait()
    by_name = {r.name: r for out, _ in children if out.exists() for r in _load(out)}
    return [
        by_name.get(f"{s.name} {s.version}")
        or ProjectResult(f"{s.name} {s.version}", skipped="its bench process wrote no result")
        for s in specs
    ]


if __name__ == "__main__":
    main()
