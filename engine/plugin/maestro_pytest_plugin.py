"""Maestro's pytest plugin: streams per-test events as JSON lines to a file descriptor.

Loaded in the *workspace's* interpreter with ``-p maestro_pytest_plugin`` (its directory is put on
PYTHONPATH by the runner), so it must stay a single stdlib-only file that works on Python 3.11+ and
pytest 7+. It never imports maestro.

Events go to the descriptor named by ``MAESTRO_EVENTS_FD``, not to stdout, because tests print.
Without that variable the plugin is inert. Each line is one JSON object with ``"event"`` and
``"v": 1``: ``session_start``, ``collected``, ``test_start``, ``test_result``, ``test_trace``
(after each ``test_result``), ``file_deps`` (once per test file, after its last test or at session
end), ``session_trace`` and ``session_end``.

Function-level tracing (``test_trace``/``session_trace``): which functions under the rootdir each
test node executed, as (workspace-relative file, ``co_qualname``). On 3.12+ with ``sys.monitoring``
(a PY_START callback that returns DISABLE sees each code object once; code a record names
then gets a second tool's local PY_START, which reports every call into it); on 3.11 with
cProfile's C profile hook (``subcalls=False, builtins=False``), whose per-function entries are
harvested and cleared when a window closes: about half the cost of a Python ``sys.setprofile``
callback, which remains the hook of other threads (rootdir filtering happens once per code
object, when a window closes).
Lambdas, comprehensions and generator expressions are reported as the function they are written
in. Code run while a test file (or one of its classes) is collected goes to that file's
``file_deps`` (``functions``: its module's top level, parametrize lists, collection hooks);
code run while a workspace module is imported (in a collection or in a test: see ``_Imports``)
and code run outside any test and file (conftest, plugin set-up, session hooks) go to
``session_trace``; code run while a higher-scoped fixture is set up is also
attributed to every later test that uses that fixture. ``MAESTRO_TRACE=off`` disables tracing,
``MAESTRO_TRACE=lsprof`` / ``MAESTRO_TRACE=profile`` force the cProfile / Python-callback hook;
``MAESTRO_TRACE=lines`` before 3.12 adds a ``sys.settrace`` record of the lines functions run
outside the tests (slow: the daemon's re-recording of an untraced run uses it).

Selection: ``MAESTRO_SELECT`` names a JSON file ``{"scores": {node id: P(fail)}, "deselect":
[node id], "until": [node id], "only": [node id]}`` from the runner. The tests are deselected
by exact id (and, in a file ``only`` names tests of, the tests none of them takes: the runner
names such a file whole so that pytest imports it in order) and put most-likely-failure first
without splitting a module or class (``fail_first``); an unreadable file is ignored.

Dynamic dependencies: an audit hook records ``open`` events while a test file is collected
(imported) and while its tests run; modules first imported in those windows come from a
``sys.modules`` diff (the ``import`` audit event misses ``importlib.import_module`` of a top-level
name). Directories of the workspace that workspace code lists (``os.listdir``, ``os.scandir``
and the walks, globs and ``pathlib`` iterations made of them) are inputs as ``dir:<path>``: a
file added or removed there can add, drop or change a test. Known limits:

- A module already imported by an earlier test file (or by conftest / plugins) is not imported
  again, so each file's module list only sees *first* imports; static import analysis covers the
  rest. Reading a ``.py`` file through a cached ``.pyc`` is reported as the ``.py`` source.
- Session-scoped fixtures set up during a file's first test are attributed to that file; conftest
  imports happen outside any file's window and are not attributed.
- Files opened for writing only are not dependencies and are ignored. Listings made by the
  import system, ``importlib.metadata``, pytest and pluggy are not recorded (what they see is
  keyed otherwise), nor listings of installed code.
- The audit hook cannot be removed: after the session it returns at its first check.
- Under a runner, pytest-xdist does not distribute (its workers would not be recorded): the
  tests run in the pytest process, as with ``-n 0``.
"""

# os.path on plain strings: the audit hook runs on every open() and must stay cheap.
from __future__ import annotations

import atexit
import collections
import contextlib
import cProfile
import functools
import getpass
import json
import linecache
import os
import platform
import shutil
import stat
import sys
import tempfile
import threading
import time
import warnings
import zipimport
from collections.abc import Callable, Sequence
from types import BuiltinFunctionType, CodeType, FunctionType, MethodType, ModuleType
from typing import Any

import _pytest
import _pytest.runner as _pytest_runner

# The directory of this file is on PYTHONPATH (the runner puts it there): siblings import as such.
import maestro_collect_probe  # type: ignore[import-not-found,unused-ignore]
import maestro_lifeline  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
import maestro_record as rec  # type: ignore[import-not-found,unused-ignore]
import maestro_retain  # type: ignore[import-not-found,unused-ignore]
import pluggy
import pytest

VERSION = 1
_LISTED = "dir:"  # the graph's name of a workspace directory's listing
ENV_FD = "MAESTRO_EVENTS_FD"
ENV_OWN_DIRS = "MAESTRO_OWN_DIRS"  # Maestro's cache and state: written every run, nobody's input
ENV_RUN_CHILD_DIR = "MAESTRO_RUN_CHILD_DIR"  # the runner's children's folder (its CHILD_DIR_ENV)
_MAX_CAPTURE = 16 * 1024  # per stream, per test
_MAX_LONGREPR = 16 * 1024
_MAX_MESSAGE = 1000
# the warnings pytest's summary would show, as it words them: this many messages, each cut
_MAX_WARNINGS_SHOWN = 500
_MAX_WARNING_TEXT = 4000
# pytest lists a message's locations while fewer than this, then counts them by file
_LOCATIONS_LISTED = 10
_EXCLUDED_PARTS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        "site-packages",
        "dist-packages",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".eggs",
        ".hypothesis",
        ".coverage",
    }
)
_SKIP_TYPES: tuple[type[BaseException], ...] = tuple(
    t
    for t in (getattr(pytest.skip, "Exception", None), getattr(pytest.xfail, "Exception", None))
    if t is not None
)
_ROOT_CONFIG = frozenset({"pyproject.toml", "setup.cfg", "tox.ini", "pytest.ini", ".pytest.ini"})
ENV_TRACE = "MAESTRO_TRACE"
ENV_SELECT = "MAESTRO_SELECT"
ENV_BACKGROUND = "MAESTRO_BACKGROUND"  # a run nobody asked for (the runner's BACKGROUND_ENV)
# The recorder's two sys.monitoring ids, the first two free in this order. Reserved by
# convention: 0 debugger, 1 coverage, 2 profiler (cProfile), 5 optimizer (no tool of CPython
# or a test's uses it here); 3 is Hypothesis's (its explain phase traces a failing example with
# it, and warns when it is taken: an error under filterwarnings=error), so taken last.
_MONITORING_TOOL_IDS = (4, 5, 3)


def _wrapper() -> Callable[[Any], Any]:
    """A hook wrapper whose generator only yields (its result or error passes through):
    new-style where pluggy has them (an old-style one costs a result object and a shim per
    call, and this one wraps every fixture set-up), old-style before pluggy 1.1."""
    try:
        return pytest.hookimpl(wrapper=True)  # type: ignore[no-any-return,unused-ignore]
    except TypeError:
        return pytest.hookimpl(hookwrapper=True)  # type: ignore[no-any-return,unused-ignore]


def _coverage_data_names() -> tuple[str, ...]:
    """The names coverage.py writes its measurements under, each also with its parallel
    (`.coverage.<host>.pid<n>.<random>`) and SQLite journal (`-journal`) suffixes: `.coverage`,
    the file COVERAGE_FILE names, and the running Coverage's `data_file` (pytest-cov's)."""
    bases = {".coverage", os.path.basename(os.environ.get("COVERAGE_FILE", ""))}
    running = getattr(getattr(sys.modules.get("coverage"), "Coverage", None), "current", None)
    with contextlib.suppress(Exception):
        current = running() if running is not None else None
        if current is not None:
            bases.add(os.path.basename(str(current.config.data_file)))
    return tuple(sorted(filter(None, bases)))


def _warnings_log() -> list[Any] | None:
    """The list ``warnings.catch_warnings(record=True)`` is filling now (pytest's, around the
    collection), or None."""
    log = getattr(getattr(warnings, "_showwarnmsg_impl", None), "__self__", None)
    return log if isinstance(log, list) else None


def _is_coverage_data(name: str, bases: tuple[str, ...]) -> bool:
    return name in bases or name.startswith(tuple(base + sep for base in bases for sep in ".-"))


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Window:
    """What happened while one test file was collected or one test ran: raw paths opened for
    reading, programs started, and the module names first imported."""

    __slots__ = (
        "env", "loose", "modules_before", "opened", "own", "paths", "running", "scopes",
        "spawns", "test_file",
    )  # fmt: skip

    def __init__(self, test_file: str, *, modules: bool = False) -> None:
        self.test_file = test_file
        # a workspace module ran its top level outside the import hook (a custom loader, a
        # thread): what this window ran may be that module's import, shared by its importers
        self.loose = False
        self.paths: list[str] = []
        # (program, is Python: a record will come; None: not Python, its reads are known)
        self.spawns: list[tuple[str, bool | None]] = []
        # Only collection windows diff sys.modules (a copy per test costs more than it finds: a
        # module a test imports is read through open(), which the audit hook records).
        self.modules_before: set[str] | None = set(sys.modules) if modules else None
        self.scopes: list[str | None] | None = None  # the session window only
        # files this window wrote afresh (created or truncated) before reading them: what it
        # then reads there is its own output, not an input (a read before the write stays one)
        self.own: set[str] = set()
        # recorded Python children an earlier window started, still running when it opened
        self.running: set[int] = set()
        # when it opened, in the ticks a child's record says it was forked in (None: unknown)
        self.opened = rec.boot_ticks()
        # while a higher-scoped fixture is set up: the variables its code reads (`_note_env`)
        self.env: set[str] | None = None


# The one piece of state the audit hook reads: the current window (a test file's, a test's, or
# the session's outside those); None before the session and after it.
_active: _Window | None = None
# the windows a warning stopped recording in while pytest formats it (`pytest_warning_recorded`)
_FORMATTING: list[_Window | None] = []
_REWRITE_WARNING: Any = getattr(pytest, "PytestAssertRewriteWarning", ())
# Paths opened for writing during the session: what the run itself wrote is no input.
_written: list[str] = []
# What tempfile made during the session (in this process or a recorded child) under a name it
# drew at random: the run's own scratch, whose missing files are no input.
_SCRATCH: set[str] = set()


# (module file, path): the workspace module whose code read the path. A module imported once
# per session, or one that memoises what it read (a lazily loaded table kept in a global), read
# it for every test file that uses it, not only for the one running at the time.
_module_reads: set[tuple[str, str]] = set()
# (module file, module file): a workspace module loaded while the code of another ran (an
# ``import_module(name)`` a cached loader makes): an import the source may not spell
_module_loads: set[tuple[str, str]] = set()
# Is this file workspace code? Set by the recorder once the rootdir is known; code object ->
# its file, or None (memoised: the audit hook walks frames on every read).
_is_workspace: Callable[[str], bool] | None = None
_ROOT = ""  # the rootdir, once the session knows it
_workspace_code: dict[int, str | None] = {}
# Every code object the recorder has met, by id. Code objects compare equal across files (same
# name, first line, bytecode and constants: a vendored copy of an installed module), so every
# set and memo of them is keyed by id; holding them here keeps an id from being reused. (Hashing
# a code object also costs more than hashing its id.)
_CODES: dict[int, Any] = {}
# The key of a code object in every set and memo of them: object.__hash__ is its address,
# rotated (unique among live objects, as id() is), but raises no audit event. id() raises
# "builtins.id", which calls the recorder's audit hook once more: on 3.12 at every call into
# recorded code (each PY_START), and in the frame walk of every read.
_key = object.__hash__
# Does a record name this code object (workspace code, or code outside the workspace that no
# interpreter key covers)? Set by the recorder with the rootdir; the 3.12 tracer asks it once
# per code object.
_recorded: Callable[[Any], bool] | None = None


def _reading_module(frame: Any, code: Any) -> str | None:
    """The workspace module whose code is reading: the innermost workspace frame (a library
    module, a conftest fixture, a helper, the test itself); before the rootdir is known, the
    innermost module being imported. `frame` is the caller of the audited call, running `code`
    (its walkers share that read: each ``f_code`` read is an audit event, this hook again)."""
    check, known, key_of = _is_workspace, _workspace_code, _key
    while True:
        if check is not None:
            key = key_of(code)
            try:
                found = known[key]
            except KeyError:
                _CODES[key] = code  # kept alive: its address, and so its key, stays its own
                found = known[key] = code.co_filename if check(code.co_filename) else None
            if found is not None:
                return found
        elif code.co_name == "<module>":
            # the program's own top level (pytest's __main__) is no import
            return code.co_filename if code.co_filename != _MAIN else None
        frame = frame.f_back
        if frame is None:
            return None
        code = frame.f_code


_MAIN = getattr(sys.modules.get("__main__"), "__file__", None)


def _file_of(module: Any) -> Any:
    """``module.__file__``, or None: a ``sys.modules`` entry may be a dead ``weakref.proxy``
    (jinja2's ModuleLoader puts one there), whose every attribute read raises ReferenceError."""
    try:
        return getattr(module, "__file__", None)
    except Exception:
        return None


_PYTEST_CODE = os.path.join(os.path.dirname(os.path.abspath(_pytest.__file__)), "")
_PYTEST_RUNNER = os.path.join(_PYTEST_CODE, "runner.py")
_PYTEST_TRACEBACKS = os.path.join(_PYTEST_CODE, "_code", "")
_STDLIB = os.path.join(os.path.dirname(os.path.abspath(os.__file__)), "")
_PACKAGES = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")


def _formats_report(frame: Any, code: Any) -> bool:
    """Is pytest's own report of a test phase that raised formatting its traceback (the source
    lines of its frames, through linecache) at `frame`? The test's outcome was decided before,
    by the code that ran (in the node's record); the text only shows it. Only when nothing but
    pytest's and the standard library's code runs between the read and pytest's own
    ``pytest_runtest_makereport``: a hook, a plugin, a custom ``repr_failure``, an exception's
    ``__str__`` or the test formatting a traceback itself reads what it may judge."""
    formats = False
    while True:
        name = code.co_filename
        if name.startswith(_PYTEST_CODE):
            if name == _PYTEST_RUNNER and code.co_name == "pytest_runtest_makereport":
                return formats
            formats = formats or name.startswith(_PYTEST_TRACEBACKS)
        elif not name.startswith(_STDLIB) or any(part in name for part in _PACKAGES):
            return False
        frame = frame.f_back
        if frame is None:
            return False
        code = frame.f_code


def _conftest_scope(frame: Any, code: Any) -> str | None:
    """The directory of the conftest.py whose import-time code is reading, if any: what it
    reads counts for the tests in that directory and below."""
    while True:
        filename = code.co_filename
        if filename.endswith("conftest.py"):
            found: str = rec.abspath(filename)
            return os.path.dirname(found)
        frame = frame.f_back
        if frame is None:
            return None
        code = frame.f_code


def _audit(event: str, args: tuple[Any, ...]) -> None:
    try:
        if event not in _HANDLED:  # most events (attribute reads, id()) are none of ours
            return
    except TypeError:  # the interpreter shuts down: this module's globals are None
        return
    window = _active
    if window is None:
        return
    try:
        if event == "open":
            found = rec.opened(args)
            if found is None:
                return
            if found[1]:
                _written.append(found[0])
                if window is not _SESSION and rec.replaces(args):
                    window.own.add(rec.abspath(found[0]))
                return
            if window.own and rec.abspath(found[0]) in window.own:
                return  # reads back what this window wrote: the window's own output
            # the caller of the audited call, and its code: one read for every walker
            frame = sys._getframe(1)
            code = frame.f_code
            if rec.tempdir_code(code):
                if (made := rec.scratch_made((found[0],))) is not None:
                    _SCRATCH.add(made)
                return
            if window is not _SESSION and _formats_report(frame, code):
                return  # the text of pytest's report, not what the test's outcome came from
            _read(window, (found[0],), frame, code)
        elif event in rec.SPAWN_EVENTS:
            program, python = rec.spawned(event, args)
            child = python  # a Python process, recorded or not: it may outlive the window
            if python and (why := rec.recorder_dropped(event, args, program)) is not None:
                program, python = f"{rec.NO_RECORD}{why}\0{program}", False
            reads = None if python else rec.known_reads(event, args)
            if reads is None and window is _SESSION and rec.vcs_query(event, args):
                # a tool's query of the repository before or between the tests (pytest-benchmark's
                # commit info at start-up): repository metadata is no input, as .git is none;
                # the same query from the workspace's code, a conftest or a test stays opaque
                reads = [] if rec.started_by_installed(rec.caller(1)) else None
            elif not python or window is _SESSION or window.env is not None:
                # the program inherits the environment: what it reads of it is not seen. A
                # Python one reports what it read in its record, taken when the window closes
                # (`_absorb_children`); one started outside every test or by a higher-scoped
                # fixture may serve other windows than the one taking its record
                _note_env(window, _KEYED_WHEN_READ)
            if child and window is _SESSION:
                _stray_started()
            if reads is None:
                window.spawns.append((program, python))
                return
            window.spawns.append((program, None))  # not Python, but what it reads is known
            if reads:
                _read(window, reads)
        elif event in rec.LIST_EVENTS and (check := _is_workspace) is not None:
            listing = rec.listed(args, check)
            if listing is not None:
                _read(window, (listing,))
        elif event == "os.utime" and args and not isinstance(args[0], int):
            # the run set a file's times itself (jinja2's auto-reload tests): its new mtime is no
            # sign of a change made while the tests ran, as for a file the run wrote
            with contextlib.suppress(Exception):
                _written.append(rec.abspath(os.fsdecode(args[0])))
        elif event == "os.rename" and window.own and len(args) == 4 and args[2:] == (-1, -1):
            # os.rename / os.replace of a file this window wrote (an atomic save through a
            # temporary file): the target's content is the window's own output too
            if rec.abspath(args[0]) in window.own:
                target = rec.abspath(args[1])
                window.own.add(target)
                _written.append(target)
        elif event == "exec" and window is not _SESSION and args:
            _module_exec(window, args[0])
        elif event in rec.SCRATCH_EVENTS and (made := rec.scratch_made(args)) is not None:
            _SCRATCH.add(made)
        elif event in rec.HOOK_EVENTS:
            # before 3.12 the recorder's hook is a profile hook too (a Python function in
            # other threads, or in every thread with MAESTRO_TRACE=profile): another one set,
            # even if the recorder's is put back later, ran code unseen
            tracer = _TRACER
            if (
                tracer is not None and tracer.mode in ("lsprof", "profile")
                and rec.hook_set_by_other(sys._getframe(1), _profile)
            ):  # fmt: skip
                _hook_lost()
    except Exception:
        # An audit hook that raises fails the audited operation: never that. What the window
        # depends on is then unknown, so it depends on everything.
        window.spawns.append((_FAILED + event, False))


# A spawn entry that stands for an audit event the recorder could not handle.
_FAILED = "\0recorder failed on "
_FORK = "fork()"  # how the recorder names an os.fork (maestro_record.spawned)
_CHILD_FORK = "\0fork() in a recorded child"


def _ran_unseen(what: str) -> None:
    """A test (or collection) ran a tool whose reads no audit event tells: it is opaque."""
    window = _active
    if window is not None:
        window.spawns.append((rec.UNSEEN + what, False))


_HANDLED = frozenset(
    {"open", "os.utime", "os.rename", "exec", *rec.SPAWN_EVENTS, *rec.LIST_EVENTS,
     *rec.SCRATCH_EVENTS, *rec.HOOK_EVENTS}
)  # fmt: skip


def _read(window: _Window, paths: Sequence[str], frame: Any = None, code: Any = None) -> None:
    """`window` read `paths` (files, or marked listings): each counts for the conftest scope and
    the workspace module of the code reading (the frames above the audited call: `frame`
    running `code`, or this function's caller's caller)."""
    if _ROOT and not any(map(_may_be_inside, paths)):
        # no record names a file outside the rootdir as the workspace's: its reader and conftest
        # scope are never asked for (each takes a walk up the stack, an audit event per frame)
        for path in paths:
            window.paths.append(path)
            if window.scopes is not None:
                window.scopes.append(None)
        return
    if frame is None:
        frame = sys._getframe(2)  # the caller of the audited call (<- the hook <- this)
        code = frame.f_code
    scope = _conftest_scope(frame, code) if window.scopes is not None else None
    reader = _reading_module(frame, code)
    if reader is not None and window.test_file and _ROOT and _is_workspace is not None:
        # a test file's own read, unless the library code reading may keep what it read
        own = os.path.join(_ROOT, window.test_file)
        if rec.abspath(reader) != own and maestro_retain.stays_with_test(frame, own, _is_workspace):
            reader = own
    for path in paths:
        window.paths.append(path)
        if window.scopes is not None:
            window.scopes.append(scope)
        if reader is not None and not (window.test_file and _companion(path, window.test_file)):
            _module_reads.add((reader, path))


def _may_be_inside(path: str) -> bool:
    """Is `path` (an absolute file, or a marked listing) the rootdir or under it once
    normalised, as the recorder resolves it? A relative one is judged where it is read."""
    if path.startswith(rec.LISTING):
        path = path[len(rec.LISTING) :]
    if path[:1] != os.sep:
        return True
    full: str = rec.abspath(path)
    return full == _ROOT or full.startswith(_ROOT + os.sep)


def _companion(path: str, test_file: str) -> bool:
    """Is `path` the test file itself or a file named after it (its golden `F.output`)? Then
    the read is that file's input only, whatever code reads it (a conftest's collector): the
    reading module's importers do not depend on it."""
    if not _ROOT or not os.path.basename(path).startswith(os.path.basename(test_file)):
        return False
    own, full = os.path.join(_ROOT, test_file), str(rec.abspath(path))
    return full == own or (full.startswith(own) and full[len(own) : len(own) + 1] == ".")


def _module_exec(window: _Window, code: Any) -> None:
    """A module's top level starts (the ``exec`` audit event). A workspace module other than
    the window's own test file that the import hook is not loading (a custom loader,
    ``exec_module`` by hand, another thread) makes the window loose: its code may be that
    module's import."""
    hook, check = _IMPORTS, _is_workspace
    if getattr(code, "co_name", None) != "<module>" or hook is None or check is None:
        return
    filename = code.co_filename
    if not check(filename):
        return
    path = rec.abspath(filename)
    if hook.loading and hook.loading[-1] == path:
        return
    if hook.recorder._rel(path) != window.test_file:
        window.loose = True


# importlib's step that executes a found module, wrapped while the session runs. Compiled under
# importlib's own file name: tracebacks of failed imports stay as without it (CPython and pytest
# both drop importlib's frames), and the tracer does not take it for workspace code.
_LOAD_WRAPPER = """
def _load_unlocked(spec):
    token = _enter(spec)
    if token is None:
        return _original(spec)
    try:
        return _original(spec)
    finally:
        _leave(token)
"""


class _LoadHook:
    """importlib's `_load_unlocked` wrapped, while installed, by generated code (`source`,
    compiled under importlib's file name) that calls `_original` and the given `names`."""

    def __init__(self, source: str, names: dict[str, Any]) -> None:
        self._source = source
        self._names = names
        self._bootstrap: Any = None
        self._original: Any = None
        self._wrapper: Any = None

    def install(self) -> None:
        bootstrap = sys.modules.get("_frozen_importlib")
        original = getattr(bootstrap, "_load_unlocked", None)
        if original is None or self._original is not None:
            return
        namespace: dict[str, Any] = {"_original": original, **self._names}
        exec(compile(self._source, "<frozen importlib._bootstrap>", "exec"), namespace)
        self._bootstrap, self._original = bootstrap, original
        self._wrapper = namespace["_load_unlocked"]
        bootstrap._load_unlocked = self._wrapper  # type: ignore[union-attr]

    def uninstall(self) -> None:
        bootstrap, original = self._bootstrap, self._original
        if original is not None and getattr(bootstrap, "_load_unlocked", None) is self._wrapper:
            bootstrap._load_unlocked = original
        self._original = None


class _Imports(_LoadHook):
    """Code run while a workspace module is imported counts for every test of the session.
    The module keeps what its top level built (a table, a registration, a memo), and each
    later importer uses it without running that code again: which test file (or test) imported
    it first is an accident of order. So while a test file is collected or a test runs, the
    import of a workspace module (other than that test file itself) gets its own tracer window,
    which is charged to the session; the rest of the window (the test module's own top level,
    its parametrize lists, collection hooks) stays the test file's or the test's."""

    def __init__(self, recorder: _Recorder) -> None:
        super().__init__(_LOAD_WRAPPER, {"_enter": self.enter, "_leave": self.leave})
        self.recorder = recorder
        self.loading: list[str] = []  # absolute files of the modules being loaded, innermost last
        self._main = threading.get_ident()

    def enter(self, spec: Any) -> set[int] | None:
        """The window the caller had (the import's own starts), or None: not traced apart."""
        try:
            window = _active
            if window is None or window is _SESSION:
                return None
            origin = getattr(spec, "origin", None)
            if not isinstance(origin, str) or not origin.endswith(".py"):
                return None
            path = rec.abspath(origin)
            rel = self.recorder._rel(path)
            if rel is None or rel == window.test_file:
                return None
            if threading.get_ident() != self._main:
                window.loose = True  # its import mixes with whatever the main thread runs
                return None
            tracer = self.recorder._tracer
            if tracer.mode == "off":
                return None
            self.loading.append(path)
            return tracer.swap()
        except Exception:  # never break an import
            return None

    def leave(self, outer: set[int]) -> None:
        with contextlib.suppress(Exception):
            if self.loading:
                self.loading.pop()
            # charged to every file (the importer's included) through the session; kept out
            # of the importer's window, whose code alone joins collection windows
            self.recorder._outside |= self.recorder._tracer.swap(outer)


_IMPORTS: _Imports | None = None

_LOADED_WRAPPER = """
def _load_unlocked(spec):
    module = _original(spec)
    _loaded(spec, module)
    return module
"""


class _Loaded(_LoadHook):
    """Tells the recorder each module loaded, once its top level has run: the state a module
    first imported by a test file's collection had before that file's own code changed it."""

    def __init__(self, loaded: Callable[[Any, Any], None]) -> None:
        super().__init__(_LOADED_WRAPPER, {"_loaded": loaded})


# -- function tracing -----------------------------------------------------------------------------

_FUNCTION = 0x3  # CO_OPTIMIZED | CO_NEWLOCALS: a function's code (not a module's, a class body's)
# Code the interpreter's key covers (the standard library, installed packages) and generated
# code: never a workspace function, whose lines are recorded from before the session
_INSTALLED = (
    "<",
    *{
        os.path.normpath(p) + os.sep
        for p in (sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix)
        if p
    },
)


def _in_test() -> bool:
    """Is a test running (not collection, an import, or the session outside tests)?"""
    window = _active
    if window is None or window is _SESSION or window.modules_before is not None:
        return False
    return not (_IMPORTS is not None and _IMPORTS.loading)


# What the Python profile function saw (code objects by id), folded into the window at every
# window change (3.11: other threads, or every thread with MAESTRO_TRACE=profile).
_seen: dict[int, Any] = {}


def _profile(frame: Any, event: str, arg: Any) -> None:
    if event == "call":
        code = frame.f_code
        _seen[_key(code)] = code


class _Profiler(cProfile.Profile):
    """cProfile's profiler, callable: while it is the hook, ``sys.getprofile()`` returns it, and
    code that saves the hook and puts it back (``previous = sys.getprofile()``, ...,
    ``sys.setprofile(previous)``) installs it as a Python profile function. It then records as
    `_profile` does until the window closes, when ``enable`` takes the C hook back. Called, it
    was put back: what ran while the other hook was set went unseen, so the window (a test's,
    a test file's collection) depends on everything."""

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        _hook_lost()
        _profile(frame, event, arg)


# A spawn entry: the window's code ran a while under another profile hook than the recorder's.
_HOOK_LOST = rec.HOOK_LOST
_hook_lost_in: _Window | None = None  # the last window noted so


def _hook_lost() -> None:
    """The active window (a test's, a test file's collection) ran code under another profile
    hook (set by its code, or none): unseen, so the window depends on everything."""
    global _hook_lost_in
    window = _active
    if window is not _hook_lost_in and window is not None and window is not _SESSION:
        _hook_lost_in = window
        window.spawns.append((_HOOK_LOST, False))


def _alive_codes() -> set[int]:
    """The code of every frame that may run on: this thread's stack and the suspended
    generators and coroutines (a yield fixture torn down later), registered in `_CODES`. A
    frame started while the line tracer was off has no local tracer for the rest of its life."""
    import gc
    import types

    frames: list[Any] = []
    frame: Any = sys._getframe(1)
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    kinds = (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)
    for obj in gc.get_objects():
        if isinstance(obj, kinds):
            frame = getattr(obj, "gi_frame", None) or getattr(obj, "cr_frame", None)
            frame = frame or getattr(obj, "ag_frame", None)
            if frame is not None:
                frames.append(frame)
    keys: set[int] = set()
    for frame in frames:
        key = _key(frame.f_code)
        _CODES[key] = frame.f_code
        keys.add(key)
    return keys


class _Tracer:
    """Code objects executed per window (their ids: see `_CODES`); `swap` starts a new window and
    returns the old one."""

    def __init__(self, mode: str) -> None:
        # lsprof+lines: 3.11's cProfile record plus a ``sys.settrace`` line record (below)
        self.trace_lines = mode == "lsprof+lines"
        self.mode = "lsprof" if self.trace_lines else mode
        self._tool: int | None = None
        self._calls: int | None = None  # monitoring: the tool of the per-window events
        self._armed: set[int] = set()  # code objects with per-window events
        # monitoring: the armed code objects started twice in this window, those whose
        # per-window event a third start turned off, and what the window had when it became
        # current (a window resumed after an import or a fixture's set-up)
        self._again: set[int] = set()
        self._disabled: set[int] = set()
        self._carried: set[int] = set()
        self._prof: _Profiler | None = None
        self.current: set[int] = set()
        # monitoring: the lines each recorded function first started outside a test has run
        # outside the tests, from its first start on (see `_start_monitoring`); the functions
        # that may have run before they were classified; those some of whose lines ran in a
        # test (and are disabled since); and those without a complete line record: run
        # outside the tests after that, or in a window taken for a test that may have been an
        # import
        self.lines: dict[int, set[int]] = {}
        self._line_codes: dict[int, bool] = {}  # lsprof+lines: code -> has a local tracer
        self._line_call: Any = None
        self._lines_lost = False
        self.paused = False  # the hook taken off by `pause`, not by a test
        self._early: set[int] = set()
        self._dirty: set[int] = set()
        self.unknown: set[int] = set()

    def start(self) -> None:
        global _seen
        _seen = {}
        if self.mode == "monitoring":
            mon = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
            free = [t for t in _MONITORING_TOOL_IDS if mon.get_tool(t) is None]
            if len(free) < 2:
                self.mode = "lsprof"
            else:
                self._tool, self._calls = free[0], free[1]
                mon.use_tool_id(self._tool, "maestro")
                mon.use_tool_id(self._calls, "maestro")
        if self.mode == "monitoring" and self._tool is not None and self._calls is not None:
            self._start_monitoring()
        else:  # the threads it starts get a hook: their installs must not race (3.11)
            rec.steady_thread_hooks()
        if self.mode == "lsprof":
            # cProfile's C callback on this thread; other threads keep the Python callback.
            self._prof = _Profiler(subcalls=False, builtins=False)
            threading.setprofile(_profile)
            if self.trace_lines:
                self._start_lines()
            self._prof.enable()
        elif self.mode == "profile":
            sys.setprofile(_profile)
            threading.setprofile(_profile)

    def _start_lines(self) -> None:
        """3.11 has no cheap line event: a ``sys.settrace`` function (every call of every thread
        started from now on; a slow record, made when nobody waits: the daemon re-recording an
        untraced run) gives each function outside the installed prefixes a local tracer that
        keeps the lines it runs outside the tests, whenever its frame started (in the main
        thread: code another thread runs has no line record). A frame that began
        in a test, whose lines are off, and that returns or yields outside the tests may have run
        lines unseen: no line record for it. If another tracer replaced this one (a coverage
        tool, a debugger) some lines went unseen: no line record at all (`lines_complete`)."""
        lines, unknown, wanted, codes = self.lines, self.unknown, self._line_codes, _CODES
        main, ident = threading.get_ident(), threading.get_ident

        def local(frame: Any, event: str, arg: Any) -> Any:
            if event == "line":
                if not _in_test():
                    lines[_key(frame.f_code)].add(frame.f_lineno)
            elif event == "return" and not frame.f_trace_lines and not _in_test():
                unknown.add(_key(frame.f_code))
            return local

        def call(frame: Any, event: str, arg: Any) -> Any:
            code = frame.f_code
            key = _key(code)
            keep = wanted.get(key)
            if keep is None:
                codes[key] = code
                keep = wanted[key] = code.co_flags & _FUNCTION == _FUNCTION and not (
                    code.co_filename.startswith(_INSTALLED)
                )
                if keep:
                    lines.setdefault(key, set())
            if not keep:
                return None
            if ident() != main:  # whether the main thread is in a test tells nothing here
                unknown.add(key)
                return None
            frame.f_trace_lines = not _in_test()
            return local

        self._line_call = call
        sys.settrace(call)
        threading.settrace(call)

    def lines_complete(self) -> bool:
        """Was the line tracer in place all along (checked at each window change)?"""
        return self.trace_lines and not self._lines_lost

    def _start_monitoring(self) -> None:
        """Two tools. The first sees each code object's first start (a global PY_START that
        returns DISABLE, never re-armed): code no record names (pytest's, the standard library's,
        installed packages') costs that one callback for the whole session. Code a record names
        gets the second tool's PY_START as a local event, which also returns DISABLE and is
        re-armed, when a window closes, for the code objects that window saw: one callback per
        window and code object, as with one tool re-armed by ``restart_events`` at each test,
        which however re-instruments every code object a test runs, pytest's included. (A
        callback on every call would be cheaper still, but a test can see it: a RecursionError
        then ends in the callback's frame.)"""
        mon = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
        disable, event, line_event = mon.DISABLE, mon.events.PY_START, mon.events.LINE
        tool, calls, armed, current, codes = self._tool, self._calls, self._armed, self, _CODES
        unrecorded, set_aside = _early_unrecorded(), _SET_ASIDE
        lines, early, dirty, unknown = self.lines, self._early, self._dirty, self.unknown

        def first_start(code: Any, offset: int) -> Any:
            key = _key(code)
            codes[key] = code
            current.current.add(key)
            recorded = _recorded
            function = code.co_flags & _FUNCTION == _FUNCTION
            if recorded is None:
                # before the session (conftests, plugins): classified at a later start; a
                # function of the workspace may run at import time now, its lines with it.
                # Installed code outside the rootdir the runner named is never recorded: it
                # costs one callback, not one per call until the session starts
                if unrecorded is not None and unrecorded(code):
                    set_aside.add(key)
                    return disable
                try:
                    if function and not code.co_filename.startswith(_INSTALLED):
                        # each start before the session comes here (None keeps the event on):
                        # the lines its earlier runs reported are kept (each is reported once)
                        lines.setdefault(key, set())
                        mon.set_local_events(tool, code, line_event)
                    else:
                        early.add(key)
                except Exception:
                    early.add(key)
                return None
            try:
                if recorded(code):
                    mon.set_local_events(calls, code, event)
                    armed.add(key)
                    # a function first run outside a test (an import, a collection) may have
                    # run at import time: its lines tell which of its statements did
                    if function and key not in early and key not in lines and not _in_test():
                        lines[key] = set()
                        mon.set_local_events(tool, code, line_event)
                elif lines.pop(key, None) is not None:
                    mon.set_local_events(tool, code, 0)
            except Exception:  # never break the code under test: ask again at its next start
                return None
            return disable

        def each_line(code: Any, line: int) -> Any:
            # a line a test runs is no import-time line; disabled all the same (one callback
            # per line and session): if the function runs outside the tests again, it has no
            # complete line record (`each_start`)
            if _in_test():
                dirty.add(_key(code))
            else:
                with contextlib.suppress(KeyError):
                    lines[_key(code)].add(line)
            return disable

        def each_start(code: Any, offset: int) -> Any:
            # the event stays on for two starts in a window (most functions a test runs start
            # once or twice) and is turned off at the third, until the window changes: only
            # those are re-armed
            key = _key(code)
            window = current.current
            if key not in window:
                window.add(key)
            elif key not in current._again:
                current._again.add(key)
                if key not in current._carried:
                    return None
            else:
                current._disabled.add(key)
                return disable
            if key in dirty and not _in_test():
                unknown.add(key)  # lines it ran in a test are off: these may go unseen
            return None

        mon.register_callback(self._tool, event, first_start)
        mon.register_callback(self._tool, line_event, each_line)
        mon.register_callback(self._calls, event, each_start)
        mon.set_events(self._tool, event)

    def restart(self, early: set[int]) -> None:
        """Undo every DISABLE (monitoring): each code object reports its next start again;
        ``early`` may have run before that (its lines unrecorded)."""
        self._early |= early
        if self.mode == "monitoring" and self._tool is not None:
            with contextlib.suppress(Exception):
                sys.monitoring.restart_events()  # type: ignore[attr-defined,unused-ignore]

    def _rearm(self) -> None:
        """Re-arm the per-window events a window turned off (setting a code object's local
        events anew clears what DISABLE turned off)."""
        self._again = set()
        taken, self._disabled = self._disabled, set()
        if not taken:
            return
        mon = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
        event, tool, codes = mon.events.PY_START, self._calls, _CODES
        for key in tuple(taken):
            code = codes[key]
            mon.set_local_events(tool, code, 0)
            mon.set_local_events(tool, code, event)

    def _harvest(self, into: set[int]) -> None:
        """Move the code objects cProfile saw since the last harvest into ``into``."""
        prof = self._prof
        if prof is None:
            return
        prof.disable()
        codes = _CODES
        try:
            for entry in prof.getstats():
                code = entry.code
                if not isinstance(code, str):  # str: a built-in (not profiled anyway)
                    key = _key(code)
                    codes[key] = code
                    into.add(key)
        finally:
            prof.clear()

    @staticmethod
    def _take_profiled(into: set[int]) -> None:
        """Move what the Python profile function saw into ``into``."""
        global _seen
        taken, _seen = _seen, {}
        if taken:
            _CODES.update(taken)
            into.update(taken)

    def pause(self) -> bool:
        """Take cProfile's hook off until `resume` (the other modes cost nothing to keep)."""
        if self.mode != "lsprof" or self._prof is None:
            return False
        self._prof.disable()
        self.paused = True
        return True

    def resume(self) -> None:
        self.paused = False
        if self._prof is not None:
            self._prof.enable()

    def swap(self, new: set[int] | None = None) -> set[int]:
        """Make `new` (default: a fresh set) the current window; return the previous one."""
        old = self.current
        self.current = new if new is not None else set()
        if self.mode == "monitoring":
            if self._calls is not None:
                self._carried = set(new) if new else set()
                self._rearm()
        elif self.mode == "lsprof":
            # a test replaced it (the harvest takes it off): enable() takes it back
            lost = not self.paused and sys.getprofile() is not self._prof
            self._harvest(old)
            self._take_profiled(old)
            if lost:
                _hook_lost()
            self._prof.enable()  # type: ignore[union-attr]
            if self._line_call is not None and sys.gettrace() is not self._line_call:
                # replaced for a while (a test's RecursionError inside the tracer ends it, a
                # debugger or coverage tool): what ran in this window, and the frames alive
                # across it, may have run lines unseen; the earlier windows' lines stand
                self.unknown.update(old)
                self.unknown.update(_alive_codes())
                sys.settrace(self._line_call)
        elif self.mode == "profile":
            self._take_profiled(old)
            if sys.getprofile() is not _profile:  # a test replaced it: take it back
                _hook_lost()
                sys.setprofile(_profile)
        return old

    def stop(self) -> None:
        if self.mode == "monitoring" and self._tool is not None:
            mon = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
            with contextlib.suppress(Exception):
                mon.set_events(self._tool, 0)
                for key in self._armed:
                    mon.set_local_events(self._calls, _CODES[key], 0)
                for key in self.lines:
                    mon.set_local_events(self._tool, _CODES[key], 0)
                mon.register_callback(self._tool, mon.events.LINE, None)
                for tool in (self._tool, self._calls):
                    mon.register_callback(tool, mon.events.PY_START, None)
                    mon.free_tool_id(tool)
            self._tool = self._calls = None
            self._armed.clear()
        elif self.mode == "lsprof":
            self._harvest(self.current)
            self._prof = None
            threading.setprofile(None)  # type: ignore[arg-type,unused-ignore]
            self._take_profiled(self.current)
            if self._line_call is not None:
                if sys.gettrace() is self._line_call:
                    sys.settrace(None)
                else:
                    self._lines_lost = True
                threading.settrace(None)  # type: ignore[arg-type,unused-ignore]
                self._line_call = None
        elif self.mode == "profile":
            if sys.getprofile() is _profile:
                sys.setprofile(None)
            threading.setprofile(None)  # type: ignore[arg-type,unused-ignore]
            self._take_profiled(self.current)
        self.mode = "off"


def _argv_rootdir() -> str | None:
    """The ``--rootdir`` of this process's command line (the last one, as pytest takes it), as
    the session's rootpath will be; the runner always names one."""
    found = None
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg.startswith("--rootdir="):
            found = arg.partition("=")[2]
        elif arg == "--rootdir" and i + 1 < len(args):
            found = args[i + 1]
    if not found:
        return None
    return os.path.abspath(os.path.expandvars(found))


_EARLY_ROOT: str | None = None  # the rootdir `_early_unrecorded` assumed
_SET_ASIDE: set[int] = set()  # the code objects it found unrecorded (ids)


def _early_unrecorded() -> Callable[[Any], bool] | None:
    """Before the session, whether a code object is one no record will name (as
    ``_Recorder._name`` decides once the session has its rootdir): generated code, and code
    under the installed environment's prefixes that is not in the rootdir the command line names
    (or is in an environment inside it). None when the command line names none.
    ``pytest_sessionstart`` checks the guess."""
    global _EARLY_ROOT
    root = _argv_rootdir()
    if root is None:
        return None
    _EARLY_ROOT = root
    inside = root + os.sep
    prefixes = {sys.prefix, sys.exec_prefix, sys.base_prefix, os.path.dirname(__file__)}
    excluded = tuple(
        p + os.sep for p in (os.path.normpath(p) for p in prefixes if p) if p.startswith(inside)
    )
    installed: tuple[str, ...] = rec.installed_prefixes()

    def unrecorded(code: Any) -> bool:
        filename: str = code.co_filename
        if not filename or filename.startswith("<"):
            return True
        path: str = rec.abspath(filename)
        if path.startswith(inside) and not path.startswith(excluded):
            return False
        return path.startswith(installed)

    return unrecorded


def _trace_mode() -> str:
    wanted = os.environ.get(ENV_TRACE, "").strip().lower()
    if wanted in ("off", "0", "no", "false"):
        return "off"
    if wanted in ("profile", "lsprof"):
        return wanted
    if wanted == "lines" and not hasattr(sys, "monitoring"):
        return "lsprof+lines"
    if sys.version_info >= (3, 12) and hasattr(sys, "monitoring"):
        return "monitoring"
    return "lsprof"


class _Deps:
    """Accumulated dependencies of one test file, across its collection and its tests."""

    __slots__ = ("collected", "external", "files", "modules", "opaque")

    def __init__(self) -> None:
        self.files: set[str] = set()
        self.collected: set[str] = set()  # read while the file was collected (its tests' too)
        self.modules: dict[str, str] = {}
        self.external: set[str] = set()  # absolute: code outside the workspace, programs run
        self.opaque: dict[str, None] = {}  # why some of what it read cannot be known


def _drop_named_only(config: Any, file_path: Any, outcome: Any) -> None:
    """A file a conftest's collector takes though pytest's own rules do not name it: walking,
    pytest would not also collect it as a Python module (python_files) or a doctest file
    (doctest globs); named on its command line, it would. A file no other collector takes was
    named by the user (`maestro test tests/test.py`): pytest collects it whatever its name."""
    from _pytest.doctest import DoctestTextfile
    from _pytest.pathlib import fnmatch_ex
    from _pytest.python import Module, path_matches_patterns

    drop: list[type] = []
    if file_path.suffix == ".py" and not path_matches_patterns(
        file_path, config.getini("python_files")
    ):
        drop.append(Module)
    globs = config.getoption("doctestglob", None) or ["test*.txt"]
    if not any(fnmatch_ex(glob, file_path) for glob in globs):
        drop.append(DoctestTextfile)
    collectors = outcome.get_result()
    kept = [c for c in collectors if type(c) not in drop]
    if kept and len(kept) != len(collectors):
        outcome.force_result(kept)


class _Ignored(pytest.File):
    """A file Maestro named that pytest's own walk would have skipped: no tests, not imported."""

    def collect(self) -> list[Any]:
        return []


class _Seen:
    """What one window added, resolved: workspace files read, code outside the workspace and
    programs run, functions executed by its child processes, and what could not be recorded."""

    __slots__ = ("external", "files", "functions", "loaded", "opaque")

    def __init__(self) -> None:
        self.files: set[str] = set()
        # workspace modules a child process imported: inputs of the test file, but no node's
        # reads (a node depends on what it ran of them, as on the modules imported here)
        self.loaded: set[str] = set()
        self.external: set[str] = set()
        self.functions: dict[str, set[str]] = {}
        self.opaque: list[str] = []


_DROPPED: set[int] = set()  # `_Recorder._dropping` while the runner's own drop is reported


class _Drop:
    """The runner's drop of the items it does not run, after every other plugin's selection
    (``_Recorder.drop``)."""

    def __init__(self, recorder: _Recorder) -> None:
        self._recorder = recorder

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: Any, items: list[Any]) -> None:
        self._recorder.drop(config, items)


class _Recorder:
    """Pytest hooks. One instance per session; writes events and tracks per-file windows."""

    def __init__(self, stream: Any, children: str, invocation_dir: str = "") -> None:
        self._stream = stream
        self._invocation_dir = invocation_dir
        self._lock = threading.Lock()
        self._start = time.monotonic()
        # a file outside the workspace written since is this run's output, not its input
        self._started_ns = time.time_ns()
        self._root = ""
        self._excluded_prefixes: tuple[str, ...] = ()
        self._coverage_data = _coverage_data_names()
        # a test reads the same few files thousands of times: resolve each path once
        self._rel_memo: dict[str, str | None] = {}
        # per path: does pytest's walk leave it or a folder above it out (collect_ignore ...)
        self._ignored: dict[Any, bool] = {}
        self._installed = rec.installed_prefixes()
        self._temp: tuple[str, ...] = ()  # pytest's temporary directories: test scratch
        self._children = children  # where Python children of the tests leave their records
        self._child_installed: set[str] = set()  # installed modules the children loaded
        self._kept_source_names: set[Any] = set()  # linecache's names found outside the workspace
        self._shielded = False  # the recorder's modules are on pyfakefs's skip list
        self._deps: dict[str, _Deps] = {}
        self._emitted_deps: set[str] = set()
        self._last_item_of_file: dict[str, str] = {}
        self._collect_errors: list[dict[str, Any]] = []
        self._deselected: list[str] = []  # the collected items the runner's selection dropped
        self._dropping: set[int] = set()  # the ids of the items it drops, once others chose
        # test file -> how many of its items the user's selection (-k, -m, a plugin) deselected
        self._user_deselected: dict[str, int] = {}
        self._collecting: dict[str, _Window] = {}
        # pytest collects every file under one warnings context: a file whose import changes
        # the filters changes how the files after it collect (engine/pollution.py)
        self._filters_before: dict[str, tuple[Any, ...]] = {}
        self._polluters: list[str] = []
        # pytest imports every test file before any test runs: a file whose import changes a
        # workspace module's state (a class registry) changes what the tests of the other
        # files see (engine/pollution.py)
        self._state_before: dict[str, tuple[Any, dict[str, _ModuleState]]] = {}
        self._state: dict[str, list[str]] = {}  # test file -> workspace modules it changed
        self._state_new: dict[str, list[str]] = {}  # test file -> those first imported by it
        self._observed: list[str] = []  # test files whose collection was watched
        # the same around each test file's tests: its tests may change what later files see
        self._ran_before: tuple[str, dict[str, _ModuleState]] | None = None
        self._ran_state: dict[str, list[str]] = {}  # test file -> workspace modules changed
        self._ran_names: dict[str, dict[str, list[str]]] = {}  # the same -> names changed
        self._file_ends = False  # the running test is the last of its file
        self._module_names: set[str] = set()  # sys.modules' names, as last seen
        # a workspace module loaded while a test file is collected -> its state once loaded
        self._loaded_states: dict[str, _ModuleState] = {}
        self._loaded_hook = _Loaded(self._module_loaded)
        self._module_files: dict[str, str] = {}  # those of workspace modules -> their files
        self._phases: dict[str, dict[str, Any]] = {}
        self._subtests: dict[str, list[Any]] = {}  # node id -> its subtests' reports, in order
        self._failures: dict[str, Any] = {}
        # how many warnings pytest recorded (what its summary line counts): by node id, and
        # while collecting by the file each points at ("" for none of the workspace's)
        self._warnings: dict[str, int] = {}
        self._collect_warnings: dict[str, int] = {}
        self._rewrite_warnings = 0
        # as pytest's "warnings summary" words them: message -> how many, their locations
        # (while fewer than pytest lists) and how many by file (its count once it stops listing)
        self._warning_texts: dict[str, tuple[list[int], list[str], dict[str, int]]] = {}
        # a test file being collected: the warnings log pytest fills, its length at the start
        # and the file's key; then each warning recorded meanwhile (kept alive) -> that key
        self._log_at: dict[str, tuple[list[Any], int, str]] = {}
        self._warned_in: dict[int, tuple[Any, str]] = {}
        self._items: dict[str, Any] = {}
        self._tracer: _Tracer = _TRACER if _TRACER is not None else _Tracer("off")
        self._before_us: dict[str, list[str]] | None = None  # see `_loaded_before`
        self._outside: set[int] = set()  # code run outside any test window (ids: `_CODES`)
        # test file -> code run while it was collected (its module's own top level, its
        # parametrize lists, collection hooks; workspace imports go to `_outside`)
        self._collect_codes: dict[str, set[int]] = {}
        self._collect_stack: list[str] = []  # file keys of the collection windows open
        self._shared: dict[str, set[int]] | None = None  # `_collect_codes`, joined (once)
        self._names: dict[int, tuple[str, str] | str | None] = {}  # by code object id
        self._not_recorded: set[int] = set()  # code objects whose name is None in _names
        # a test's record of functions by the recorded code it ran: tests of one function
        # (parametrized ones) run the same code; the last few sets, not every one
        self._recent_functions: dict[frozenset[int], tuple[dict[str, list[str]], set[str]]] = {}
        self._file_keys: dict[int, tuple[Any, str]] = {}  # by node id: (node, `_file_key`)
        self._fixtures: dict[
            int, tuple[set[int], list[str], list[tuple[str, bool | None]], set[str]]
        ] = {}
        self._in_test: str | None = None
        self._last = False  # the test running is the session's last

    # -- output -----------------------------------------------------------------------------

    def _emit(self, event: str, *, flush: bool = True, **fields: Any) -> None:
        """Write one event line. ``flush=False`` leaves it in the buffer until the next flushed
        event (the next ``test_start``, the session's end): a write and a wake-up of the
        runner per test instead of one per event."""
        if self._stream is None:
            return
        fields["event"] = event
        fields["v"] = VERSION
        line = _ENCODE(fields) + "\n"
        with self._lock:
            try:
                self._stream.write(line)
                if flush:
                    self._stream.flush()
            except (OSError, ValueError):  # the runner went away: keep the tests running
                self._stream = None

    # -- paths ------------------------------------------------------------------------------

    def _rel(self, path: str) -> str | None:
        """Workspace-relative posix path, or None for anything outside or excluded."""
        try:
            return self._rel_memo[path]
        except KeyError:
            pass
        rel = self._resolve_rel(path)
        if self._root:  # before the session starts nothing is inside
            self._rel_memo[path] = rel
        return rel

    def _resolve_rel(self, path: str) -> str | None:
        root = self._root
        if path.startswith(rec.LISTING):
            directory = os.path.normpath(path[len(rec.LISTING) :])
            inside = "." if directory == root else self._resolve_rel(directory)
            return None if inside is None or not root else _LISTED + inside
        path = os.path.normpath(path)
        if not root or not (path.startswith(root + os.sep)):
            return None
        if self._excluded_prefixes and (path + os.sep).startswith(self._excluded_prefixes):
            return None
        parts = path[len(root) + 1 :].split(os.sep)
        if parts and parts[-1].endswith((".pyc", ".pyo")) and "__pycache__" in parts:
            # A cached module read stands for its source file.
            source = rec.source_of_pyc(path)
            return self._rel(source) if source else None
        if _EXCLUDED_PARTS.intersection(parts):
            return None
        if _is_coverage_data(parts[-1], self._coverage_data):
            # coverage.py's own measurements (pytest-cov writes, stats and combines them
            # during the run, another pytest-cov run in the folder too): no test's input
            return None
        rel = "/".join(parts)
        # a name that is not UTF-8 is no graph input (Maestro reports it), and in a JSON line
        # (as \udcXX) it would make the runner reject the whole event
        return rel if rel.isascii() or _is_utf8(rel) else None

    def _is_workspace_code(self, filename: str) -> bool:
        if not filename.endswith(".py"):
            return False
        rel = self._rel(rec.abspath(filename))
        return rel is not None

    def _external(self, path: str) -> str | None:
        """An absolute file outside the workspace that no interpreter key covers, an input by
        content: code (an editable install, a ``.pth`` or ``sys.path`` entry elsewhere) or data
        (a sibling folder's fixture, a file under the home directory). Not pytest's temporary
        directories, the children's records, installed or bytecode files, or the kernel's."""
        if "\x00" in path:  # a listing's marker (maestro_record.LISTING), never a file
            return None
        path = os.path.normpath(path)
        if path.startswith((self._root + os.sep, *self._temp, *_VIRTUAL)):
            return None
        if path.endswith(".pyc") or (self._children and path.startswith(self._children)):
            return None
        if _is_coverage_data(os.path.basename(path), self._coverage_data):
            return None  # coverage.py's data (COVERAGE_FILE elsewhere): as inside, no input
        if path.startswith(self._installed):
            return None
        try:
            st = _STAT(path)
        except FileNotFoundError:
            # looked for and not there (a configuration file searched for above the project):
            # the test depends on its staying away, unless it was in the run's own scratch
            if _SCRATCH and rec.in_scratch(path, _SCRATCH):
                return None
            return path if os.path.isabs(path) else None
        except (OSError, ValueError):  # unreadable, or a name the OS refuses
            return None
        # pip's self-check file, a tool's cache: made by the run (its children too)
        if not stat.S_ISREG(st.st_mode) or st.st_mtime_ns >= self._started_ns:
            return None
        return path

    def _file_key(self, node: Any) -> str:
        known = self._file_keys.get(_identity(node))
        if known is not None and known[0] is node:
            return known[1]
        # the file that collected it: an item may report another path (PyYAML's legacy items
        # report their data file)
        owner = node.getparent(pytest.File) if hasattr(node, "getparent") else None
        path = str(getattr(owner or node, "path", None) or (owner or node).fspath)
        key = self._rel(path) or path.replace(os.sep, "/")
        if self._root:  # before the session nothing is inside: asked again later
            self._file_keys[_identity(node)] = (node, key)
        return key

    # -- windows ----------------------------------------------------------------------------

    def _open_window(self, test_file: str) -> None:
        global _active
        self._forget_source_text()
        _watch_c_readers(_active)  # loaded outside every window since the last one closed
        if not self._shielded:
            self._shielded = rec.shield_from_fake_fs()
        _active = _Window(test_file)
        _active.running = self._running_children()

    def _running_children(self) -> set[int]:
        """The recorded children running as a window opens (listed every time: a process
        started where no audit event saw it may have started a recorded child since)."""
        if not self._children:
            return set()
        running: set[int] = rec.running_children(self._children)
        return running

    def _forget_source_text(self) -> None:
        """linecache keeps the text of every source file it served (``inspect.getsource``,
        traceback lines) for the rest of the process, so only the first test to ask read the
        file. Forget the workspace's: each test that takes a file's text reads it in its own
        window (execnet ships a module's source to each worker interpreter it starts, which runs
        it as a string: its record names no file)."""
        cache = linecache.cache
        kept = self._kept_source_names  # outside the workspace, by name: kept for good
        for name in cache.keys() - kept:
            entry = cache.get(name)
            # (size, None, lines, name): text registered by a tool for generated code, no file
            if entry is None or (len(entry) > 1 and entry[1] is None):
                continue
            if isinstance(name, str) and os.path.isabs(name) and self._rel(name) is not None:
                cache.pop(name, None)
            else:
                kept.add(name)

    def _close_window(self) -> _Seen:
        global _active
        tracer, hook = self._tracer, sys.getprofile()
        if (tracer.mode == "lsprof" and not tracer.paused and hook is not tracer._prof) or (
            tracer.mode == "profile" and hook is not _profile
        ):
            _hook_lost()  # replaced by the window's code, not put back
        window, _active = _active, _SESSION
        seen = _Seen()
        if window is None or window is _SESSION:
            return seen
        _watch_c_readers(window)
        self._absorb_children(window, seen)
        # a file is looked for or read many times (gettext's catalogues at each message): the
        # same path resolves to the same answer, and one outside the workspace takes a stat
        for raw in dict.fromkeys(window.paths):
            rel = self._rel(raw)
            if rel is not None:
                seen.files.add(rel)
            elif (outside := self._external(raw)) is not None:
                seen.external.add(outside)
        self._spawn_notes(window.spawns, seen)
        deps = self._deps.setdefault(window.test_file, _Deps())
        deps.files |= seen.files | seen.loaded
        if window.modules_before is not None:
            deps.collected |= seen.files | seen.loaded
        deps.external |= seen.external
        deps.opaque.update(dict.fromkeys(seen.opaque))
        before = window.modules_before
        for name in set(sys.modules) - before if before is not None else ():
            module = sys.modules.get(name)
            file = _file_of(module)
            if isinstance(file, str):
                path = rec.abspath(file)
                rel = self._rel(path)
                if rel is not None:
                    deps.modules[name] = rel
                elif (outside := self._external(path)) is not None:
                    deps.external.add(outside)
        return seen

    def _absorb_children(self, window: _Window, seen: _Seen) -> None:
        """Fold the records of the Python processes started in `window` into it; a Python child
        that left none makes the window opaque."""
        expected = sum(1 for _, python in window.spawns if python)
        records = rec.read_records(self._children) if self._children else []
        # one an earlier test started, running all along or ending after this window: what it
        # did for this test is in no record this window gets
        unseen = window.running - {r.get("pid") for r in records}
        if unseen:
            seen.opaque.append(
                f"ran while {len(unseen)} Python process(es) an earlier test started kept "
                "running (a worker or server kept for later tests): what they did for it is "
                "not recorded"
            )
            _note_env(window, _KEYED_WHEN_READ)  # and which variables they read for it
        if not records and not expected:
            return
        self._children_env(window, records, expected)
        for record in records:
            window.paths.extend(p for p in record.get("reads", ()) if isinstance(p, str))
            for path in record.get("loads", ()):
                if isinstance(path, str) and (rel := self._rel(path)) is not None:
                    seen.loaded.add(rel)
                elif isinstance(path, str) and (outside := self._external(path)) is not None:
                    seen.external.add(outside)
            self._child_installed.update(
                m for m in record.get("installed", ()) if isinstance(m, str)
            )
            _written.extend(p for p in record.get("writes", ()) if isinstance(p, str))
            _SCRATCH.update(p for p in record.get("scratch", ()) if isinstance(p, str))
            for program, python in record.get("spawns", ()):
                if program == _FORK:  # the child forked itself, not the test process
                    window.spawns.append((_CHILD_FORK, False))
                elif not python:
                    window.spawns.append((str(program), None if python is None else False))
                expected += bool(python)
            for path, qualnames in (record.get("functions") or {}).items():
                rel = self._rel(path)
                if rel is not None and rel.endswith(".py"):
                    seen.functions.setdefault(rel, set()).update(qualnames)
                elif (outside := self._external(path)) is not None:
                    seen.external.add(outside)
        # only a record of a process this window started stands for one of its children: an
        # earlier window's (ending now) must not hide a child of this one that left none
        if sum(1 for r in records if _started_in(window, r)) < expected:
            _stray_started()  # one may yet start, or end, in a later window
            seen.opaque.append(
                f"started {expected - len(records)} Python process(es) that left no record "
                "(run with -I or -E, a cleared environment, or killed): what they read is unknown"
            )

    def _children_env(self, window: _Window, records: list[dict[str, Any]], expected: int) -> None:
        """Charge `window` with the user's own variables its Python children read, when every
        record taken is surely of a process it started and every one it started left a record;
        else with all of them: a child that left none read what it read unseen. A record is
        the window's when its process was forked after the window opened (a tick later, or
        in that tick when no earlier child may still be starting) by this process or by a
        child that left one of these records."""
        pids = {r.get("pid") for r in records} | {os.getpid()}
        opened = window.opened
        exact = opened is not None and len(records) == expected and not window.running
        found: set[str] = set()
        for record in records if exact and opened is not None else ():
            names, forked = record.get("env"), record.get("forked")
            if (
                not isinstance(names, list) or record.get("ppid") not in pids
                or not isinstance(forked, int) or forked < opened
                or (forked == opened and _stray_children)
            ):  # fmt: skip
                exact = False
                break
            found.update(n for n in names if n in _KEYED_WHEN_READ)
        _note_env(window, found if exact else _KEYED_WHEN_READ)

    def _made_by_run(self, program: str) -> bool:
        """Is `program`, outside the workspace, a file the run made (a script a test rendered
        into a temporary file and ran)? A later run makes its own under another name, so it is
        no input; what went into it came from the run's inputs."""
        path = os.path.normpath(program)
        if path.startswith(self._root + os.sep):
            return False
        if path.startswith(self._temp) or (_SCRATCH and rec.in_scratch(path, _SCRATCH)):
            return True
        try:
            # the link itself: a virtualenv a test made links its python to an older one
            return _LSTAT(path).st_mtime_ns >= self._started_ns
        except (OSError, ValueError):
            return False

    def _spawn_notes(self, spawns: list[tuple[str, bool | None]], seen: _Seen) -> None:
        """Programs a test ran are inputs by content; what a non-Python one reads is unknown
        unless its arguments said it (its reads are then among the window's)."""
        for program, python in dict.fromkeys(spawns):
            if program.startswith(rec.NO_RECORD):
                why, _, program = program[len(rec.NO_RECORD) :].partition("\0")
                seen.opaque.append(
                    f"ran {program} with {why}: it leaves no record, what it read is unknown"
                )
                python = None  # Python, unrecorded: said
            if program.startswith(rec.UNSEEN):
                seen.opaque.append(
                    f"ran {program[len(rec.UNSEEN) :]}, which reads in native code and skips "
                    "what did not change by its times: what it read is unknown"
                )
                continue
            if program == _HOOK_LOST:
                seen.opaque.append(
                    "set another profile hook (sys.setprofile) for a while: what it ran "
                    "meanwhile is unknown"
                )
                continue
            if program.startswith(_FAILED):
                seen.opaque.append(
                    f"Maestro's recorder failed on a '{program[len(_FAILED) :]}' event: "
                    "what it depends on is unknown"
                )
                continue
            if program in (_FORK, _CHILD_FORK):
                what = (
                    "forked the test process"
                    if program == _FORK
                    else ("a Python process it started forked itself")
                )
                seen.opaque.append(
                    f"{what} (a fork is not recorded): what the fork read is unknown"
                )
                continue
            if (
                os.path.isabs(program) and os.path.isfile(program)
                and program != sys.executable and not self._made_by_run(program)
            ):  # fmt: skip
                seen.external.add(program)
            if python is False:
                seen.opaque.append(
                    f"ran {program}, which is not Python: what it reads cannot be recorded"
                )

    # -- function tracing -------------------------------------------------------------------

    def _name(self, code: Any) -> tuple[str, str] | str | None:
        """What a record calls ``code`` (memoised): (workspace file, qualified name), the path
        of code outside the workspace that no interpreter key covers, or None."""
        found: tuple[str, str] | str | None = None
        filename = code.co_filename
        if filename and not filename.startswith("<"):
            path = rec.abspath(filename)
            rel = self._rel(path)
            if rel is not None and rel.endswith(".py"):
                qualname = getattr(code, "co_qualname", code.co_name)
                found = (rel, rec.owner_qualname(qualname))
            elif rel is None:
                found = self._external(path)
        key = _key(code)
        _CODES[key] = code
        self._names[key] = found
        if found is None:
            self._not_recorded.add(key)
        return found

    def _recorded(self, code: Any) -> bool:
        try:
            return self._names[_key(code)] is not None
        except KeyError:
            return self._name(code) is not None

    def _functions(self, codes: set[int], into: _Seen | None = None) -> dict[str, list[str]]:
        """Workspace file -> qualified names of the functions among `codes` (cached per code);
        code outside the workspace and outside the installed environment goes to `into`."""
        # most code a test runs is pytest's and the library's: drop it in one set operation
        ran = codes - self._not_recorded
        recent = self._recent_functions
        same: frozenset[int] | None = None
        if into is not None and not into.functions:
            same = frozenset(ran)
            known = recent.get(same)
            if known is not None:
                into.external |= known[1]
                return known[0]
        names = self._names
        out: dict[str, set[str]] = {}
        external: set[str] = set()
        for key in ran:
            try:
                found = names[key]
            except KeyError:
                found = self._name(_CODES[key])
            if isinstance(found, tuple):
                path, qualname = found
                if (group := out.get(path)) is None:
                    out[path] = {qualname}
                else:
                    group.add(qualname)
            elif found is not None:
                external.add(found)
        if into is not None:
            into.external |= external
            for path, qualnames in into.functions.items():
                out.setdefault(path, set()).update(qualnames)
        functions = {path: sorted(q) for path, q in sorted(out.items())}
        if same is not None:
            if len(recent) >= 64:
                recent.clear()
            recent[same] = (functions, external)
        return functions

    def _import_lines(self) -> dict[str, dict[str, list[int]]]:
        """Workspace file -> function -> the lines it ran, for each function that ran outside
        the tests (imports, collections, the session) and whose every such code object had its
        lines recorded from its first start; a function missing here has no line record."""
        if self._tracer.trace_lines and not self._tracer.lines_complete():
            return {}
        lines, unknown_codes = self._tracer.lines, self._tracer.unknown
        found: dict[tuple[str, str], set[int]] = {}
        unknown: set[tuple[str, str]] = set()
        ran_outside = self._outside.union(*self._collect_codes.values())
        for key in ran_outside - self._not_recorded:
            name = self._names.get(key)
            if not isinstance(name, tuple) or name in unknown:
                continue
            ran = lines.get(key)
            if ran is None or key in unknown_codes:
                unknown.add(name)
                found.pop(name, None)
            else:
                found.setdefault(name, set()).update(ran)
        before_us = self._loaded_before()  # their runs before the recording have no record
        out: dict[str, dict[str, list[int]]] = {}
        for (path, qualname), ran in sorted(found.items()):
            if path not in before_us:
                out.setdefault(path, {})[qualname] = sorted(ran)
        return out

    def _loaded_before(self) -> dict[str, list[str]]:
        """Workspace file -> the functions in it that started before pytest loaded this plugin
        (maestro_early.py noted them; when nothing did, every function of the workspace modules
        loaded by then): pytest parses its ini file (with a workspace's iniconfig) and imports
        the ``-p`` plugins its addopts name, asking them for their options, before it loads us.
        No window saw what that code did: each test file depends on it, and a change to it
        re-runs the file whole."""
        if self._before_us is None:
            global _active
            found: dict[str, set[str]] = {}
            if _EARLY_CODE is not None:
                for code in _EARLY_CODE:
                    rel = self._rel(rec.abspath(code.co_filename))
                    if rel is not None and rel.endswith(".py"):
                        qualname = getattr(code, "co_qualname", code.co_name)
                        found.setdefault(rel, set()).add(rec.owner_qualname(qualname))
            window, _active = _active, None  # reading them is the recorder's, no test's
            try:
                for path in _LOADED_BEFORE:
                    rel = self._rel(rec.abspath(path))
                    if rel is not None and rel.endswith(".py"):
                        found[rel] = _qualnames(path)
            finally:
                _active = window
            self._before_us = {rel: sorted(names) for rel, names in sorted(found.items())}
        return self._before_us

    @_wrapper()
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Any:
        """What a higher-scoped fixture reads, runs and executes counts for every test using it,
        including the tests that get it already set up."""
        __tracebackhide__ = True  # a fixture's error is reported from the fixture, as by pytest
        window = _active
        if self._in_test is None or fixturedef.scope == "function" or window is None:
            return (yield)
        mark, spawn_mark = len(window.paths), len(window.spawns)
        tracing = self._tracer.mode != "off"
        outer = self._tracer.swap() if tracing else set()
        outer_env, window.env = window.env, set()
        try:
            return (yield)
        finally:
            inner = self._tracer.swap(outer) if tracing else set()
            outer |= inner
            env, window.env = window.env, outer_env
            if outer_env is not None:  # a fixture set up inside another's set-up
                outer_env |= env
            record = self._fixtures.setdefault(_identity(fixturedef), (set(), [], [], set()))
            # only what a record may name: every test using the fixture joins this set
            record[0].update(inner - self._not_recorded)
            record[1].extend(window.paths[mark:])
            # a process a fixture starts may outlive the test: its record may come too late
            record[2].extend(
                (p, None if py is None else False) for p, py in window.spawns[spawn_mark:]
            )
            record[3].update(env)

    def _fixture_records(
        self, item: Any
    ) -> tuple[set[int], list[str], list[tuple[str, bool | None]], set[str]]:
        codes: set[int] = set()
        paths: list[str] = []
        spawns: list[tuple[str, bool | None]] = []
        env: set[str] = set()
        if not self._fixtures:
            return codes, paths, spawns, env
        try:
            defs = item._fixtureinfo.name2fixturedefs.values()
        except Exception:  # private API moved: fall back to the test's own record
            return codes, paths, spawns, env
        for chain in defs:
            for fixturedef in chain:
                record = self._fixtures.get(_identity(fixturedef))
                if record is not None:
                    codes |= record[0]
                    paths += record[1]
                    spawns += record[2]
                    env |= record[3]
        return codes, paths, spawns, env

    def _emit_deps(self, test_file: str) -> None:
        if test_file in self._emitted_deps:
            return
        self._emitted_deps.add(test_file)
        deps = self._deps.get(test_file, _Deps())
        before_us = self._loaded_before()
        files = set(deps.files) | before_us.keys()
        # What conftest (or pytest itself) read outside any test counts for the tests in scope.
        here = os.path.join(self._root, test_file)
        session = _SESSION.scopes or []
        for raw, scope in zip(_SESSION.paths, session, strict=False):
            if scope is None or here.startswith(scope + os.sep):
                rel = self._rel(raw)
                # pytest's own configuration: the action key covers its sections
                if rel is not None and not (scope is None and rel in _ROOT_CONFIG):
                    files.add(rel)
        seen = _Seen()
        self._spawn_notes(_SESSION.spawns, seen)
        root = self._root
        collected = self._joined().get(test_file)
        functions = self._functions(collected) if collected else {}
        for rel, qualnames in before_us.items():
            functions[rel] = sorted({*functions.get(rel, ()), *qualnames})
        self._emit(
            "file_deps",
            flush=False,
            path=test_file,
            functions=functions,
            files=sorted(f for f in files if not os.path.isdir(os.path.join(root, f))),
            collected=sorted(deps.collected),
            modules=[{"name": n, "path": p} for n, p in sorted(deps.modules.items())],
            external=sorted((deps.external | seen.external) - set(_written)),
            opaque=[*deps.opaque, *seen.opaque],
            env=sorted(_env_reads.get(test_file, ())),
        )

    def _joined(self) -> dict[str, set[int]]:
        """Each test file's collection code joined with that of every file collected before it
        whose collection ran some of the same workspace code, and so on back (computed once,
        when collection is over): a helper that memoises (a table built for an earlier file's
        parametrize list and served to a later one) ran in full only for the earlier file, and
        a file collected later cannot have fed an earlier one."""
        if self._shared is not None:
            return self._shared
        runners: dict[int, list[str]] = {}  # recorded code -> the files whose collection ran it
        joined: dict[str, set[int]] = {}
        for key, codes in self._collect_codes.items():  # in collection order
            earlier: set[str] = set()
            for code_id in codes:
                if code_id in self._not_recorded or not self._recorded(_CODES[code_id]):
                    continue
                found = runners.setdefault(code_id, [])
                earlier.update(found)
                found.append(key)
            joined[key] = set(codes).union(*(joined[k] for k in earlier))
        self._shared = joined
        return self._shared

    # -- session ----------------------------------------------------------------------------

    def pytest_sessionstart(self, session: Any) -> None:
        rootpath = getattr(session.config, "rootpath", None) or session.config.rootdir
        self._root = os.path.normpath(rec.abspath(str(rootpath)))
        self._rel_memo.clear()
        self._coverage_data = _coverage_data_names()
        prefixes = {sys.prefix, sys.exec_prefix, sys.base_prefix, os.path.dirname(__file__)}
        # Only environments *inside* the workspace matter (a system prefix such as /usr may
        # well contain the workspace itself).
        prefixes.update(os.environ.get(ENV_OWN_DIRS, "").split(os.pathsep))
        inside = (os.path.normpath(rec.abspath(p)) for p in prefixes if p)
        self._excluded_prefixes = tuple(
            p + os.sep for p in inside if p.startswith(self._root + os.sep)
        )
        global _is_workspace, _recorded, _ROOT
        _is_workspace = self._is_workspace_code
        _ROOT = self._root
        # where pytest's tmp_path_factory puts its numbered directories (_pytest/tmpdir.py): the
        # user as getpass names it (the password database when no USER/LOGNAME is set)
        given = os.environ.get("PYTEST_DEBUG_TEMPROOT") or tempfile.gettempdir()
        users = ["unknown"]
        with contextlib.suppress(Exception):
            users.append(getpass.getuser())
        temp = [
            os.path.join(root, f"pytest-of-{user}")
            for root in {given, os.path.realpath(given)}
            for user in users
        ]
        if basetemp := getattr(session.config.option, "basetemp", None):
            temp.append(rec.abspath(str(basetemp)))
        self._temp = tuple(os.path.normpath(t) + os.sep for t in temp)
        _recorded = self._recorded  # once all it reads is set
        if _EARLY_ROOT is not None and self._root != _EARLY_ROOT:
            # the code set aside before the session was judged against another rootdir: let
            # every code object start once more, to be classified against this one
            self._tracer.restart(_SET_ASIDE)
        else:
            self._not_recorded |= _SET_ASIDE
            self._names.update(dict.fromkeys(_SET_ASIDE))
        _SET_ASIDE.clear()
        global _IMPORTS
        if self._tracer.mode != "off" and _IMPORTS is None:
            _IMPORTS = _Imports(self)
            try:
                _IMPORTS.install()
            except Exception:  # importlib moved: imports stay in the window that ran them
                _IMPORTS = None
        self._compiled_before()
        with contextlib.suppress(Exception):  # importlib moved: first imports are scanned
            self._loaded_hook.install()
        for name in rec.UNSEEN_ENTRIES:
            if name in sys.modules:
                rec.watch_unseen(sys.modules[name], _ran_unseen)
        self._emit(
            "session_start",
            pytest_version=pytest.__version__,
            python_version=platform.python_version(),
            implementation=sys.implementation.name,
            platform=sys.platform,
            machine=platform.machine(),
            rootdir=self._root,
            pid=os.getpid(),
        )

    @pytest.hookimpl(hookwrapper=True)
    def pytest_collect_file(self, file_path: Any, parent: Any) -> Any:
        """Maestro names the files it runs, and pytest never applies ``collect_ignore``,
        ``--ignore`` and the like to a file named on its command line: ask them as pytest would
        have while walking the directories. (A file's result must not depend on how it was
        selected: it is cached per file.)"""
        outcome = yield
        session = parent.session
        try:
            if not session.isinitpath(file_path):
                return
            named = session.config.getoption("maestro_named", None) or ()
            if named and os.path.relpath(file_path, self._root).replace(os.sep, "/") in named:
                # the user named it (no test file of the walk): pytest collects it as given
                _drop_named_only(session.config, file_path, outcome)
                return
            # pytest offers every file of a folder again for each file named in that folder
            walk = maestro_collect_probe.walk_ignores
            root = type(file_path)(self._root)
            inside = str(file_path).startswith(self._root + os.sep)
            if inside and walk(session, file_path, root, self._ignored):
                # matched (or pytest < 9 calls the argument "not found"), never imported
                outcome.force_result([_Ignored.from_parent(parent, path=file_path)])
            else:
                _drop_named_only(session.config, file_path, outcome)
        except Exception:  # pytest internals moved: collect as pytest was asked to
            return

    def pytest_collectstart(self, collector: Any) -> None:
        global _active
        # a class's window has its file's key: its parametrize lists are the file's; a folder
        # Maestro walks (no test file in it) has its conftest's, the target it runs it by
        walked = isinstance(collector, _DIRECTORY) and collector.nodeid in (
            collector.config.getoption("maestro_walk", None) or ()
        )
        if walked or isinstance(collector, (pytest.File, pytest.Class)):
            key = collector.nodeid + "/conftest.py" if walked else self._file_key(collector)
            _watch_c_readers(_active)  # loaded in the enclosing window, or outside every one
            self._collecting[collector.nodeid] = window = _Window(key, modules=True)
            window.running = self._running_children()
            if isinstance(collector, pytest.File):
                self._filters_before[collector.nodeid] = tuple(warnings.filters)
                if (log := _warnings_log()) is not None:
                    self._log_at[collector.nodeid] = (log, len(log), key)
                with contextlib.suppress(Exception):  # never break a collection
                    self._state_before[collector.nodeid] = (collector, self._module_states())
            _active = self._collecting[collector.nodeid]
            if self._tracer.mode != "off":
                self._charge(self._tracer.swap())
            self._collect_stack.append(key)

    def _charge(self, codes: set[int]) -> None:
        """Code run before a collection window changed: the open one's, else the session's."""
        if self._collect_stack:
            self._collect_codes.setdefault(self._collect_stack[-1], set()).update(codes)
        else:
            self._outside |= codes

    def pytest_collectreport(self, report: Any) -> None:
        global _active
        if (at := self._log_at.pop(report.nodeid, None)) is not None:
            log, start, key = at
            for message in log[start:]:
                self._warned_in.setdefault(_identity(message), (message, key))
        window = self._collecting.pop(report.nodeid, None)
        if window is not None:
            # pytest reports a collector after its children (a file after its classes): close
            # this collector's own window, then the enclosing one is open again
            _active = window
            self._close_window()
            if self._collecting:
                _active = next(reversed(self._collecting.values()))
            if self._collect_stack:
                key = self._collect_stack.pop()
                before = self._filters_before.pop(report.nodeid, None)
                if before is not None and tuple(warnings.filters) != before:
                    self._polluters.append(key)
                state = self._state_before.pop(report.nodeid, None)
                if state is not None:
                    with contextlib.suppress(Exception):
                        self._state_changes(key, *state)
                codes = self._tracer.swap() if self._tracer.mode != "off" else set()
                self._collect_codes.setdefault(key, set()).update(codes)
                if _IMPORTS is None or (window is not None and window.loose):
                    self._outside |= codes  # may hold a workspace module's import: shared
                if self._collect_stack:  # nested: the outer file's collection ran it too
                    self._charge(codes)
            if report.skipped:
                self._module_skipped(report)
        elif report.skipped and report.nodeid and "::" not in report.nodeid:
            self._module_skipped(report)  # a folder: its conftest skipped at import
        if report.failed:
            text = _truncate(str(getattr(report, "longreprtext", "") or report.longrepr))
            self._collect_errors.append(
                {
                    "path": report.nodeid.split("::")[0] or str(report.fspath),
                    "message": _crash_line(report) or _error_line(text),
                    "longrepr": text,
                }
            )

    def _module_states(self, *, ran: bool = False) -> dict[str, _ModuleState]:
        """Each workspace module's state, shallowly: its names' objects and the sizes of its
        module-level containers (and of the containers a dict of them holds), and the same of
        the classes it defines; ``ran``: as `_ran_state` sees it."""
        out: dict[str, _ModuleState] = {}
        modules, files = sys.modules, self._module_files
        names = modules.keys()
        if len(names) != len(self._module_names) or names - self._module_names:
            for name in names - self._module_names:
                path = _file_of(modules.get(name))
                rel = self._rel(rec.abspath(path)) if isinstance(path, str) else None
                if rel is not None and rel.endswith(".py"):
                    files[name] = rel
            for name in self._module_names - names:
                files.pop(name, None)
            self._module_names = set(names)
        for name, rel in list(files.items()):
            state = (_ran_state if ran else self._module_state)(name, modules.get(name), rel)
            if state is not None:
                out[name] = state
        return out

    def _module_loaded(self, spec: Any, module: Any) -> None:
        with contextlib.suppress(Exception):  # never break an import
            if spec.name in rec.UNSEEN_ENTRIES:
                rec.watch_unseen(module, _ran_unseen)
            origin = getattr(spec, "origin", None)
            rel = self._rel(rec.abspath(origin)) if isinstance(origin, str) else None
            located = getattr(spec, "has_location", False)  # not "built-in", "frozen"
            if located and rel is not None and not rel.endswith(".py") and _active is not None:
                self._compiled_loaded(_active, rec.abspath(str(origin)))
            elif located and rel is not None:
                # the frames above: this <- the load hook's wrapper <- importlib's <- ...
                frame = sys._getframe(1)
                reader = _reading_module(frame, frame.f_code)
                if reader is not None:
                    _module_loads.add((reader, rec.abspath(str(origin))))
            if not self._state_before:
                return  # no test file is being collected
            if rel is not None and rel.endswith(".py"):
                state = self._module_state(spec.name, module, rel)
                if state is not None:
                    self._loaded_states[spec.name] = state

    def _compiled_before(self) -> None:
        """Compiled modules of the workspace loaded before the session (by a pytest11 plugin of
        the workspace, an initial conftest, a ``-p`` plugin): the load hook was not installed
        yet, no open() read them, and an ignored file (``*.so`` in .gitignore) has no import
        edge. What the session read outside any test counts for every test file: so do they."""
        with contextlib.suppress(Exception):  # a module with an odd spec: never break the run
            for module in list(sys.modules.values()):
                spec = getattr(module, "__spec__", None)
                origin = getattr(spec, "origin", None)
                if (
                    not isinstance(origin, str)
                    or not getattr(spec, "has_location", False)
                    or origin.endswith((".py", ".pyc"))
                ):
                    continue
                path = rec.abspath(origin)
                if self._rel(path) is not None:
                    _SESSION.paths.append(path)
                    if _SESSION.scopes is not None:
                        _SESSION.scopes.append(None)

    @staticmethod
    def _compiled_loaded(window: _Window, path: str) -> None:
        """A compiled module of the workspace (a C extension built in place) was loaded: no
        open() reads it, and the import graph has no edge to it. It is a read of the window's
        and of the workspace module importing it, so that every importer of that module
        depends on it, not only the test file whose collection imported it first."""
        # the frames above: this <- `_module_loaded` <- importlib's `_load_unlocked` <- ...
        frame = sys._getframe(2)
        code = frame.f_code
        reader = _reading_module(frame, code)
        window.paths.append(path)
        if window.scopes is not None:
            window.scopes.append(_conftest_scope(frame, code))
        if reader is not None:
            _module_reads.add((reader, path))

    @staticmethod
    def _module_state(name: str, module: Any, rel: str) -> _ModuleState | None:
        # but pytest's own marks (set on an Item class at its first instance)
        values = _own_values(name, module, ("_pytest",))
        if values is None:
            return None
        sizes = [_size(v) for v in values if _is_container(v)]
        return (rel, tuple(map(_id_or_count, values)), tuple(sizes))

    def _state_changes(self, key: str, collector: Any, before: dict[str, _ModuleState]) -> None:
        """Record the workspace modules whose state collecting the test file `key` changed: a
        name bound, rebound or removed, a module-level container grown or shrunk; and, in a
        module its collection imported first, a module-level container holding an object the
        test file defined (a class registered by its import)."""
        after = self._module_states()
        test_module = getattr(collector, "_obj", None)
        owner = getattr(test_module, "__name__", None)
        own = {n for n, m in sys.modules.items() if m is test_module}
        changed = {
            state[0]
            for name, state in after.items()
            if name not in own and name in before and not _same_state(before[name], state)
        }
        first = after.keys() - before.keys() - own
        new = {after[n][0] for n in first}
        # first imported by it: as the import left it, when known; else the test file's
        # objects it holds
        loaded, self._loaded_states = self._loaded_states, {}
        changed |= {
            after[n][0]
            for n in first
            if (n in loaded and not _same_state(loaded[n], after[n]))
            or (isinstance(owner, str) and _holds(sys.modules.get(n), owner))
        }
        changed.discard(key)
        new.discard(key)
        self._observed.append(key)
        if changed:
            self._state[key] = sorted(changed)
        if new:
            self._state_new[key] = sorted(new)

    def _module_skipped(self, report: Any) -> None:
        """``pytest.skip(allow_module_level=True)``: pytest counts the module as one skip."""
        longrepr = report.longrepr
        message = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else ""
        path = report.nodeid.split("::")[0]
        self._emit(
            "test_result",
            nodeid=report.nodeid,
            outcome="skipped",
            when="collect",
            duration_s=round(float(getattr(report, "duration", 0) or 0), 6),
            location={"path": path, "line": None},
            message=message.removeprefix("Skipped: ")[:_MAX_MESSAGE],
        )

    @pytest.hookimpl(tryfirst=True)  # ordering plugins the user chose (and --ff) run after
    def pytest_collection_modifyitems(self, session: Any, config: Any, items: list[Any]) -> None:
        scores, drop, until, only = _read_selection(os.environ.get(ENV_SELECT))
        if only:
            drop = drop | not_kept(items, only, self._file_key)
        if until:
            drop = drop | after_the_last(items, until, self._file_key)
        if drop:
            # a bare path: a file collected only for what its import does to the others
            self._dropping = {
                _identity(item)
                for item in items
                if item.nodeid in drop or self._file_key(item) in drop
            }
        if scores:
            items[:] = fail_first(items, scores)

    def drop(self, config: Any, items: list[Any]) -> None:
        """Drop the items the runner's selection leaves out (chosen in pytest's order), after
        the user's own selection (-k, -m) deselected what it does: pytest's count of
        deselected tests is the user's, for every item of a file, served or not."""
        dropping, self._dropping = self._dropping, _DROPPED
        gone = [item for item in items if _identity(item) in dropping]
        if gone:
            items[:] = [item for item in items if _identity(item) not in dropping]
            config.hook.pytest_deselected(items=gone)
            self._deselected += [item.nodeid for item in gone]
        self._dropping = set()

    def pytest_deselected(self, items: list[Any]) -> None:
        """The user's selection (-k, -m, a plugin's) deselected `items`: counted per file."""
        if self._dropping is _DROPPED:
            return  # the runner's own
        for item in items:
            key = self._file_key(item)
            self._user_deselected[key] = self._user_deselected.get(key, 0) + 1

    def pytest_collection_finish(self, session: Any) -> None:
        files: dict[str, list[str]] = {}
        for item in session.items:
            key = self._file_key(item)
            files.setdefault(key, []).append(item.nodeid)
            self._last_item_of_file[key] = item.nodeid
        self._emit(
            "collected", files=files, errors=self._collect_errors, polluters=self._polluters,
            state=self._state, state_new=self._state_new, observed=self._observed,
            deselected=self._deselected, user_deselected=self._user_deselected,
        )  # fmt: skip

    # -- tests ------------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> None:
        self._last = nextitem is None  # no test_start will follow to flush its result
        self._items[item.nodeid] = item
        key = self._file_key(item)
        self._file_ends = nextitem is None or self._file_key(nextitem) != key
        if self._ran_before is None or self._ran_before[0] != key:
            self._ran_before = None
            with contextlib.suppress(Exception):  # never break a run
                self._ran_before = (key, self._module_states(ran=True))
        self._open_window(key)
        if self._tracer.mode != "off":
            self._outside |= self._tracer.swap()
        self._in_test = item.nodeid

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self._emit("test_start", nodeid=nodeid)

    @pytest.hookimpl(tryfirst=True)
    def pytest_warning_recorded(
        self, warning_message: Any, when: str, nodeid: str, location: Any
    ) -> None:
        """Count each warning pytest records for its summary: a test's by its node id, one
        raised while the files were collected by the file it points at (the test file whose
        import raised it), or pytest's own about a file's collection (a generator given to
        parametrize) by that file; the others (pytest's configuration, a conftest, a library's
        import) belong to no file.
        Then nothing is recorded until the other implementations are done (the module's own,
        last, resumes): pytest's terminal formats the warning with its source line, which
        reads the file it points at, no test's read (after the collection, every file's)."""
        global _active
        if isinstance(warning_message.message, _REWRITE_WARNING):
            # raised only as pytest rewrites a module, which it does when the rewritten .pyc
            # is absent (at collection, or in a test importing a module registered for it);
            # this run wrote it (bytecode writing on, whatever the user's environment says),
            # so plain pytest no longer raises it: this run's, no result's
            self._rewrite_warnings += 1
        elif when == "runtest" and nodeid:
            self._warnings[nodeid] = self._warnings.get(nodeid, 0) + 1
        else:
            rel = self._rel(str(warning_message.filename)) if when == "collect" else None
            if when == "collect" and isinstance(warning_message.message, pytest.PytestWarning):
                # pytest's own, pointing at its code (in a venv inside the workspace, too)
                found = self._warned_in.get(_identity(warning_message))
                if found is not None and found[0] is warning_message:
                    rel = found[1]
            key = rel or ""
            self._collect_warnings[key] = self._collect_warnings.get(key, 0) + 1
        paused, _active = _active, None  # formatting reads the source line: no test's read
        try:
            location, message = self._warning_text(warning_message, nodeid)
        finally:
            _active = paused
        shown = self._warning_texts.get(message)
        if shown is None and len(self._warning_texts) < _MAX_WARNINGS_SHOWN:
            shown = self._warning_texts[message] = ([0], [], {})
        if shown is not None:
            shown[0][0] += 1
            if location:
                if len(shown[1]) < _LOCATIONS_LISTED:
                    shown[1].append(location)
                by_file = location.split("::", 1)[0]
                shown[2][by_file] = shown[2].get(by_file, 0) + 1
        if when != "config":  # not a call replayed as this plugin registers
            _FORMATTING.append(_active)
            _active = None

    def _warning_text(self, warning_message: Any, nodeid: str) -> tuple[str, str]:
        """The warning's location and message as pytest's terminal reporter prints them in its
        summary: the node id, else the file's path from the invocation folder and the line."""
        try:
            from _pytest.warnings import warning_record_to_str

            message = warning_record_to_str(warning_message)
        except Exception:  # pytest internals moved: Python's own wording
            message = warnings.formatwarning(
                str(warning_message.message), warning_message.category,
                warning_message.filename, warning_message.lineno, warning_message.line,
            )  # fmt: skip
        location = nodeid
        if not location and warning_message.filename:
            path = os.path.abspath(str(warning_message.filename))
            try:
                from pathlib import Path

                from _pytest.pathlib import bestrelpath

                shown = bestrelpath(Path(self._invocation_dir or os.getcwd()), Path(path))
            except Exception:
                shown = path
            location = f"{shown}:{warning_message.lineno}"
        return location, message[:_MAX_WARNING_TEXT]

    @_wrapper()
    def pytest_runtest_makereport(self, item: Any, call: Any) -> Any:
        """The phase's failure as the report gets it: read after the other implementations,
        as pytest's unittest plugin hands a TestCase's failure to ``call`` only in its own."""
        try:
            return (yield)
        finally:
            excinfo = call.excinfo
            failed = excinfo is not None and not isinstance(excinfo.value, _SKIP_TYPES)
            if failed and item.nodeid not in self._failures:
                self._failures[item.nodeid] = (call.when, excinfo)

    def pytest_runtest_logreport(self, report: Any) -> None:
        if _is_subtest(report):  # its own "call" report: the test's comes after it
            self._subtests.setdefault(report.nodeid, []).append(report)
            return
        phases = self._phases.setdefault(report.nodeid, {})
        phases[report.when] = report

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        loose = _active is not None and _active.loose
        seen = self._close_window()
        codes = self._tracer.swap() if self._tracer.mode != "off" else set()
        if loose:
            self._outside |= codes  # may be a workspace module's import: shared
            self._tracer.unknown |= codes  # whose lines were taken for a test's
        self._in_test = None
        item = self._items.pop(nodeid, None)
        phases = self._phases.pop(nodeid, {})
        subtests = self._subtests.pop(nodeid, [])
        failure = self._failures.pop(nodeid, None)
        # out with the next test's start (which is flushed: a crash in that test is named)
        result = self._result(nodeid, item, phases, subtests, failure)
        self._emit("test_result", flush=False, **result)
        if item is not None:
            fixture_codes, fixture_paths, fixture_spawns, fixture_env = self._fixture_records(item)
            codes |= fixture_codes
            if fixture_env:  # what a higher-scoped fixture read, whoever set it up
                _env_reads.setdefault(self._file_key(item), set()).update(fixture_env)
            for raw in fixture_paths:
                rel = self._rel(raw)
                if rel is not None:
                    seen.files.add(rel)
            self._spawn_notes(fixture_spawns, seen)
        functions = self._functions(codes, seen) if self._tracer.mode != "off" else {}
        if item is not None:  # the window's own reads are charged already; add the rest
            key = self._file_key(item)
            deps = self._deps.setdefault(key, _Deps())
            deps.files |= seen.files | seen.loaded
            deps.external |= seen.external
            deps.opaque.update(dict.fromkeys(seen.opaque))
        if self._tracer.mode != "off":
            self._emit(
                "test_trace",
                flush=False,
                nodeid=nodeid,
                functions=functions,
                files=sorted(seen.files),
                opaque=list(dict.fromkeys(seen.opaque)),
                params=None if item is None else fixture_params(item, self._rel),
            )
        if item is not None and self._last_item_of_file.get(key) == nodeid:
            self._emit_deps(key)
        if self._file_ends and self._ran_before is not None:
            with contextlib.suppress(Exception):  # never break a run
                self._ran_changes(*self._ran_before)
            self._ran_before = None
        if self._last:
            self._flush()

    def _ran_changes(self, key: str, before: dict[str, _ModuleState]) -> None:
        """Record the workspace modules the tests of the test file `key` left changed (after
        its last test's teardown, its module-scoped fixtures' too): a name bound, rebound or
        removed, a module-level container grown or shrunk (`_ran_state`)."""
        after = self._module_states(ran=True)
        changed: dict[str, set[str]] = {}
        for name, state in after.items():
            if name in before and state[0] != key and (names := _ran_names(before[name], state)):
                changed.setdefault(state[0], set()).update(names)
        if changed:
            self._ran_state[key] = sorted(changed)
            self._ran_names[key] = {m: sorted(n) for m, n in sorted(changed.items())}

    def _flush(self) -> None:
        with self._lock:
            try:
                if self._stream is not None:
                    self._stream.flush()
            except (OSError, ValueError):
                self._stream = None

    def _result(
        self, nodeid: str, item: Any, phases: dict[str, Any], subtests: list[Any], failure: Any
    ) -> dict[str, Any]:
        outcome, failed_when = _outcome(phases)
        decisive = phases.get(failed_when) if failed_when else None
        sub = _deciding_subtest(outcome, subtests)
        if sub is not None:
            outcome = "failed" if sub.failed else _counted(sub) or "skipped"
            failed_when, decisive = ("call", sub) if sub.failed else (None, None)
        last = phases.get("teardown") or phases.get("call") or phases.get("setup")
        also = _also_counted([*phases.values(), *subtests], outcome)
        result: dict[str, Any] = {
            "nodeid": nodeid,
            "outcome": outcome,
            "when": failed_when,
            "duration_s": round(sum(float(r.duration) for r in phases.values()), 6),
            "location": None,
            "message": None,
            "test_line": None,
            "raised_at": None,
            "longrepr": None,
            "stdout": _truncate(getattr(last, "capstdout", "") or ""),
            "stderr": _truncate(getattr(last, "capstderr", "") or ""),
        }
        if also:
            result["also"] = also
        if passed := sum(1 for r in subtests if r.passed and not hasattr(r, "wasxfail")):
            result["subtests_passed"] = passed  # pytest's "N subtests passed", as it may say
        if item is not None and not _addressable(item):
            result["addressable"] = False
        if item is not None:
            lineno = item.location[1]
            result["location"] = {
                "path": self._file_key(item),
                "line": lineno + 1 if isinstance(lineno, int) else None,
            }
        if outcome in ("failed", "error"):
            if decisive is not None:
                text = str(getattr(decisive, "longreprtext", "") or decisive.longrepr or "")
                result["longrepr"] = _truncate(text, _MAX_LONGREPR)
                result["message"] = _error_line(text)
            if failure is not None and item is not None:
                self._locate(result, item, failure[1])
            if sub is not None and result["message"]:
                result["message"] = f"{_subtest_name(sub)} {result['message']}"[:_MAX_MESSAGE]
        elif outcome in ("skipped", "xfailed"):
            report = sub or phases.get("call") or phases.get("setup")
            longrepr = getattr(report, "longrepr", None)
            reason = getattr(report, "wasxfail", None)
            if isinstance(reason, str):  # as pytest's JUnit file says it
                result["message"] = reason.removeprefix("reason: ")[:_MAX_MESSAGE]
            elif isinstance(longrepr, tuple) and len(longrepr) == 3:
                result["message"] = str(longrepr[2]).removeprefix("Skipped: ")[:_MAX_MESSAGE]
                where = self._skipped_at(longrepr)
                if where is not None:  # the skip's own line, as pytest's -rs names it
                    result["location"] = where
        return result

    def _skipped_at(self, longrepr: tuple[Any, Any, Any]) -> dict[str, Any] | None:
        """Where a skip was raised (a ``pytest.skip()`` in a test or fixture; a mark's test),
        as pytest's skip report says it; None outside the workspace (a plugin's)."""
        path, line = longrepr[0], longrepr[1]
        if not isinstance(path, str) or not isinstance(line, int):
            return None
        rel = self._rel(rec.abspath(os.path.join(self._root or "", path)))
        return {"path": rel, "line": line} if rel is not None else None

    def _locate(self, result: dict[str, Any], item: Any, excinfo: Any) -> None:
        """Message, the failing line in the test file and the innermost workspace frame."""
        message = _doctest_message(excinfo.value)
        if message is None:
            try:
                message = excinfo.exconly()
            except Exception:
                message = repr(excinfo.value)
        lines = [line for line in message.splitlines() if line.strip()]
        result["message"] = (lines[0] if lines else message)[:_MAX_MESSAGE]
        test_path = os.path.normpath(str(getattr(item, "path", None) or item.fspath))
        tb = excinfo.tb
        while tb is not None:
            filename = os.path.normpath(rec.abspath(tb.tb_frame.f_code.co_filename))
            if filename == test_path:
                result["test_line"] = tb.tb_lineno
            rel = self._rel(filename)
            if rel is not None:
                result["raised_at"] = {"path": rel, "line": tb.tb_lineno}
            tb = tb.tb_next
        if result.get("test_line") is None:
            result["test_line"] = _doctest_line(excinfo.value)

    def pytest_sessionfinish(self, session: Any, exitstatus: Any) -> None:
        global _active
        for window in list(self._collecting.values()):
            _active = window
            self._close_window()
        self._collecting.clear()
        _active = _SESSION
        for key in sorted(set(self._deps) | set(self._last_item_of_file)):
            self._emit_deps(key)
        mode = self._tracer.mode
        if mode != "off":
            self._outside |= self._tracer.swap()
            self._tracer.stop()
            self._emit(
                "session_trace",
                mode=mode,
                functions=self._functions(self._outside),
                lines=self._import_lines(),
            )
            self._outside = set()
        # a module's bytecode cache written as it is imported (its source just edited, or
        # no cache yet) is no write of its source, which `_rel` makes of a cached module read
        written = {
            rel for raw in _written if not _is_bytecode(raw) and (rel := self._rel(raw)) is not None
        }
        imports: dict[str, set[str]] = {}
        for module, raw in _module_reads:
            source, rel = self._rel(rec.abspath(module)), self._rel(raw)
            # Python sources are read to be imported (the import graph has them) or shown
            # (linecache, inspect): as a module's edge they would chain it to test files
            if (
                source is not None
                and rel is not None
                and source.endswith(".py")
                and not rel.endswith((".py", ".pyc"))
            ):
                imports.setdefault(source, set()).add(rel)
        for module, loaded in _module_loads:
            source, rel = self._rel(rec.abspath(module)), self._rel(loaded)
            if source is not None and rel is not None and source != rel and source.endswith(".py"):
                imports.setdefault(source, set()).add(rel)
        root = self._root
        self._emit(
            "session_end",
            exitstatus=int(exitstatus),
            duration_s=round(time.monotonic() - self._start, 6),
            written=sorted(written),
            import_reads={
                m: sorted(f for f in files if not os.path.isdir(os.path.join(root, f)))
                for m, files in sorted(imports.items())
            },
            env=sorted(_env_reads.get("", ())),
            modules=self._runtime_modules(),
            # those of a dependency's dependency are never spelled in the workspace's code
            installed=sorted(self._child_installed.union(rec.installed_modules())),
            warnings=self._warnings,
            collect_warnings=self._collect_warnings,
            rewrite_warnings=self._rewrite_warnings,
            # none with --disable-warnings or --no-summary: pytest shows no summary then
            warning_texts=(
                []
                if getattr(session.config.option, "disable_warnings", False)
                or getattr(session.config.option, "no_summary", False)
                else [[m, n[0], at, by] for m, (n, at, by) in self._warning_texts.items()]
            ),
            configure_warnings=getattr(
                session.config.pluginmanager.get_plugin(_CONFIGURE_WARNINGS), "printed", []
            ),
            ran_state=self._ran_state,
            ran_names=self._ran_names,
        )

    def _runtime_modules(self) -> dict[str, list[str]]:
        """Top-level import name -> the files its loaded modules came from, for those loaded
        from the workspace or from a file no interpreter key covers. A test that put a folder or
        zip on ``sys.path`` leaves its modules in ``sys.modules`` for later files, whose import
        of the name the graph could not resolve: this ties that name to the files. A module
        imported from a zip stands for the archive (its code's file names are inside it)."""
        found: dict[str, set[str]] = {}
        for name, module in list(sys.modules.items()):
            file = _file_of(module)
            if not isinstance(file, str):
                continue
            loader = getattr(module, "__loader__", None)
            archive = getattr(loader, "archive", None)
            if isinstance(loader, zipimport.zipimporter) and isinstance(archive, str):
                file = archive
            path = rec.abspath(file)
            rel = self._rel(path)
            if rel is None:
                rel = self._external(path)
            if rel is not None:
                found.setdefault(name.partition(".")[0], set()).add(rel)
        return {name: sorted(files) for name, files in sorted(found.items())}

    def pytest_unconfigure(self, config: Any) -> None:
        global _active, _IMPORTS
        _active = None
        self._loaded_hook.uninstall()  # installed after `_IMPORTS`: removed before
        if _IMPORTS is not None and _IMPORTS.recorder is self:  # not a nested session's
            _IMPORTS.uninstall()
            _IMPORTS = None
        self._tracer.stop()
        for name in (rec.ENV_DIR, rec.ENV_ROOT):
            os.environ.pop(name, None)
        if self._children:
            shutil.rmtree(self._children, ignore_errors=True)
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _addressable(item: Any) -> bool:
    """Does pytest find `item` by its node id? Each "::" of the id must part two names: a name
    holding "::" (a conftest's collector naming its items "DOM::parser") matches none."""
    try:
        chain = item.listchain()
    except Exception:  # a collector tree pytest walks otherwise: leave it to pytest
        return True
    return not any("::" in getattr(node, "name", "") for node in chain[1:])


def _outcome(phases: dict[str, Any]) -> tuple[str, str | None]:
    """Map setup/call/teardown reports to one outcome and the phase that decided it."""
    setup, call, teardown = phases.get("setup"), phases.get("call"), phases.get("teardown")
    if setup is not None and setup.failed:
        return "error", "setup"
    if setup is not None and setup.skipped:
        return ("xfailed" if hasattr(setup, "wasxfail") else "skipped"), None
    if call is not None:
        if call.failed:
            return "failed", "call"
        if call.skipped:
            return ("xfailed" if hasattr(call, "wasxfail") else "skipped"), None
    if teardown is not None and teardown.failed:
        return "error", "teardown"
    if call is not None and hasattr(call, "wasxfail"):
        return "xpassed", None
    if call is None:
        return "error", None  # interrupted before the call phase
    return "passed", None


def _counted(report: Any) -> str | None:
    """The category pytest's summary line counts one phase report in (None: not counted)."""
    xfail = hasattr(report, "wasxfail")
    if report.passed:
        return ("xpassed" if xfail else "passed") if report.when == "call" else None
    if report.skipped:
        return "xfailed" if xfail else "skipped"
    return "failed" if report.when == "call" else "error"


def _is_bytecode(path: str) -> bool:
    return path.endswith((".pyc", ".pyo")) and "__pycache__" in path


def _also_counted(reports: list[Any], outcome: str) -> list[str]:
    """What pytest's summary counts for a node besides its outcome: a call that passed and a
    teardown that errored are "1 passed, 1 error" there, one node here; a failed subtest is
    one more "failed" (its passes pytest counts apart, as "subtests passed")."""
    found = [
        c for r in reports if (c := _counted(r)) is not None and not (r.passed and _is_subtest(r))
    ]
    if outcome in found:
        found.remove(outcome)
    return found


def fixture_params(item: Any, rel: Callable[[str], str | None]) -> dict[str, int] | None:
    """Which element of each parametrized fixture's ``params`` the node got: the fixture's
    function (``<workspace file>::<name>``) -> its index; -1 where the index cannot be told
    (the test parametrizes that name itself, or the ids may come from a
    ``pytest_make_parametrize_id`` hook). None when pytest's internals are not as expected.
    A test using a fixture that requests a parametrized one has it here too."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return {}
    try:
        defs = item._fixtureinfo.name2fixturedefs
        indices = dict(callspec.indices)
        params = dict(callspec.params)
        hooked = bool(item.config.pluginmanager.hook.pytest_make_parametrize_id.get_hookimpls())
        marked = {
            name
            for mark in item.iter_markers("parametrize")
            for name in _mark_argnames(mark.args[0] if mark.args else mark.kwargs["argnames"])
        }
    except Exception:  # another pytest: no record, and a change re-runs the file
        return None
    found: dict[str, int] = {}
    for argname, chain in defs.items():
        owner = _parametrizing(chain, argname)
        if owner is None:
            continue
        code = getattr(getattr(owner, "func", None), "__code__", None)
        if code is None:
            found[f"?::{argname}"] = -1  # whose it is is unknown
            continue
        path = rel(code.co_filename)
        if path is None:
            continue  # not the workspace's: no change of its is judged by this
        name = f"{path}::{code.co_qualname}"
        index = indices.get(argname)
        sure = (
            argname not in marked
            and not hooked
            and isinstance(index, int)
            and 0 <= index < len(owner.params)
            and argname in params
            and owner.params[index] is params[argname]
        )
        if argname in marked or argname in indices:
            found[name] = index if sure and isinstance(index, int) else -1
    return found


def _mark_argnames(argnames: Any) -> list[str]:
    if isinstance(argnames, str):
        return [n.strip() for n in argnames.split(",") if n.strip()]
    return [str(n) for n in argnames]


def _parametrizing(chain: Any, argname: str) -> Any:
    """The fixture definition whose ``params`` pytest parametrizes `argname` with (as its
    fixtures plugin picks it), or None."""
    for fixturedef in reversed(list(chain)):
        if getattr(fixturedef, "params", None) is not None:
            return fixturedef
        if argname not in getattr(fixturedef, "argnames", ()):
            return None
    return None


def _is_subtest(report: Any) -> bool:
    """A subtest's report: pytest's own (9.0 on) or the pytest-subtests plugin's."""
    return type(report).__name__ in ("SubtestReport", "SubTestReport") and hasattr(
        report, "context"
    )


def _deciding_subtest(outcome: str, subtests: list[Any]) -> Any:
    """The subtest that decides a test's outcome, as pytest's JUnit XML records it: the first
    failed one fails a test unless its setup or teardown errored, and a skipped one skips a
    test that passed otherwise. None: the test's own phases decide."""
    failed = next((r for r in subtests if r.failed), None)
    if failed is not None and outcome != "error":
        return failed
    if outcome == "passed":
        return next((r for r in subtests if r.skipped), None)
    return None


def _subtest_name(report: Any) -> str:
    """How pytest names a subtest in its summary: ``[msg] (key=value)``."""
    describe = getattr(report, "_sub_test_description", None) or getattr(
        report, "sub_test_description", None
    )
    try:
        return str(describe()).strip() if callable(describe) else ""
    except Exception:
        return ""


def _truncate(text: str, limit: int = _MAX_CAPTURE) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - 2 * half} characters truncated] ...\n{text[-half:]}"


# the kernel's files: their content is the machine's state of the moment, never a test's input
_VIRTUAL = ("/proc/", "/sys/", "/dev/", "/run/")
_STAT = os.stat  # as it was at import: a test may wrap os's functions (blockbuster)
_LSTAT = os.lstat
_CODE_SUFFIXES = (".py", ".pyc", ".pyi", ".so", ".pyd")

# and their subclasses (an OrderedDict registry, a defaultdict), read through the base's methods
_CONTAINERS = (dict, list, set, collections.deque)
# a workspace module at one moment: (its file, its names' object ids, its containers' sizes)
_ModuleState = tuple[str, tuple[Any, ...], tuple[Any, ...]]


# An object's identity without id(): object's own hash is a rotation of its address (one value
# per live object, whatever hash its type defines), and it raises no audit event, where each id()
# call runs the recorder's hook.
_identity = object.__hash__


_SCALARS = (type(None), bool, int, float, complex, str, bytes)
_CALLABLES = (
    FunctionType, BuiltinFunctionType, MethodType, type, functools.partial, staticmethod,
    classmethod, property,
)  # fmt: skip


def _ran_state(name: str, module: Any, rel: str) -> _ModuleState | None:
    """A workspace module's state as a test file's tests may leave it for the next files: its
    names' values (a flag, a setting), the functions and classes they are (a patch left in
    place), the sizes of its containers (a registry filled or cleared), and the types of its
    other objects (and the same of the classes it defines). Another object of the same type
    (a fake filesystem a fixture sets up for each test), a container's entry replaced by one
    of the same size (a cache refreshed) or a number that grew (a counter) is no change: what
    these hold is not compared. Each value with its name (`_ran_names`)."""
    # a class's dunders aside: some are filled lazily (copyreg's __slotnames__)
    named = _own_named(name, module, ("_pytest", "__"))
    if named is None:
        return None
    return (rel, tuple((k, _ran_value(v)) for k, v in named), ())


def _ran_names(before: _ModuleState, after: _ModuleState) -> set[str]:
    """The names of the values that differ between two `_ran_state` snapshots of a module
    (bound, rebound, removed, a container grown or shrunk; but counters that grew): a
    module-level name, ``Class.attr`` for a class's attribute."""
    old, new = dict(before[1]), dict(after[1])
    changed = set(old.keys() ^ new.keys())
    for k in old.keys() & new.keys():
        a, b = old[k], new[k]
        if a == b:
            continue
        counted = type(a) is tuple and type(b) is tuple and a[:1] == b[:1] == (_COUNT,)
        if not counted or b[1] < a[1]:
            changed.add(k)
    return changed


def _own_values(name: str, module: Any, skip: tuple[str, ...]) -> list[Any] | None:
    """The values of a workspace module's names, then those of the attributes of the classes it
    defines (their registries, a patched method), but those whose name starts with `skip`;
    None for a module without a plain namespace."""
    named = _own_named(name, module, skip)
    return None if named is None else [v for _, v in named]


def _own_named(name: str, module: Any, skip: tuple[str, ...]) -> list[tuple[str, Any]] | None:
    """`_own_values` with their names: a module-level name, ``Class.attr`` for a class's
    attribute."""
    namespace = getattr(module, "__dict__", None)
    if type(namespace) is not dict:
        return None
    # a submodule imported binds its name in its package: no state of the package's; a
    # warning issued from its code fills its __warningregistry__, which no test reads
    values = [
        (k, v)
        for k, v in list(namespace.items())
        if type(v) is not ModuleType and k not in ("__builtins__", "__warningregistry__")
    ]
    members = [
        (f"{c}.{k}", m)
        for c, v in values
        if isinstance(v, type) and v.__dict__.get("__module__") == name
        for k, m in list(v.__dict__.items())
        if not k.startswith(skip)
    ]
    return values + members


_COUNT = "count"


def _ran_value(value: Any) -> Any:
    kind = type(value)
    if kind is int:
        return (_COUNT, value)
    if kind in _SCALARS:
        try:
            return (kind, hash(value))
        except Exception:
            return kind
    if issubclass(kind, _CONTAINERS):
        if issubclass(kind, dict):
            nested = sum(len(v) for v in dict.values(value) if _is_container(v))
            return (kind, dict.__len__(value), nested)
        return (kind, len(value))
    if issubclass(kind, _CALLABLES):
        return _identity(value)
    return kind


def _id_or_count(value: Any) -> Any:
    return (_COUNT, value) if type(value) is int else _identity(value)


def _same_state(before: _ModuleState, after: _ModuleState) -> bool:
    """Whether two snapshots of a module are the same but for counters that grew (attrs counts
    every attribute it makes, at import and in tests: the value orders them, no test reads it)."""
    if before == after:
        return True
    if before[0] != after[0] or before[2] != after[2] or len(before[1]) != len(after[1]):
        return False
    for old, new in zip(before[1], after[1], strict=True):
        if old == new:
            continue
        counted = type(old) is tuple and type(new) is tuple and old[:1] == new[:1] == (_COUNT,)
        if not counted or new[1] < old[1]:
            return False
    return True


def _is_container(value: Any) -> bool:
    return issubclass(type(value), _CONTAINERS)


def _size(container: Any) -> tuple[int, int, int]:
    """A container's size, the sum of its members' ids (an entry replaced) and, for a dict,
    the sizes of its container values (a registry of lists)."""
    if not issubclass(type(container), dict):
        return len(container), sum(map(_identity, container)), 0
    values = dict.values(container)
    nested = sum(len(v) for v in values if _is_container(v))
    return dict.__len__(container), sum(map(_identity, values)), nested


def _holds(module: Any, owner: str) -> bool:
    """Whether a module-level container of `module` (or a container in it) holds an object
    defined in the module named `owner`."""
    namespace = getattr(module, "__dict__", None)
    if type(namespace) is not dict:
        return False

    def defined_there(value: Any) -> bool:
        try:
            return getattr(value, "__module__", None) == owner
        except Exception:
            return False

    for value in list(namespace.values()):
        if type(value) is dict:
            members: list[Any] = [*value.keys(), *value.values()]
        elif type(value) in (list, set):
            members = list(value)
        else:
            continue
        for member in members:
            if type(member) in (list, set, tuple):
                if any(defined_there(m) for m in member):
                    return True
            elif defined_there(member):
                return True
    return False


def _read_selection(
    path: str | None,
) -> tuple[dict[str, float], frozenset[str], frozenset[str], frozenset[str]]:
    """(node id -> P(fail), node ids to deselect, node ids after which their files stop, node
    ids to keep of their files) from the runner's JSON object ``{"scores": {...}, "deselect":
    [...], "until": [...], "only": [...]}``. All are advisory: a missing or malformed file
    means pytest's own selection and order."""
    nothing: tuple[dict[str, float], frozenset[str], frozenset[str], frozenset[str]]
    nothing = {}, frozenset(), frozenset(), frozenset()
    if not path:
        return nothing
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return nothing
    if not isinstance(data, dict):
        return nothing
    raw, drop, until = data.get("scores"), data.get("deselect"), data.get("until")
    scores = {
        node: float(p)
        for node, p in (raw.items() if isinstance(raw, dict) else ())
        if isinstance(p, (int, float)) and not isinstance(p, bool)
    }

    def names(found: object) -> frozenset[str]:
        listed = found if isinstance(found, list) else ()
        return frozenset(n for n in listed if isinstance(n, str))

    return scores, names(drop), names(until), names(data.get("only"))


def not_kept(
    items: list[Any], only: frozenset[str], file_of: Callable[[Any], str]
) -> frozenset[str]:
    """The node ids of `items` in the files `only` names tests of that none of them takes, as
    pytest matches an id argument: the id itself, a class's id the tests in it, a function's id
    without parameters each of its parametrizations."""
    files = {n.split("::", 1)[0] for n in only}
    return frozenset(
        item.nodeid for item in items if file_of(item) in files and not _taken(item.nodeid, only)
    )


def _taken(nodeid: str, only: frozenset[str]) -> bool:
    if nodeid in only:
        return True
    parts = nodeid.split("::")
    if "[" in parts[-1] and "::".join([*parts[:-1], parts[-1].split("[", 1)[0]]) in only:
        return True
    return any("::".join(parts[:i]) in only for i in range(2, len(parts)))


def after_the_last(
    items: list[Any], until: frozenset[str], file_of: Callable[[Any], str]
) -> frozenset[str]:
    """The node ids of `items` (pytest's collection order) collected after the last of `until`
    in their file: tests that run later change no outcome of that test or of those before it.
    None when one of `until` was not collected (where it comes is then unknown)."""
    last: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.nodeid in until:
            last[file_of(item)] = i
    if {item.nodeid for item in items} & until != until:
        return frozenset()
    return frozenset(
        item.nodeid
        for i, item in enumerate(items)
        if (end := last.get(file_of(item))) is not None and i > end
    )


def fail_first(items: list[Any], scores: dict[str, float]) -> list[Any]:
    """`items` most likely failure first, without splitting a module or a class: a group (file,
    class, nested class) scores as its best test, so module- and class-scoped fixtures are still
    set up once. Equal scores keep the collected order, so a ranking that cannot tell tests apart
    changes nothing; tests without a score come after the scored ones of their group.
    """
    best: dict[str, tuple[float, int]] = {}  # group -> (-best score, first collected position)
    keys: list[tuple[list[str], tuple[float, int]]] = []
    for i, item in enumerate(items):
        base = item.nodeid.split("[", 1)[0]  # parameter ids may hold "::"
        parts = base.split("::")
        chain = ["::".join(parts[: k + 1]) for k in range(len(parts) - 1)]
        own = (-scores.get(item.nodeid, -1.0), i)
        for group in chain:
            if own < best.get(group, (2.0, 0)):
                best[group] = own
        keys.append((chain, own))
    order = sorted(range(len(items)), key=lambda i: (*(best[g] for g in keys[i][0]), keys[i][1]))
    return [items[i] for i in order]


def _doctest_message(value: BaseException) -> str | None:
    """What a failed doctest example did, as pytest's report says it; None for another error.
    The exception pytest's doctest items raise names only the DocTest (``<DocTest usage.rst
    from ...:0 (1 example)>``), which tells a reader nothing."""
    doctest = sys.modules.get("doctest")  # loaded whenever a doctest item ran
    if doctest is None:
        return None
    if isinstance(value, doctest.UnexpectedException):
        inner = value.exc_info[1]
        return f"{type(inner).__name__}: {inner}" if str(inner) else type(inner).__name__
    if isinstance(value, doctest.DocTestFailure):
        source = value.example.source.strip().splitlines()[0]
        want, got = value.example.want.strip(), value.got.strip()
        return f">>> {source}: expected {want or 'nothing'}, got {got or 'nothing'}"
    return None


def _doctest_line(value: BaseException) -> int | None:
    """The line of a failed doctest example in its file, as pytest's report gives it."""
    doctest = sys.modules.get("doctest")
    if doctest is None or not isinstance(
        value, (doctest.UnexpectedException, doctest.DocTestFailure)
    ):
        return None
    start, offset = value.test.lineno, value.example.lineno
    return None if start is None or offset is None else start + offset + 1


def _crash_line(report: Any) -> str | None:
    """The first line of a report's crash message: what pytest's short summary says of it."""
    message = getattr(getattr(report.longrepr, "reprcrash", None), "message", None)
    if not isinstance(message, str) or not message.strip():
        return None
    return message.strip().splitlines()[0][:_MAX_MESSAGE]


def _error_line(text: str) -> str:
    """The most telling line of a pytest long representation: its last ``E`` line."""
    lines = [line for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("E "):
            return line[1:].strip()[:_MAX_MESSAGE]
    return (lines[-1].strip() if lines else "")[:_MAX_MESSAGE]


# one encoder for every event line (json.dumps with options builds one per call)
_ENCODE = json.JSONEncoder(default=str, separators=(",", ":")).encode


def _open_stream() -> Any:
    raw = os.environ.get(ENV_FD)
    if not raw:
        return None
    try:
        fd = int(raw)
        os.set_inheritable(fd, False)  # not for the test's own subprocesses
        return os.fdopen(fd, "w", encoding="utf-8", closefd=True)
    except (OSError, ValueError):
        return None


_TRACER: _Tracer | None = None
# Reads and programs outside any test file's window: conftest imports, plugins, session teardown.
_SESSION = _Window("")
_SESSION.scopes = []


def _start_tracer() -> None:
    """Trace from import time (``-p`` loads us before conftests) when a runner is listening."""
    global _TRACER
    if _TRACER is not None or not os.environ.get(ENV_FD):
        return
    mode = _trace_mode()
    if mode == "off":
        return
    _TRACER = _Tracer(mode)
    try:
        _TRACER.start()
    except Exception:  # tracing is an optimisation; never break the run
        _TRACER = None
        return
    # pytest may end before the session (a conftest that fails to import): its callbacks must
    # not outlive this module's globals, or their errors end stderr where pytest's message was
    atexit.register(_TRACER.stop)


def _probing(real: Callable[..., Any]) -> Callable[..., Any]:
    """``os.stat``/``os.lstat`` that note, in a test's window, the workspace file whose being
    there a test asks without reading it (``Path.exists``, ``os.path.isfile``): no audit event
    says so. A file (or its absence) counts as a read; a folder does not (its listing would)."""

    def probe(path: Any, *args: Any, **kwargs: Any) -> Any:
        window = _active
        if (
            window is None or window is _SESSION or window.modules_before is not None
            or not _ROOT or isinstance(path, int) or kwargs.get("dir_fd") is not None
        ):  # fmt: skip
            return real(path, *args, **kwargs)
        if _outside_root(path):
            try:
                return real(path, *args, **kwargs)
            except FileNotFoundError:
                # a configuration file looked for above the project: the test depends on its
                # staying away (an existing one outside is keyed only when read)
                if not rec.by_linecache():
                    _absent_outside(window, path)
                raise
        try:
            result = real(path, *args, **kwargs)
        except FileNotFoundError:
            if not rec.by_linecache():
                _probed(window, path)
                _absent_outside(window, path)
            raise
        if not stat.S_ISDIR(result.st_mode):
            _probed(window, path)
        return result

    standing: Callable[..., Any] = rec.stand_in(probe, real)
    return standing


def _outside_root(path: Any) -> bool:
    """Whether ``path`` is an absolute path that names no file in the workspace as written: no
    ``.``/``..`` part or doubled separator that normalising would change, and not under the
    root. Most of a suite's stats are such (gettext's catalogues, the standard library's
    sources): they skip the normalisation :func:`_probed` needs for the others."""
    if type(path) is not str:
        if not isinstance(path, os.PathLike):
            return False
        path = os.fspath(path)
        if type(path) is not str:
            return False
    return (
        path[:1] == os.sep and not path.startswith(_ROOT + os.sep)
        and os.sep + "." not in path and os.sep + os.sep not in path
    )  # fmt: skip


def _absent_outside(window: _Window, path: Any) -> None:
    """A missing absolute path outside the workspace that is not code: an input as absent
    (``_Recorder._external`` leaves out pytest's scratch, installed and virtual paths, and
    one the test then made)."""
    try:
        full = rec.abspath(os.fsdecode(path))
        if not full.startswith(_ROOT + os.sep) and not full.endswith(_CODE_SUFFIXES):
            window.paths.append(full)
            if window.scopes is not None:
                window.scopes.append(None)
    except Exception:  # a hook never breaks the test's own call
        return


def _probed(window: _Window, path: Any) -> None:
    try:
        full = rec.abspath(os.fsdecode(path))
        # not a module: the import system, linecache, inspect and pytest itself stat sources
        # (the test's own file among them), and an import of it is recorded as such
        if full.endswith(_CODE_SUFFIXES) or full in window.own:
            return
        if _ROOT and full.startswith(_ROOT + os.sep):
            _read(window, (full,))
    except Exception:  # a hook never breaks the test's own call
        return


def _start_recording() -> None:
    """Record from import time (``-p`` loads us before the first conftest is imported) when a
    runner is listening. The audit hook cannot be removed: once the session ends it returns at
    its first check."""
    global _active
    if not os.environ.get(ENV_FD):
        return
    _active = _SESSION
    _watch_environ()
    sys.addaudithook(_audit)
    os.stat = _probing(_STAT)
    os.lstat = _probing(_LSTAT)


# Variables that steer the run, never passed from the user's environment (maestro/envvars.py)
_STEERING = ("PYTHON", "PYTEST_", "MAESTRO_", "VIRTUAL_ENV", "COV_CORE_", "COVERAGE_")
# Passed to pytest and keyed only for the test files that read them, set or not: the user's own
# (maestro/envvars.py KEYED_WHEN_READ)
_KEYED_WHEN_READ: frozenset[str] = rec.KEYED_WHEN_READ
# The window's test file ("" outside every file) -> the variables read there and found unset,
# and those of `_KEYED_WHEN_READ` read there.
_env_reads: dict[str, set[str]] = {}
# A Python process was started whose record may come in a later window than the one starting
# it (started outside every test, or not ended when its window closed)
_stray_children = False


def _started_in(window: _Window, record: dict[str, Any]) -> bool:
    """May `record` be of a process `window` started? Not of one running when it opened, nor
    of one forked before (in the same tick, when an earlier child may still be starting).
    Without the start times (not Linux), any other may."""
    if record.get("pid") in window.running:
        return False
    forked, opened = record.get("forked"), window.opened
    if not isinstance(forked, int) or opened is None:
        return True
    return forked > opened or (forked == opened and not _stray_children)


def _stray_started() -> None:
    global _stray_children
    _stray_children = True


# The recorder's extension modules whose C code reads these variables with getenv(), less
# readline here: pytest imports it before any test in every session, and only its line editing
# and history, which no test under a runner with stdin at /dev/null uses, see what it read (a
# child's stdin is the test's to give: there it counts)
_C_READERS = {m: names for m, names in rec.C_ENV_READERS.items() if m != "readline"}
_C_SEEN: set[str] = set()  # those found loaded (their functions wrapped)


def _note_env(window: _Window | None, names: Any, frame: Any = None) -> None:
    """`window` (None: before the session) read the variables `names`, unless the code reading
    (the first frame from `frame` outside the standard library) is pytest's or Maestro's own."""
    where = window.test_file if window is not None else ""
    noted = _env_reads.get(where)
    fixture = window.env if window is not None else None
    new = [
        n for n in names
        if noted is None or n not in noted or (fixture is not None and n not in fixture)
    ]  # fmt: skip
    # whose read it is takes a walk up the stack (an audit event per frame): only for a name
    # not noted there yet, as a suite asks for the same few many times
    if not new or (frame is not None and _pytest_reads(frame)):
        return
    _env_reads.setdefault(where, set()).update(new)
    if fixture is not None:
        fixture.update(new)


def _watch_c_readers(window: _Window | None) -> None:
    """Charge `window`, which was open while one of `_C_READERS` was loaded (a test file's
    collection or test, or the session), with the variables its C code reads, and every call
    of its functions from then on to the window making it: they may read them again, or use
    what an earlier call read (the terminal curses set up)."""
    for module, names in _C_READERS.items():
        if module in _C_SEEN or module not in sys.modules:
            continue
        _C_SEEN.add(module)
        _note_env(window, names)
        for loaded in (sys.modules.get(module), sys.modules.get(module.lstrip("_"))):
            for attr, value in list(vars(loaded).items()) if loaded is not None else ():
                if isinstance(value, _BUILTIN):
                    setattr(loaded, attr, _reading_env(value, names))


_BUILTIN = type(len)


def _reading_env(real: Any, names: tuple[str, ...]) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        _note_env(_active, names)
        return real(*args, **kwargs)

    call.__name__, call.__qualname__, call.__doc__ = real.__name__, real.__qualname__, real.__doc__
    call.__wrapped__ = real  # type: ignore[attr-defined]
    return call


def _watch_environ() -> None:
    """Note a read by name through ``os.environ`` (``[]``, ``get``, ``os.getenv``, ``in``: all
    go through ``__getitem__``, and so do ``copy()``, ``items()`` and ``dict(os.environ)``)
    that found the variable unset: one the runner did not pass (plain pytest may see the user's
    value) or one unset for the user too (setting it later would change what the test sees).
    A variable found set was passed, and the key covers it; so a miss is noted, and a hit pays
    nothing, except for the user's own variables (`_KEYED_WHEN_READ`), which are keyed only
    for the files that read them: found set or not. Iterating the names counts as reading all
    of those (a copy of the environment handed to a child); and so does tempfile's temporary
    folder (``$TMPDIR``, read once per process and kept) and pytest's ``tmp_path``'s."""
    environ, environb = os.environ, getattr(os, "environb", None)
    real = os._Environ.__getitem__
    real_iter, real_repr = os._Environ.__iter__, os._Environ.__repr__
    keyed = _KEYED_WHEN_READ
    keyed_b = {os.fsencode(n): n for n in keyed}

    def getitem(self: Any, key: Any) -> Any:
        try:
            found = real(self, key)
        except KeyError:
            if self is environ and type(key) is str and not key.startswith(_STEERING):
                _note_env(_active, (key,), sys._getframe(1))
            raise
        if key in keyed and self is environ:
            _note_env(_active, (key,), sys._getframe(1))
        elif self is environb and key in keyed_b:
            _note_env(_active, (keyed_b[key],), sys._getframe(1))
        return found

    def iterate(self: Any) -> Any:
        if self is environ or self is environb:
            _note_env(_active, keyed, sys._getframe(1))
        return real_iter(self)

    def represent(self: Any) -> Any:
        if self is environ or self is environb:
            _note_env(_active, keyed, sys._getframe(1))
        return real_repr(self)

    os._Environ.__getitem__ = getitem  # type: ignore[method-assign]
    os._Environ.__iter__ = iterate  # type: ignore[method-assign]
    os._Environ.__repr__ = represent  # type: ignore[method-assign]
    real_tempdir: Any = getattr(tempfile, "_gettempdir", None)

    def gettempdir() -> Any:
        # tempfile looks $TMPDIR up once per process (the recorder did, at start-up) and keeps
        # the answer: every later use of it reads it still
        _note_env(_active, ("TMPDIR",), sys._getframe(1))
        return real_tempdir()

    if callable(real_tempdir):
        tempfile._gettempdir = gettempdir  # type: ignore[attr-defined]
    try:
        from _pytest.tmpdir import TempPathFactory
    except ImportError:
        return
    real_basetemp = TempPathFactory.getbasetemp

    def getbasetemp(self: Any) -> Any:
        # pytest's tmp_path and tmpdir are made under the temporary folder it found once, in
        # the session's first test to ask: every test that asks reads $TMPDIR as that one did
        if getattr(self, "_given_basetemp", None) is None:
            _note_env(_active, ("TMPDIR",))
        return real_basetemp(self)

    TempPathFactory.getbasetemp = getbasetemp  # type: ignore[method-assign]


# The reader is the first caller outside the standard library (os.environ.get, os.getenv and
# `in` are written there, and shutil.get_terminal_size reads COLUMNS for whoever asks) ...
_STDLIB = os.path.dirname(os.__file__) + os.sep
# ... and pytest's and pluggy's own reads (CI, NO_COLOR, COLUMNS) shape what pytest prints,
# which Maestro renders itself: no test's outcome
_RUNNER_CODE = (
    *(os.path.dirname(m.__file__) + os.sep for m in (_pytest, pluggy) if m.__file__),
    os.path.abspath(__file__),
)


def _pytest_reads(frame: Any) -> bool:
    while frame is not None:
        name: str = frame.f_code.co_filename
        if not (
            name.startswith("<frozen ")
            or (name.startswith(_STDLIB) and os.sep + "site-packages" + os.sep not in name)
        ):
            return name.startswith(_RUNNER_CODE)
        frame = frame.f_back
    return False


def _children_dir(config: Any) -> str:
    """A private directory where the tests' Python children leave their records; exported to
    them through the environment they inherit (as coverage.py's subprocess support does).
    The runner's, when it made one: it removes it however this process ends (pytest_unconfigure
    does not run on SIGTERM or SIGKILL)."""
    directory = os.environ.pop(ENV_RUN_CHILD_DIR, "")
    if not (directory and os.path.isdir(directory)):
        try:
            directory = tempfile.mkdtemp(prefix="maestro-children-")  # 0700
        except OSError:
            return ""
    rootpath = getattr(config, "rootpath", None) or config.rootdir
    os.environ[rec.ENV_DIR] = directory
    os.environ[rec.ENV_ROOT] = rec.abspath(str(rootpath))
    return directory


def _skipping_folder(error: BaseException) -> str | None:
    """The folder of the conftest whose import raised ``error`` (a module-level skip)."""
    tb = error.__traceback__
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if os.path.basename(filename) == "conftest.py":
            found = os.path.dirname(os.path.abspath(filename))
        tb = tb.tb_next
    return found


def _under(invocation_dir: str, arg: str, folders: Sequence[str]) -> bool:
    """Whether the path of ``arg`` (a path or node id) is in one of ``folders``."""
    path = os.path.abspath(os.path.join(invocation_dir, str(arg).split("::")[0]))
    return any(path == f or path.startswith(f + os.sep) for f in folders)


class _SkippedFolders:
    """Files Maestro named under a folder whose conftest skips at import: pytest's walk reports
    the folder skipped (as its run of the whole suite does) instead of 'not found'."""

    def __init__(self, invocation_dir: str, folders: list[str]) -> None:
        self.invocation_dir = invocation_dir
        self.folders = folders
        self.session: Any = None

    def pytest_sessionstart(self, session: Any) -> None:
        self.session = session

    def pytest_collectreport(self, report: Any) -> None:
        # the session's own report comes last, right before pytest checks the named paths
        notfound = getattr(self.session, "_notfound", None) if report.nodeid == "" else None
        if notfound:
            notfound[:] = [
                entry
                for entry in notfound
                if not _under(self.invocation_dir, entry[0], self.folders)
            ]


@pytest.hookimpl(trylast=True)
def pytest_warning_recorded(warning_message: Any, when: str, nodeid: str, location: Any) -> None:
    """Recording resumes once pytest's plugins have seen a warning (the plugin's own
    implementation, first, stops it)."""
    global _active
    if _FORMATTING:
        _active = _FORMATTING.pop()


def _no_coverage_reports(namespace: Any) -> None:
    """A background run (one nobody asked for) writes no pytest-cov report: its ``coverage.xml``
    or ``htmlcov/`` would replace the user's with a part of the suite. Done before pytest-cov
    reads its options (its own ``tryfirst`` implementation of this hook); ``{"": None}`` is what
    ``--cov-report=`` gives: no report, the total still computed for ``--cov-fail-under``."""
    if getattr(namespace, "cov_source", None) and hasattr(namespace, "cov_report"):
        namespace.cov_report = {"": None}


@pytest.hookimpl(hookwrapper=True)
def pytest_load_initial_conftests(early_config: Any, parser: Any, args: list[str]) -> Any:
    """Under a runner, test files are named where pytest's run of the suite walks folders: one
    under a folder whose conftest skips at import (``pytest.importorskip`` at its top) would stop
    pytest before the session. Its files are left out of the initial conftests (the rest load as
    pytest loads them) and stay named: the collection reports the folder skipped, as the walk
    does."""
    _anchor_walks(early_config)
    if os.environ.get(ENV_BACKGROUND):
        _no_coverage_reports(early_config.known_args_namespace)
    outcome = yield
    error = outcome.excinfo[1] if outcome.excinfo else None
    if not isinstance(error, pytest.skip.Exception) or not os.environ.get(ENV_FD):
        return
    namespace = early_config.known_args_namespace
    invocation_dir = str(early_config.invocation_params.dir)
    folders: list[str] = []
    while isinstance(error, pytest.skip.Exception):
        folder = _skipping_folder(error)
        named = list(namespace.file_or_dir or [])
        kept = [a for a in named if folder is None or not _under(invocation_dir, a, [folder])]
        if not kept and early_config.inipath is not None:
            kept = [str(early_config.inipath)]  # the rootdir's conftests, not testpaths'
        if folder is None or kept == named:
            return  # what pytest says of it: the suite's walk would load it the same way
        folders.append(folder)
        namespace.file_or_dir = kept
        try:
            early_config.pytest_load_initial_conftests(early_config)
        except pytest.skip.Exception as again:
            error = again
        else:
            error = None
    early_config.pluginmanager.register(
        _SkippedFolders(invocation_dir, folders), "maestro-skipped-folders"
    )
    outcome.force_result(None)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: Any) -> None:
    """Under a runner, pytest-xdist's workers (``-n``, ``--dist``, ``--tx``, from the command line
    or addopts) would run the tests where nothing records them: the tests run in this process
    instead, as xdist's own ``-n 0`` runs them (before xdist reads its options)."""
    if os.environ.get(ENV_FD) and not hasattr(config, "workerinput"):
        started = _ConfigureWarnings()
        config.pluginmanager.register(started, _CONFIGURE_WARNINGS)
        config.pluginmanager.register(_ConfigureEnd(started), "maestro-configure-end")
    option = config.option
    if not os.environ.get(ENV_FD) or not hasattr(option, "numprocesses"):
        return
    option.numprocesses = 0
    option.distload = False
    option.dist = "no"
    option.tx = []


_CONFIGURE_WARNINGS = "maestro-configure-warnings"


class _ConfigureWarnings:
    """The warnings raised in ``pytest_configure`` implementations (a conftest's, a plugin's such
    as pytest-asyncio's): pytest records none of them for its summary, Python prints each on the
    error output as pytest starts. Kept as printed, for the runner to show them (it shows no
    pytest output); printed as before. A historic hook takes no wrapper: recording starts in the
    first implementation called and ends in a last one (`_ConfigureEnd`); pytest's own
    ``catch_warnings`` around the call restores Python's state if an implementation raises."""

    def __init__(self) -> None:
        self.printed: list[str] = []
        self._catching: Any = None
        self._log: list[Any] = []

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: Any) -> None:
        self._catching = warnings.catch_warnings(record=True)
        self._log = self._catching.__enter__()

    def end(self) -> None:
        if self._catching is None:
            return
        self._catching.__exit__(None, None, None)
        self._catching = None
        for message in self._log:
            try:
                text = warnings._formatwarnmsg(message)  # type: ignore[attr-defined]
            except Exception:  # Python's internals moved: its public wording
                text = warnings.formatwarning(
                    str(message.message), message.category, message.filename, message.lineno,
                    message.line,
                )  # fmt: skip
            with contextlib.suppress(Exception):
                sys.stderr.write(text)
            if len(self.printed) < _MAX_WARNINGS_SHOWN:
                self.printed.append(text[:_MAX_WARNING_TEXT])
        self._log = []


class _ConfigureEnd:
    def __init__(self, started: _ConfigureWarnings) -> None:
        self._started = started

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: Any) -> None:
        self._started.end()


# Modules whose ``pytest_runtest_makereport`` wrappers never look at a report's text (pytest's own
# set the outcome of xfail and unittest skips from the exception, not its text; Hypothesis' adds
# sections).
_TEXT_BLIND_WRAPPERS = ("_pytest.", "maestro_", "_hypothesis_pytestplugin")


class _PytestReport:
    """pytest's own report of a failed phase, made with the recorder's hook off (3.11's cProfile:
    formatting the tracebacks of a mass failure took most of such a run, at about 1.6x the CPU
    of pytest's own). Only when the item keeps pytest's ``repr_failure`` and no wrapper may judge
    the report's text: what runs there then formats the failure's text (an exception's
    ``__str__`` included) after the code that ran decided the outcome, and a failure re-runs
    anyway. The other implementations pluggy would
    call before pytest's runner are called here first, in its order and recorded, as pluggy
    would (the first answer wins); a test formatting a failure itself stays recorded too."""

    def __init__(self, tracer: _Tracer) -> None:
        self._tracer = tracer

    def pytest_runtest_makereport(self, item: Any, call: Any) -> Any:
        excinfo = call.excinfo
        if excinfo is None or isinstance(excinfo.value, _SKIP_TYPES):
            return None
        before = self._before_pytests(item)
        if before is None:
            return None
        args = {"item": item, "call": call}
        for impl in before:
            report = impl.function(*(args[name] for name in impl.argnames))
            if report is not None:
                return report
        if not self._tracer.pause():
            return _pytest_runner.pytest_runtest_makereport(item, call)
        try:
            return _pytest_runner.pytest_runtest_makereport(item, call)
        finally:
            self._tracer.resume()

    def _before_pytests(self, item: Any) -> list[Any] | None:
        """The plain implementations pluggy calls after this one and before pytest's runner;
        None unless the runner's comes after them and the item formats as pytest does."""
        try:
            if not type(item).repr_failure.__module__.startswith("_pytest."):
                return None
            impls = []
            for impl in item.ihook.pytest_runtest_makereport.get_hookimpls():
                if not impl.hookwrapper and not getattr(impl, "wrapper", False):
                    impls.append(impl)
                elif not impl.function.__module__.startswith(_TEXT_BLIND_WRAPPERS):
                    return None  # it may judge the report's text
            # pluggy calls them from the last to the first
            mine = next(i for i, impl in enumerate(impls) if impl.plugin is self)
            runner = next(
                i
                for i, impl in enumerate(impls)
                if impl.function is _pytest_runner.pytest_runtest_makereport
            )
            if runner >= mine or set(impls[runner].argnames) - {"item", "call"}:
                return None
            before = impls[runner + 1 : mine][::-1]
            if any(set(impl.argnames) - {"item", "call"} for impl in before):
                return None
        except Exception:  # pytest or pluggy internals moved: pytest makes it, recorded
            return None
        return before


WALK_OPTION = "--maestro-walk"  # graph/pytest_config.py's WALK_OPTION
NAMED_OPTION = "--maestro-named"  # graph/pytest_config.py's NAMED_OPTION
# pytest's directory collector (pytest >= 8; before, a folder is not a node Maestro can walk)
_DIRECTORY: Any = getattr(pytest, "Directory", ())


def pytest_addoption(parser: Any) -> None:
    parser.addoption(
        WALK_OPTION, action="append", default=[], dest="maestro_walk", metavar="FOLDER",
        help="Maestro: walk this folder (one holding no test file) as pytest's walk of its "
        "parent would: its conftests' import error or skip is the folder's result",
    )  # fmt: skip
    parser.addoption(
        NAMED_OPTION, action="append", default=[], dest="maestro_named", metavar="FILE",
        help="Maestro: the user named this file, which pytest's walk does not collect: "
        "collect it as pytest collects a file named on its command line",
    )  # fmt: skip


def _anchor_walks(early_config: Any) -> None:
    """Folders to walk and no path named: pytest would load the initial conftests of its
    testpaths and of the ``test*`` folders in them, a walked folder's among them (a broken one
    would stop the run). Anchor them at a file beside each walked folder instead: the
    conftests above it are loaded, as pytest's walk loads them before entering it."""
    with contextlib.suppress(Exception):  # pytest internals moved: load them as pytest would
        namespace = early_config.known_args_namespace
        walks = getattr(namespace, "maestro_walk", None)
        if not walks or namespace.file_or_dir:
            return
        root = early_config.rootpath
        anchors: list[str] = []
        for folder in walks:
            here = (root / folder).parent
            while here != root and not any(p.is_file() for p in here.iterdir()):
                here = here.parent
            anchor = min((p for p in here.iterdir() if p.is_file()), default=None)
            if anchor is None:
                return
            anchors.append(str(anchor))
        namespace.file_or_dir = anchors


def _walk_only(config: Any) -> None:
    """Folders to walk and no path named: pytest would collect its testpaths, Maestro asked
    for nothing but the walks."""
    source = getattr(config, "args_source", None)
    if config.getoption("maestro_walk", None) and source is not None and source.name != "ARGS":
        config.args = []


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: Any) -> Any:
    """After the session's own collection (the files Maestro named), the folders to walk: each
    a directory collector as pytest's walk makes it (its conftests imported as it collects, an
    import error or a module-level skip its report, node id the folder), unless pytest's walk
    leaves it out (``collect_ignore``, ``--ignore``, ``norecursedirs``...)."""
    outcome = yield
    if not isinstance(collector, pytest.Session):
        return
    session = collector
    config = session.config
    walks = config.getoption("maestro_walk", None)
    report = outcome.get_result()
    if not walks or not report.passed or not _DIRECTORY:
        return
    root = config.rootpath
    memo: dict[Any, bool] = {}
    for folder in walks:
        path = root / folder
        if not path.is_dir():
            continue
        with contextlib.suppress(Exception):  # a broken conftest above: the walk reports it
            if maestro_collect_probe.walk_ignores(session, path, root, memo):
                continue
        node = session.gethookproxy(path).pytest_collect_directory(path=path, parent=session)
        if isinstance(node, _DIRECTORY):
            report.result.append(node)


def pytest_configure(config: Any) -> None:
    """Register the recorder when the runner gave us a descriptor; otherwise stay inert."""
    global _active
    _walk_only(config)
    if config.pluginmanager.has_plugin("maestro-recorder"):
        return
    stream = None if hasattr(config, "workerinput") else _open_stream()
    if stream is None:  # no runner, or a pytest-xdist worker (the controller reports)
        _active = None
        if _TRACER is not None:
            _TRACER.stop()
        return
    recorder = _Recorder(stream, _children_dir(config), str(config.invocation_params.dir))
    config.pluginmanager.register(recorder, "maestro-recorder")
    config.pluginmanager.register(_Drop(recorder), "maestro-drop")
    if _TRACER is not None and _TRACER.mode == "lsprof":
        config.pluginmanager.register(_PytestReport(_TRACER), "maestro-pytest-report")
    _rewrite_as_walked(config)


def _rewrite_as_walked(config: Any) -> None:
    """pytest rewrites the asserts of every module named on its command line, and Maestro names
    each module it runs for ``--doctest-modules``: walking the folder, pytest leaves such a
    module's asserts alone (only conftests, ``python_files`` and registered modules are
    rewritten), and a doctest or a test matching an ``AssertionError``'s message sees the
    difference. Judge those modules as the walk does (a file's result must not depend on how it
    was selected); a test module named by its path is rewritten as before."""
    if not config.getoption("doctestmodules", False):
        return
    try:
        from pathlib import Path

        from _pytest.assertion.rewrite import AssertionRewritingHook
        from _pytest.python import path_matches_patterns
    except ImportError:  # pytest internals moved: rewrite as pytest was asked to
        return
    hook = next((h for h in sys.meta_path if isinstance(h, AssertionRewritingHook)), None)
    real = getattr(hook, "_should_rewrite", None)
    if hook is None or real is None:
        return
    patterns = config.getini("python_files")

    def should_rewrite(name: str, fn: str, state: Any) -> bool:
        path = Path(fn)
        if path.name == "conftest.py" or path_matches_patterns(path, patterns):
            return bool(real(name, fn, state))
        session, hook.session = hook.session, None  # as if not on the command line
        try:
            return bool(real(name, fn, state))
        finally:
            hook.session = session

    hook._should_rewrite = should_rewrite  # type: ignore[method-assign]  # this hook only


def _loaded_sources() -> tuple[str, ...]:
    """The Python source files of the modules loaded so far."""
    found = (_file_of(m) for m in list(sys.modules.values()))
    return tuple(f for f in found if isinstance(f, str) and f.endswith(".py"))


def _qualnames(path: str) -> set[str]:
    """The qualified names of every function, class body and module code in a source file,
    as a record names them."""
    try:
        with open(path, "rb") as source:
            code = compile(source.read(), path, "exec", dont_inherit=True)
    except (OSError, SyntaxError, ValueError):
        return {"<module>"}
    names: set[str] = set()
    stack = [code]
    while stack:
        code = stack.pop()
        names.add(rec.owner_qualname(getattr(code, "co_qualname", code.co_name)))
        stack += [c for c in code.co_consts if isinstance(c, CodeType)]
    return names


def _started_before() -> list[CodeType] | None:
    """The code that started in this process before pytest loaded us, as maestro_early.py
    noted it (from sitecustomize); None when nothing noted it."""
    try:
        import maestro_early  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    found: list[CodeType] | None = maestro_early.stop()
    return found


_EARLY_CODE = _started_before()
# unnoted: every function of the workspace modules loaded before us counts as having run
_LOADED_BEFORE = _loaded_sources() if _EARLY_CODE is None else ()
_start_recording()
_start_tracer()
