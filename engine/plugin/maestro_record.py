"""What a process reads, writes, starts and executes: the recording core shared by the pytest
plugin and by the Python processes a test starts.

Stdlib only, Python 3.11+: it runs inside the workspace's interpreter and inside every Python
child of a test. The child side works as coverage.py's subprocess support does: the plugin sets
``MAESTRO_CHILD_DIR`` for the session, the ``sitecustomize`` module beside this file (on
PYTHONPATH) starts a ``ChildRecorder`` in every Python process that inherits it, and each child
writes one JSON record into that directory when it exits (or replaces itself by exec). The
plugin folds the records into the test that was running, with which of the user's own variables
(``KEYED_WHEN_READ``) each child read.

What cannot be recorded is said, never guessed: a process that is not Python (``cat``, a shell),
a fork (its record dies with ``os._exit``) or a Python child that left no record (``-I``, ``-E``,
a cleared environment, killed) makes the test *opaque*: it then depends on the whole workspace.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import stat
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Collection
from typing import Any, NamedTuple, NoReturn

ENV_DIR = "MAESTRO_CHILD_DIR"
ENV_ROOT = "MAESTRO_CHILD_ROOT"
RECORD_PREFIX = "child-"
RUNNING_PREFIX = "running-"  # a recorded child's mark while it runs (its record comes at exit)
KEYED_WHEN_READ = frozenset({"HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "TERM"})
"""The user's own variables (maestro/envvars.py), keyed only for the tests that read them."""
# Extension modules whose C code reads some of them with getenv(), which os.environ never sees:
# curses its terminal's description ($TERM, ~/.terminfo), readline ~/.inputrc and $TERM
C_ENV_READERS = {"_curses": ("TERM", "HOME"), "readline": ("TERM", "HOME")}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_ANONYMOUS = frozenset(
    {"<lambda>", "<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>", "<locals>"}
)
# Audit events that start another program; "os.fork" children share our memory but lose their
# record at os._exit, so they count as opaque.
SPAWN_EVENTS = frozenset(
    {"subprocess.Popen", "os.posix_spawn", "os.spawn", "os.exec", "os.system", "os.fork",
     "os.forkpty", "pty.spawn"}
)  # fmt: skip


LIST_EVENTS = frozenset({"os.listdir", "os.scandir"})
# tempfile about to make a folder (mkdtemp, TemporaryDirectory) or a file (mkstemp,
# NamedTemporaryFile) under a name it drew at random
SCRATCH_EVENTS = frozenset({"tempfile.mkdtemp", "tempfile.mkstemp"})
LISTING = "\x00dir:"
"""Marks a directory listing among the paths a process read (no path holds a NUL): a test that
walks a directory depends on which names are in it, not only on the files it then opens."""
# Code that lists directories for its own bookkeeping: the import system's finders cache every
# directory on sys.path, importlib.metadata scans it for distributions, pytest and pluggy walk
# the tree. What they see is keyed otherwise (the graph, the installed-distribution listing).
# os's functions as they were when the recorder was imported: a test may wrap them while it runs
# (blockbuster raises BlockingError in os.path.abspath, os.getcwd, os.stat inside an event loop),
# and the recorder's hooks run inside the test's own calls (an open(), an import)
_getcwd = os.getcwd
_os_exit = os._exit
_lstat = getattr(os.lstat, "__wrapped__", os.lstat)  # not a recorder's probe


# files the import system, linecache and inspect stat all the time; imports are recorded as such
_SOURCE_SUFFIXES = (".py", ".pyc", ".pyi", ".so", ".pyd")


def by_linecache() -> bool:
    """Whether the stat a probe sees failing is linecache's (``sys._getframe(2)``: the probe's
    caller), looking for the source lines of code to show in a traceback or to ``inspect``:
    the code's file name is then no file, as Mako's in-memory templates (``memory:0x7f...``,
    another in every process), and its absence no input. A file linecache finds it reads, and
    that read is recorded as any other."""
    try:
        return sys._getframe(2).f_globals.get("__name__") == "linecache"
    except ValueError:
        return False


_SUPPORTS = ("supports_fd", "supports_dir_fd", "supports_follow_symlinks", "supports_effective_ids")


def stand_in(probe: Callable[..., Any], real: Callable[..., Any]) -> Callable[..., Any]:
    """`probe` (put in place of ``os.stat``/``os.lstat``) passing for `real` wherever code asks
    which function it is: its name and module (pyfakefs fakes a function bound by ``from os
    import stat`` only when they are os's) and its membership in ``os.supports_fd`` and its
    kin (``os.stat in os.supports_fd``: shutil's choice of its safe ``rmtree``, pyfakefs's
    capabilities)."""
    for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
        with contextlib.suppress(AttributeError, TypeError):
            setattr(probe, attr, getattr(real, attr))
    probe.__wrapped__ = real  # type: ignore[attr-defined]
    for name in _SUPPORTS:
        members = getattr(os, name, None)
        if isinstance(members, set) and real in members:
            members.add(probe)
    return probe


def abspath(path: Any) -> str:
    """``os.path.abspath`` of a str or path-like, through the functions saved at import."""
    text: str | bytes = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if _POSIX and text[:1] == "/" and "//" not in text and "/." not in text and text[-1] != "/":
        return text  # no empty, '.' or '..' part: normpath would return it as it is
    return os.path.normpath(text if os.path.isabs(text) else os.path.join(_getcwd(), text))


_POSIX = os.sep == "/" and os.altsep is None


_BOOKKEEPERS = ("<frozen importlib", "/importlib/", "/_pytest/", "/pluggy/")


_BOOKKEEPING, _WORKSPACE, _OTHER = "bookkeeping", "workspace", "other"
# Per workspace check, what each code file is to `listed` (a session lists hundreds of
# directories, each from a few dozen frames; most are the same few files).
_FRAME_KINDS: dict[Callable[[str], bool], dict[str, str]] = {}


def _frame_kind(filename: str, is_workspace: Callable[[str], bool]) -> str:
    if filename.startswith(_BOOKKEEPERS[0]) or any(b in filename for b in _BOOKKEEPERS[1:]):
        return _BOOKKEEPING
    return _WORKSPACE if is_workspace(filename) else _OTHER


def listed(args: tuple[Any, ...], is_workspace: Callable[[str], bool]) -> str | None:
    """The marked absolute directory of an ``os.listdir``/``os.scandir`` audit event when
    workspace code asked for it (directly or through the standard library's walks, globs and
    paths); None for a descriptor, for bookkeeping listings and outside workspace code."""
    if _own_listings and threading.get_ident() in _own_listings:
        return None  # the recorder's own look at its records directory
    frame: Any = sys._getframe(2)  # the caller of listdir/scandir (this <- the audit hook)
    kinds = _FRAME_KINDS.get(is_workspace)
    if kinds is None:
        kinds = _FRAME_KINDS[is_workspace] = {}
    while frame is not None:
        filename = frame.f_code.co_filename
        kind = kinds.get(filename)
        if kind is None:
            kind = _frame_kind(filename, is_workspace)
            if filename.startswith("/") or not filename.endswith(".py"):
                kinds[filename] = kind  # (where a relative file name is depends on the cwd)
        if kind is _BOOKKEEPING:
            return None
        if kind is _WORKSPACE:
            break
        frame = frame.f_back
    if frame is None:
        return None
    path = args[0] if args else None
    if isinstance(path, int):
        return None
    try:
        text = "." if path is None else os.fsdecode(path)
        return LISTING + abspath(text)
    except Exception:  # an odd path object must never break the code that listed it
        return None


_LOADER = "<frozen importlib._bootstrap_external>"
_LOADING = ("get_data", "get_code", "exec_module")


def scratch_made(args: tuple[Any, ...]) -> str | None:
    """The absolute path a ``tempfile.mkdtemp``/``tempfile.mkstemp`` audit event names, when
    nothing has it yet: tempfile then makes it (a name it finds taken, it passes over for
    another). What is looked up under it is the run's own scratch: the name is new to this run
    and a later run draws another, so nothing a later run looks up can be there under it. A
    folder of a fixed name the test makes is no such thing (a user may fill it later)."""
    if not args or not isinstance(args[0], (str, bytes)):
        return None
    path = abspath(args[0])
    try:
        _lstat(path)
    except FileNotFoundError:
        return path
    except (OSError, ValueError):
        return None
    return None


class _ThreadingSys:
    """threading's view of ``sys`` (its module global ``_sys``): every name is sys's, but
    ``setprofile``/``settrace`` retry 3.11's refusal to install a hook while another thread is
    installing one. A new thread installs threading's hook in ``_bootstrap_inner`` before it runs
    its target; the recorder's audit hook is Python code, so the interpreter may switch threads
    inside that install and another new thread's install is then refused ("Cannot install a
    profile function while another profile function is being installed"): that thread died
    without running its target (pytest counted a warning; a test waiting for it hung)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(sys, name)

    @staticmethod
    def setprofile(function: Any) -> None:
        _install(sys.setprofile, function)

    @staticmethod
    def settrace(function: Any) -> None:
        _install(sys.settrace, function)


def _install(install: Callable[[Any], None], function: Any) -> None:
    for _ in range(10_000):
        try:
            install(function)
            return
        except RuntimeError as exc:
            if "is being installed" not in str(exc):
                raise
            time.sleep(0)  # let the other thread finish its install
    install(function)


def steady_thread_hooks() -> None:
    """Make the installs of threading's hooks in new threads retry a refusal (see
    `_ThreadingSys`); before 3.12 only (3.12's recorder uses sys.monitoring, no thread hook)."""
    if sys.version_info < (3, 12) and getattr(threading, "_sys", None) is sys:
        threading._sys = _ThreadingSys()  # type: ignore[attr-defined]


# A profile hook set (``sys.setprofile``, a profiler's ``enable``/``disable`` before 3.12)
HOOK_EVENTS = frozenset({"sys.setprofile", "sys._setprofileallthreads"})
HOOK_LOST = "\0profile hook replaced"
"""A spawn entry: code ran a while under another profile hook than the recorder's (unseen)."""
_OWN_CODE = os.path.dirname(os.path.abspath(__file__)) + os.sep  # the recorders' folder


def hook_set_by_other(frame: Any, own: Any) -> bool:
    """Did the code of `frame` (the caller of an audited ``sys.setprofile`` or a profiler's
    ``enable``/``disable``) set a profile hook for other code than Maestro's recorders: a
    test's own, or none? A new thread installing ``threading``'s hook is the recorder's when
    that hook is `own`, the one the recorder gives new threads."""
    if frame is None:
        return True
    code = frame.f_code
    if code.co_filename.startswith(_OWN_CODE) and code.co_name == "_install":
        # threading's install through `_ThreadingSys`: judged by threading's own frame
        frame = frame.f_back.f_back if frame.f_back is not None else None
        if frame is None:
            return True
        code = frame.f_code
    if code.co_filename.startswith(_OWN_CODE):
        return False
    if code.co_name == "_bootstrap_inner" and os.path.basename(code.co_filename) == "threading.py":
        return getattr(sys.modules.get("threading"), "_profile_hook", None) is not own
    return True


def tempdir_probe(frame: Any) -> bool:
    """Is `frame` (the caller of an audited ``open``) tempfile finding its folder (the first
    ``gettempdir()`` of a process): it makes a file under a name drawn at random, writes it
    and removes it."""
    return frame is not None and tempdir_code(frame.f_code)


def tempdir_code(code: Any) -> bool:
    """`tempdir_probe` of the frame running `code` (read once: each ``f_code`` read is an
    audit event)."""
    return (
        code is not None and code.co_name == "_get_default_tempdir"
        and os.path.basename(code.co_filename) == "tempfile.py"
    )  # fmt: skip


def in_scratch(path: str, scratch: Collection[str]) -> bool:
    """Is the normalised absolute ``path`` one of ``scratch`` or under one of them?"""
    while True:
        if path in scratch:
            return True
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent


def caller(depth: int) -> Any:
    """The frame `depth` levels above the caller, or None: an audit event raised by the
    interpreter itself (opening a script given on its command line) has no Python frame."""
    try:
        return sys._getframe(depth + 1)
    except ValueError:
        return None


def loads_code(frame: Any) -> bool:
    """Is `frame` (the caller of an audited ``open``) the import system reading a module's
    source or bytecode to execute it (importlib's get_data, called by get_code, called by
    exec_module)? That read is the module's code, which the recorder follows as it runs (its
    top level and each function), not data its text is read as (``inspect``, ``open``)."""
    for name in _LOADING:
        if frame is None or frame.f_code.co_name != name or frame.f_code.co_filename != _LOADER:
            return False
        frame = frame.f_back
    return True


def opened(args: tuple[Any, ...]) -> tuple[str, bool] | None:
    """(absolute path, opened for writing) of an ``open`` audit event; None for descriptors."""
    path = args[0]
    if isinstance(path, int):
        return None
    mode = args[1] if len(args) > 1 else None
    flags = args[2] if len(args) > 2 else 0
    if isinstance(mode, str):
        write = ("w" in mode or "a" in mode or "x" in mode) and "+" not in mode
    else:
        write = isinstance(flags, int) and bool(flags & _WRITE_FLAGS) and not flags & os.O_RDWR
    try:
        text = os.fsdecode(path)
        if not os.path.isabs(text):
            text = os.path.join(_getcwd(), text)
    except Exception:  # an odd path object must never break the code that opened it
        return None
    return text, write


def replaces(args: tuple[Any, ...]) -> bool:
    """Does an ``open`` audit event for writing create or truncate the file (its content is
    then all the opener's), rather than append to it or write into it in place?"""
    mode = args[1] if len(args) > 1 else None
    if isinstance(mode, str):
        return "w" in mode or "x" in mode
    flags = args[2] if len(args) > 2 else 0
    return isinstance(flags, int) and bool(
        flags & os.O_TRUNC or flags & (os.O_CREAT | os.O_EXCL) == os.O_CREAT | os.O_EXCL
    )


UNSEEN = "\x00reads unseen: "
"""Marks, among the programs a process ran, a tool whose reads no audit event tells."""
# Tools that read what they work on in native code and skip what did not change by its times:
# mypy parses with a Rust extension and keeps an incremental cache that stands for the files
# it then does not open. A process that loaded one (a module of it), and the entry points a
# test calls in the pytest process, depend on everything.
UNSEEN_READERS = {"mypy.build": "mypy's type checker"}
UNSEEN_ENTRIES = {"mypy.api": ("mypy's type checker", ("run", "run_dmypy"))}


def unseen_readers() -> list[str]:
    """The tools of ``UNSEEN_READERS`` this process loaded."""
    return [what for name, what in UNSEEN_READERS.items() if name in sys.modules]


def watch_unseen(module: Any, ran: Callable[[str], None]) -> None:
    """Wrap the entry points of ``module`` (``UNSEEN_ENTRIES``): each call reports ``ran``."""
    what, names = UNSEEN_ENTRIES.get(getattr(module, "__name__", ""), ("", ()))
    for name in names:
        real = getattr(module, name, None)
        if real is None or getattr(real, "_maestro_unseen", False):
            continue

        def entry(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            ran(what)
            return _real(*args, **kwargs)

        entry._maestro_unseen = True  # type: ignore[attr-defined]
        entry.__doc__, entry.__name__ = real.__doc__, name
        setattr(module, name, entry)


def spawned(event: str, args: tuple[Any, ...]) -> tuple[str, bool]:
    """(program, is Python) of a spawn audit event: the program as resolved on the PATH the child
    gets, and whether it will run our sitecustomize (and so leave a record)."""
    if event in ("os.fork", "os.forkpty"):
        return "fork()", False
    if event == "os.system":
        return _program(["/bin/sh"], None), False
    executable, argv, env = None, None, None
    if event == "subprocess.Popen":
        executable, argv, _cwd, env = (list(args) + [None] * 4)[:4]
    elif event in ("os.posix_spawn", "os.exec"):
        executable, argv, env = (list(args) + [None] * 3)[:3]
    elif event == "os.spawn":
        _mode, executable, argv, env = (list(args) + [None] * 4)[:4]
    elif event == "pty.spawn":
        argv = args[0] if args else None
    try:
        if isinstance(argv, (str, bytes)):
            argv = [argv]
        first = executable if executable is not None else (argv[0] if argv else "")
        program = _program([os.fsdecode(first)], env)
        return program, is_python(program)
    except Exception:
        return "an unknown program", False


NO_RECORD = "\0no recorder: "
"""A spawn entry: a Python child whose environment or flags leave out the recorder
(`recorder_dropped`), as ``NO_RECORD + why + "\0" + program``."""
_HERE = os.path.dirname(os.path.abspath(__file__))


def recorder_dropped(event: str, args: tuple[Any, ...], program: str) -> str | None:
    """Why the Python child a spawn audit event starts cannot run the recorder, when its
    environment or its interpreter flags say so: no ``MAESTRO_CHILD_DIR``, a ``PYTHONPATH``
    without this folder (a test that sets its own, ``{**os.environ, "PYTHONPATH": "src"}``),
    ``-I``, ``-E`` or ``-S``. None when it will, or when the event does not say."""
    argv, env = None, None
    if event == "subprocess.Popen":
        _executable, argv, _cwd, env = (list(args) + [None] * 4)[:4]
    elif event in ("os.posix_spawn", "os.exec"):
        _executable, argv, env = (list(args) + [None] * 3)[:3]
    elif event == "os.spawn":
        _mode, _executable, argv, env = (list(args) + [None] * 4)[:4]
    else:
        return None
    try:
        source: Any = os.environ if env is None else env

        def get(name: str) -> str:
            value = source.get(name)
            if value is None:
                value = source.get(name.encode())
            return "" if value is None else os.fsdecode(value)

        if not get(ENV_DIR):
            return f"an environment without {ENV_DIR}"
        entries = {os.path.normpath(p) for p in get("PYTHONPATH").split(os.pathsep) if p}
        if _HERE not in entries:
            return "a PYTHONPATH that leaves out Maestro's recorder folder"
        interpreter = os.path.basename(program).startswith(("python", "pypy"))
        rest = list(argv[1:]) if interpreter and isinstance(argv, (list, tuple)) else []
        while rest:  # the interpreter's own flags, up to the script, -c or -m
            text = os.fsdecode(rest.pop(0))
            if text.startswith("--"):
                continue
            if not text.startswith("-") or text == "-":
                break
            for at, char in enumerate(text[1:], 2):
                if char in "IES":
                    return f"the flag -{char}"
                if char in "cm":
                    return None
                if char in "WX":  # its value: the rest, or the next argument
                    if at == len(text):
                        rest = rest[1:]
                    break
    except Exception:
        return None
    return None


# What a few compiled tools read is named by their arguments: ``file`` and ``cat`` read their
# operands (``file`` its magic database too, unless $MAGIC moves it), ``uname`` and ``less``
# without arguments none of the workspace, ``sh -c`` with one simple command what that command
# reads. Only these flags, which take no value, are understood; any other makes the program
# opaque again.
_FILE_FLAGS = frozenset(
    {"-b", "--brief", "-L", "--dereference", "-h", "--no-dereference", "-i", "--mime",
     "--mime-type", "--mime-encoding", "-z", "--uncompress", "-Z", "--uncompress-noreport",
     "-s", "--special-files", "-k", "--keep-going", "-N", "--no-pad", "-n", "--no-buffer",
     "-r", "--raw", "-E", "--extension", "-0", "--print0", "-S", "--no-sandbox"}
)  # fmt: skip
_CAT_FLAGS = frozenset(
    {"-A", "--show-all", "-b", "--number-nonblank", "-e", "-E", "--show-ends", "-n", "--number",
     "-s", "--squeeze-blank", "-t", "-T", "--show-tabs", "-u", "-v", "--show-nonprinting"}
)  # fmt: skip
# The tools whose reads are their operands, with the flags (taking no value) understood.
_TOOL_FLAGS = {"file": _FILE_FLAGS, "cat": _CAT_FLAGS}
_SHELLS = frozenset({"sh", "bash", "dash"})
_SHELL_SYNTAX = frozenset("$`;&|<>(){}*?[]~#!=\n\\")
_COMPILED = (b"\x7fELF", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
             b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")  # fmt: skip
# Read-only queries of a repository's metadata (its history, refs, configuration, the dirty flag
# of ``describe --dirty``): what tools such as pytest-benchmark or setuptools-scm ask at start-up.
_VCS_QUERIES = {
    "git": frozenset(
        {"rev-parse", "config", "describe", "show", "log", "symbolic-ref", "rev-list", "branch",
         "remote", "version", "--version", "for-each-ref", "name-rev"}
    ),
    "hg": frozenset(
        {"path", "paths", "id", "identify", "tip", "branch", "log", "root", "parents", "version",
         "--version"}
    ),
    "svn": frozenset({"info", "--version"}),
    "svnversion": None,  # any arguments
}  # fmt: skip


class _Start(NamedTuple):
    """A spawn that starts one program by its name or path."""

    named: str
    """The program as the spawn names it: its executable, or else ``argv[0]``."""
    program: str
    """``named`` resolved on the search path the child gets; as named when found nowhere."""
    argv: list[str]
    cwd: Any
    env: Any


def _started(event: str, args: tuple[Any, ...]) -> _Start | None:
    """The program a spawn event starts by its name or path; None for the other spawns (a fork,
    a shell command, a pty), for odd arguments and for a spawn that names no program."""
    if event == "subprocess.Popen":
        executable, argv, cwd, env = (list(args) + [None] * 4)[:4]
    elif event in ("os.posix_spawn", "os.exec"):
        (executable, argv, env), cwd = (list(args) + [None] * 3)[:3], None
    elif event == "os.spawn":
        (_mode, executable, argv, env), cwd = (list(args) + [None] * 4)[:4], None
    else:
        return None
    try:
        if isinstance(argv, (str, bytes)):
            argv = [argv]
        names = [os.fsdecode(a) for a in (argv or ())]
        named = os.fsdecode(executable) if executable is not None else (names[0] if names else "")
        if not named:
            return None
        return _Start(named, _program([named], env), names, cwd, env)
    except Exception:
        return None


def _search_path(env: Any) -> list[str]:
    raw = env.get("PATH", env.get(b"PATH")) if isinstance(env, dict) else os.environ.get("PATH")
    return os.fsdecode(raw).split(os.pathsep) if raw is not None else os.defpath.split(os.pathsep)


def _is_compiled(program: str) -> bool:
    """A native executable (ELF, Mach-O): the real tool, not a script named like it."""
    try:
        with open(program, "rb") as f:
            return f.read(4) in _COMPILED
    except OSError:
        return False


def known_reads(event: str, args: tuple[Any, ...]) -> list[str] | None:
    """The files a program started by a spawn audit event reads, when its arguments say it all:
    nothing for a program found nowhere on the search path (it never runs), the operands of
    ``file`` and ``cat``, nothing for ``uname``, ``ldconfig -p``, a bare ``less`` (its standard
    input) or the network listings ``uuid.getnode`` runs (``ip link`` ...), what
    the command of ``sh -c`` reads when it is one of these. None when what it reads is
    unknown."""
    start = _started(event, args)
    if start is None:
        return None
    try:
        if not os.path.isabs(start.program):
            # not found: exec fails too, unless a relative entry of the search path finds it
            # from the child's working directory
            relative = any(not os.path.isabs(d) for d in _search_path(start.env))
            return None if relative or os.sep in start.named else []
        where = os.fsdecode(start.cwd) if start.cwd is not None else _getcwd()
        return _tool_reads(start.program, start.argv[1:], where, start.env, shell=True)
    except Exception:
        return None


# What uuid.getnode() runs when the uuid library cannot tell the machine's MAC: the commands it
# runs, as it runs them (nothing else of these tools' arguments is judged)
_NETWORK_LISTINGS = frozenset(
    {("ip", "link"), ("ifconfig",), ("ifconfig", "-a"), ("ifconfig", "-av"), ("arp", "-an"),
     ("netstat", "-ian")}
)  # fmt: skip


def _tool_reads(
    program: str, rest: list[str], where: str, env: Any, *, shell: bool
) -> list[str] | None:
    """What the compiled tool `program` reads given its arguments `rest` (see `known_reads`);
    `shell`: ``sh -c`` with a simple command may be looked into."""
    if not _is_compiled(program):
        return None
    name = os.path.basename(program)
    if name == "uname":
        return [] if all(a.startswith("-") for a in rest) else None
    if name == "less":
        return [] if not rest else None  # its standard input only
    if (name, *rest) in _NETWORK_LISTINGS:
        return []  # the kernel's interfaces and tables (uuid.getnode asks them)
    if name == "ldconfig":
        # -p prints the system's library cache (ctypes.util.find_library asks it, as trio
        # does at import): nothing of the workspace; any other use may read or write more
        return [] if rest and all(a in ("-p", "--print-cache") for a in rest) else None
    if shell and name in _SHELLS and len(rest) >= 2 and rest[0] == "-c":
        # bash runs $BASH_ENV's file first, even for -c
        return None if _environ(env).get("BASH_ENV") else _shell_reads(rest[1], where, env)
    flags = _TOOL_FLAGS.get(name)
    if flags is None or (name == "file" and _environ(env).get("MAGIC")):
        return None
    operands: list[str] = []
    options = True
    for arg in rest:
        if options and arg == "--":
            options = False
        elif options and arg.startswith("-") and arg != "-":
            if arg not in flags:
                return None
        elif arg != "-":  # "-": the standard input
            operands.append(os.path.normpath(os.path.join(where, arg)))
    return operands


def _shell_reads(command: str, where: str, env: Any) -> list[str] | None:
    """``sh -c COMMAND`` where COMMAND is one simple command (words, quotes; no expansion,
    redirection, pipe, list, glob or assignment) that runs a known tool found on the PATH
    (a shell builtin never is one of them): what that tool reads."""
    if any(c in _SHELL_SYNTAX for c in command):
        return None
    import shlex  # here: every Python child of a test imports this module

    words = shlex.split(command)
    if not words:
        return None
    program = _program([words[0]], env)
    if not os.path.isabs(program) or os.path.basename(program) in _SHELLS:
        return None
    return _tool_reads(program, words[1:], where, env, shell=False)


def _environ(env: Any) -> Any:
    return env if isinstance(env, dict) else os.environ


def vcs_query(event: str, args: tuple[Any, ...]) -> bool:
    """Is this spawn a read-only query of a repository's metadata (``git rev-parse``, ``git
    describe --dirty``, ``hg id``, ``svnversion``) by the real, compiled tool?"""
    start = _started(event, args)
    if start is None:
        return False
    try:
        if not os.path.isabs(start.program) or not _is_compiled(start.program):
            return False
        name, rest = os.path.basename(start.program), list(start.argv[1:])
        if name not in _VCS_QUERIES:
            return False
        queries = _VCS_QUERIES[name]
        if queries is None:
            return True
        while name == "git" and rest and rest[0] in ("-C", "--no-pager", "-P"):
            rest = rest[2:] if rest[0] == "-C" else rest[1:]
        return bool(rest) and rest[0] in queries
    except Exception:
        return False


def _program(argv: list[str], env: Any) -> str:
    name = argv[0]
    if os.sep in name:
        return abspath(name)
    return shutil.which(name, path=os.pathsep.join(_search_path(env))) or name


def is_python(program: str) -> bool:
    """Will `program` run Python (and so our sitecustomize)? An interpreter, or a script whose
    shebang names one (console scripts such as ``black`` or ``pip``)."""
    base = os.path.basename(program)
    if base.startswith("python") or base.startswith("pypy"):
        return True
    try:
        if os.path.realpath(program) == os.path.realpath(sys.executable):
            return True
        with open(program, "rb") as f:
            head = f.read(256)
    except OSError:
        return False
    if not head.startswith(b"#!"):
        return False
    line = head.split(b"\n", 1)[0]
    return b"python" in line or b"pypy" in line


def owner_qualname(qualname: str) -> str:
    """``f.<locals>.<lambda>`` -> ``f``: anonymous code is reported as the function holding it."""
    if "<" not in qualname or qualname == "<module>":
        return qualname
    parts = qualname.split(".")
    while parts and parts[-1] in _ANONYMOUS:
        parts.pop()
    return ".".join(parts) if parts else "<module>"


def source_of_pyc(path: str) -> str | None:
    """``pkg/__pycache__/mod.cpython-311.pyc`` -> ``pkg/mod.py`` when that source exists."""
    directory, name = os.path.split(path)
    if os.path.basename(directory) != "__pycache__":
        return None
    stem = name.split(".", 1)[0]
    source = os.path.join(os.path.dirname(directory), stem + ".py")
    return source if os.path.exists(source) else None


def installed_prefixes() -> tuple[str, ...]:
    """Where the interpreter's own and installed code lives: the standard library and
    site-packages are keyed by the interpreter and the installed-distribution listing, so code
    there is not an input file by file."""
    found = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        with contextlib.suppress(KeyError):
            found.add(sysconfig.get_paths()[name])
    with contextlib.suppress(Exception):
        import site

        found.update(site.getsitepackages())
        found.add(site.getusersitepackages())
    found.add(os.path.dirname(os.path.abspath(__file__)))
    return tuple(os.path.normpath(p) + os.sep for p in found if p)


def site_prefixes() -> tuple[str, ...]:
    """Where installed distributions live (site-packages, the user site): their code is a tool
    of the run, versioned by the installed-distribution listing."""
    found = set()
    for name in ("purelib", "platlib"):
        with contextlib.suppress(KeyError):
            found.add(sysconfig.get_paths()[name])
    with contextlib.suppress(Exception):
        import site

        found.update(site.getsitepackages())
        found.add(site.getusersitepackages())
    return tuple(os.path.normpath(p) + os.sep for p in found if p)


def _stdlib_prefixes() -> tuple[str, ...]:
    found = set()
    for name in ("stdlib", "platstdlib"):
        with contextlib.suppress(KeyError):
            found.add(sysconfig.get_paths()[name])
    return tuple(os.path.normpath(p) + os.sep for p in found if p)


_SITE = site_prefixes()
_STDLIB = _stdlib_prefixes()


def started_by_installed(frame: Any) -> bool:
    """Was the code that made this call (past the standard library: ``subprocess``,
    ``platform``) an installed distribution's (a pytest plugin), not the workspace's, a
    conftest's or a script's?"""
    while frame is not None:
        filename = abspath(frame.f_code.co_filename)
        if filename.startswith(_SITE):
            return True
        if not (frame.f_code.co_filename.startswith("<") or filename.startswith(_STDLIB)):
            return False
        frame = frame.f_back
    return False


# Threads listing the children's records directory now: the plugin does it as each test starts
# and ends, and `listed` would otherwise walk the stack each time to find it no test's read.
_own_listings: set[int] = set()


# pyfakefs replaces the `os`, `os.path`, `io`, `shutil` and `pathlib` that each loaded module
# holds (and functions imported from them) with its fakes while a test runs on a fake file
# system, except in the modules on its skip list (as it does for pytest and coverage). The
# recorder's modules must see the real files: the children's records folder, the paths a probe
# normalises (through the fakes, a probe's path went back to pyfakefs's caller check, whose
# stack walk stats through the probe again: minutes for a failing test).
_FAKE_FS = "pyfakefs.fake_filesystem_unittest"


def shield_from_fake_fs() -> bool:
    """Put every loaded ``maestro_*`` module on pyfakefs's skip list once pyfakefs is loaded;
    True once done (False while pyfakefs is not loaded: ask again later)."""
    fake_fs = sys.modules.get(_FAKE_FS)
    if fake_fs is None:
        return False
    patcher = getattr(fake_fs, "Patcher", None)
    skipped = getattr(patcher, "SKIPMODULES", None)
    if not isinstance(skipped, set):
        return True  # another pyfakefs: nothing known to do
    ours = [m for name, m in list(sys.modules.items()) if name.startswith("maestro_")]
    skipped.update(ours)
    # modules a Patcher already looked at are cached as they were then
    if any(m in getattr(patcher, "CACHED_MODULES", ()) for m in ours):
        with contextlib.suppress(Exception):
            patcher.clear_fs_cache()  # type: ignore[union-attr]
    return True


def _records_in(directory: str) -> list[str]:
    ident = threading.get_ident()
    _own_listings.add(ident)
    try:
        return os.listdir(directory)
    finally:
        _own_listings.discard(ident)


def running_children(directory: str) -> set[int]:
    """The recorded Python children still running (their record is not written yet): a
    worker or server an earlier test started may be doing work for the running one."""
    try:
        names = [n for n in _records_in(directory) if n.startswith(RUNNING_PREFIX)]
    except OSError:
        return set()
    running: set[int] = set()
    for name in names:
        try:
            pid = int(name[len(RUNNING_PREFIX) :])
            os.kill(pid, 0)
        except ValueError:
            continue
        except ProcessLookupError:  # killed before it could write its record
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))
            continue
        except PermissionError:
            pass  # alive, another user's (a reused pid): counted, conservatively
        running.add(pid)
    return running


def read_records(directory: str) -> list[dict[str, Any]]:
    """Take (read and delete) every finished child record in `directory`."""
    try:
        names = [n for n in _records_in(directory) if n.startswith(RECORD_PREFIX)]
    except OSError:
        return []
    out: list[dict[str, Any]] = []
    for name in sorted(names):
        if name.endswith(".tmp"):
            continue
        path = os.path.join(directory, name)
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                data = json.load(f)
            os.unlink(path)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            out.append(data)
    return out


try:
    _TICKS: int | None = os.sysconf("SC_CLK_TCK")
except (AttributeError, OSError, ValueError):
    _TICKS = None
_BOOT_CLOCK: int | None = getattr(time, "CLOCK_BOOTTIME", None)


def boot_ticks() -> int | None:
    """Now, in the clock ticks since boot in which Linux gives a process's start (None
    elsewhere): a child forked in a later tick than a window opened was started in it."""
    if _TICKS is None or _BOOT_CLOCK is None:
        return None
    return time.clock_gettime_ns(_BOOT_CLOCK) * _TICKS // 1_000_000_000


def _forked_at() -> int | None:
    """When this process was forked, in clock ticks since boot (``/proc/self/stat``)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            text = f.read()
        return int(text[text.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


class ChildRecorder:
    """Runs inside a Python child of a test: records what it opened, wrote, started, executed
    and which of the user's own variables it read, and writes it as one JSON record at exit."""

    def __init__(self, directory: str, root: str) -> None:
        self.directory = directory
        self.root = os.path.normpath(root) + os.sep
        self.reads: list[str] = []
        self.loads: list[str] = []  # modules' code the import system read to run it
        self.writes: list[str] = []
        self.scratch: list[str] = []  # what tempfile made under names drawn at random
        self.spawns: list[tuple[str, bool | None]] = []
        # by id: code objects compare equal across files (a vendored copy of an installed module)
        self.codes: dict[int, Any] = {}
        self._tool: int | None = None
        self._profiler: Any = None
        self._thread_hook: Any = None  # the profile function of the threads it starts
        self._hook_lost = False  # the process ran code under another profile hook a while
        self._installed: tuple[str, ...] | None = None  # once something is listed
        # which of `KEYED_WHEN_READ` it read (set or not), and whose child it is since when:
        # the test process takes what it read only from the records it can tell are its own
        self.env: set[str] = set()
        self.ppid = os.getppid()
        self.forked = _forked_at()

    def start(self) -> None:
        # marked before the hook: the mark is the recorder's, not a write of the child
        with contextlib.suppress(OSError):
            open(os.path.join(self.directory, f"{RUNNING_PREFIX}{os.getpid()}"), "wb").close()
        sys.addaudithook(self._audit)
        self._watch_environ()
        os.stat, os.lstat = self._probing(os.stat), self._probing(os.lstat)
        self._start_tracing()
        atexit.register(self.finish)
        # A fork of this child shares the hooks but not the record: it is opaque to us.
        os.register_at_fork(after_in_child=self._forked)
        # os._exit runs no atexit handler: mypy ends with it (skipping the freeing of its
        # objects), as a program exiting from a worker thread does. Write the record first.
        os._exit = self._hard_exit

    def _hard_exit(self, status: int) -> NoReturn:
        with contextlib.suppress(Exception):
            self.finish()  # nothing in a fork of this child (its directory is unset)
        _os_exit(status)

    def _forked(self) -> None:
        self.directory = ""

    def _audit(self, event: str, args: tuple[Any, ...]) -> None:
        try:
            if event == "open":
                found = opened(args)
                if found is None:
                    return
                if found[1]:
                    self.writes.append(found[0])
                elif tempdir_probe(frame := caller(1)):
                    if (made := scratch_made((found[0],))) is not None:
                        self.scratch.append(made)
                else:
                    (self.loads if loads_code(frame) else self.reads).append(found[0])
            elif event in SPAWN_EVENTS and self.directory:
                self.env.update(KEYED_WHEN_READ)  # inherited: what the program reads is unseen
                program, python = spawned(event, args)
                if python and (why := recorder_dropped(event, args, program)) is not None:
                    program, python = f"{NO_RECORD}{why}\0{program}", False
                reads = None if python else known_reads(event, args)
                if reads is not None:  # not Python, but what it reads is known
                    self.reads.extend(reads)
                self.spawns.append((program, python if reads is None else None))
                if event == "os.exec":
                    # the program replaces this one (same process, no exit): record it now
                    self.finish()
            elif event in LIST_EVENTS:
                listing = listed(args, self._is_workspace)
                if listing is not None:
                    self.reads.append(listing)
            elif event in SCRATCH_EVENTS and (made := scratch_made(args)) is not None:
                self.scratch.append(made)
            elif (
                event in HOOK_EVENTS and self._profiler is not None
                and hook_set_by_other(caller(1), self._thread_hook)
            ):  # fmt: skip
                self._hook_lost = True  # what runs under it goes unseen
        except Exception:
            # An audit hook that raises fails the audited operation (the interpreter then
            # reports a stale errno): never that. Leave no record instead: a child without one
            # makes the test depend on everything.
            self.directory = ""

    def _watch_environ(self) -> None:
        """Note which of `KEYED_WHEN_READ` this process reads, set or not: by name through
        ``os.environ`` or ``os.environb`` (``[...]``, ``get``, ``os.getenv``, ``in``: so
        ``expanduser``, ``getpass`` and tempfile's one look for its folder), or all of them by
        iterating the environment (``copy()``, ``items()``, ``dict(...)``) or printing it."""
        environ, environb = os.environ, getattr(os, "environb", None)
        kind = type(environ)
        real_get, real_iter, real_repr = kind.__getitem__, kind.__iter__, kind.__repr__
        keyed, noted = KEYED_WHEN_READ, self.env
        keyed_b = {os.fsencode(n): n for n in keyed}

        def getitem(env: Any, key: Any) -> Any:
            if env is environ:
                if isinstance(key, str) and key in keyed:
                    noted.add(str(key))
            elif env is environb and isinstance(key, bytes) and key in keyed_b:
                noted.add(keyed_b[key])
            return real_get(env, key)

        def iterate(env: Any) -> Any:
            if env is environ or env is environb:
                noted.update(keyed)
            return real_iter(env)

        def represent(env: Any) -> Any:
            if env is environ or env is environb:
                noted.update(keyed)
            return real_repr(env)

        kind.__getitem__ = getitem  # type: ignore[method-assign]
        kind.__iter__ = iterate  # type: ignore[method-assign]
        kind.__repr__ = represent  # type: ignore[method-assign]

    def _probing(self, real: Callable[..., Any]) -> Callable[..., Any]:
        """``os.stat``/``os.lstat`` that note the workspace file whose being there this process
        asks without reading it (``os.path.isfile``, ``Path.exists``): no audit event says so. A
        file, or its absence, counts as a read; a folder (its listing would) or a source (the
        import system stats them; imports are recorded) does not."""
        root = self.root

        def probe(path: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(path, int) or kwargs.get("dir_fd") is not None:
                return real(path, *args, **kwargs)
            try:
                result = real(path, *args, **kwargs)
            except FileNotFoundError:
                if not by_linecache():
                    self._probed(path, root, absent=True)
                raise
            if not stat.S_ISDIR(result.st_mode):
                self._probed(path, root)
            return result

        return stand_in(probe, real)

    def _probed(self, path: Any, root: str, absent: bool = False) -> None:
        # a missing file outside the workspace counts too (a configuration file looked for
        # above the project); the pytest process leaves out scratch and installed paths
        try:
            full = abspath(path)
            if (absent or full.startswith(root)) and not full.endswith(_SOURCE_SUFFIXES):
                self.reads.append(full)
        except Exception:  # a probe never breaks the child's own call
            return

    def _is_workspace(self, filename: str) -> bool:
        """Code the test made this process run (its ``-c`` string, a script, workspace modules):
        anything but the interpreter's and the installed code."""
        if self._installed is None:
            self._installed = installed_prefixes()
        return not filename.startswith(self._installed)

    def _start_tracing(self) -> None:
        mon = getattr(sys, "monitoring", None)
        # as the plugin's recorder: Hypothesis's id 3 last
        free = [t for t in (4, 5, 3) if mon is not None and mon.get_tool(t) is None]
        if mon is not None and free:
            tool, codes, disable = free[0], self.codes, mon.DISABLE

            def py_start(code: Any, offset: int) -> Any:
                codes[id(code)] = code
                return disable

            mon.use_tool_id(tool, "maestro")
            mon.register_callback(tool, mon.events.PY_START, py_start)
            mon.set_events(tool, mon.events.PY_START)
            self._tool = tool
            return
        import cProfile

        record, child = self._thread_profile, self

        class Profiler(cProfile.Profile):
            """Callable: code that saves the hook (``sys.getprofile()`` returns the profiler)
            and puts it back installs it as a Python profile function, which records on; what
            ran under the other hook meanwhile went unseen."""

            def __call__(self, frame: Any, event: str, arg: Any) -> None:
                child._hook_lost = True
                record(frame, event, arg)

        self._profiler = Profiler(subcalls=False, builtins=False)
        self._profiler.enable()
        self._thread_hook = self._thread_profile
        steady_thread_hooks()
        threading.setprofile(self._thread_hook)

    def _thread_profile(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            self.codes[id(code)] = code

    def _harvest(self) -> None:
        if self._profiler is not None:
            if sys.getprofile() is not self._profiler:
                self._hook_lost = True  # replaced, or turned off, and not put back
            self._profiler.disable()
            for entry in self._profiler.getstats():
                if not isinstance(entry.code, str):
                    self.codes[id(entry.code)] = entry.code
            self._profiler = None
        if self._tool is not None:
            with contextlib.suppress(Exception):
                sys.monitoring.set_events(self._tool, 0)  # type: ignore[attr-defined,unused-ignore]
            self._tool = None

    def _read_by_command(self) -> list[str]:
        """The workspace modules this process loaded, as read whole, when its main code is no
        file (``python -c "import helper; print(helper.X)"``, a script on standard input): that
        code is in no input the graph fingerprints, so which of their names it read is unknown
        (a changed constant would otherwise leave the test served from the cache)."""
        if getattr(sys.modules.get("__main__"), "__file__", None) is not None:
            return []
        found = []
        for module in list(sys.modules.values()):
            file = getattr(module, "__file__", None)
            if isinstance(file, str) and file.endswith(".py"):
                path = os.path.normpath(os.path.join(_getcwd(), file))
                if path.startswith(self.root):
                    found.append(path)
        return found

    def finish(self) -> None:
        if not self.directory:
            return
        self._harvest()
        self.spawns.extend((UNSEEN + what, False) for what in unseen_readers())
        if self._hook_lost:
            self.spawns.append((HOOK_LOST, False))
        for module, names in C_ENV_READERS.items():
            if module in sys.modules:
                self.env.update(names)
        self.reads.extend(self._read_by_command())
        functions: dict[str, set[str]] = {}
        for code in list(self.codes.values()):
            filename = code.co_filename
            if filename and not filename.startswith("<"):
                qualname = owner_qualname(getattr(code, "co_qualname", code.co_name))
                functions.setdefault(os.path.abspath(filename), set()).add(qualname)
        record = {
            "pid": os.getpid(),
            "argv": [os.fsdecode(a) for a in sys.orig_argv][:8],
            "reads": sorted(set(self.reads)),
            "loads": sorted(set(self.loads)),
            "writes": sorted(set(self.writes)),
            "scratch": sorted(set(self.scratch)),
            "spawns": sorted(set(self.spawns), key=repr),
            "functions": {path: sorted(q) for path, q in functions.items()},
            "env": sorted(self.env),
            "installed": installed_modules(),
            "ppid": self.ppid,
            "forked": self.forked,
        }
        # (an image that replaced another by exec has its pid and thread, not its record)
        name = f"{RECORD_PREFIX}{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}.json"
        final = os.path.join(self.directory, name)
        directory, self.directory = self.directory, ""  # once, even if called again
        try:
            tmp = final + ".tmp"
            with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as f:
                json.dump(record, f)
            os.replace(tmp, final)
        except OSError:
            pass  # the parent sees a Python child without a record: conservative
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, f"{RUNNING_PREFIX}{os.getpid()}"))
        del directory


# multiprocessing's resource tracker: the first semaphore or shared memory block of a "spawn" or
# "forkserver" context starts it, and it lives until the session ends, only unlinking at exit
# what it was told about. Marked running, it would make every later test of the session
# opaque; it runs no workspace code and reads no workspace file, so it is not recorded at all.
_RESOURCE_TRACKER = "from multiprocessing.resource_tracker import main;"


def _resource_tracker() -> bool:
    argv = list(getattr(sys, "orig_argv", ()))
    return "-c" in argv[:-1] and argv[argv.index("-c") + 1].startswith(_RESOURCE_TRACKER)


_PACKAGES = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")


def installed_modules() -> list[str]:
    """The top-level names of the modules this process loaded from installed packages
    (site-packages): keys name them by distribution and version, so one edited in place since
    its install must count for the tests that may run it, in the pytest process or in a child
    (a command line a test runs imports what the test never does)."""
    found: set[str] = set()
    for name, module in list(sys.modules.items()):
        try:  # an entry may be a dead weakref.proxy, whose every attribute read raises
            file = getattr(module, "__file__", None)
        except Exception:
            continue
        if isinstance(file, str) and any(p in file for p in _PACKAGES):
            found.add(name.partition(".")[0])
    return sorted(found)


def start_child() -> None:
    """Entry point of the sitecustomize: record this process if a test session asked for it."""
    directory = os.environ.get(ENV_DIR)
    root = os.environ.get(ENV_ROOT)
    if not directory or not root or not os.path.isdir(directory) or _resource_tracker():
        return
    ChildRecorder(directory, root).start()


def _mark_fork() -> None:
    """In a fork of a process whose tests' children are recorded (the pytest process, or a
    recorded child): it runs its parent's code and leaves no record, and may stay to work for
    later tests (a process pool kept in a module global), so it is marked running, as a recorded
    child is, for as long as it lives."""
    directory = os.environ.get(ENV_DIR)
    if directory:
        with contextlib.suppress(OSError):
            mark = os.path.join(directory, f"{RUNNING_PREFIX}{os.getpid()}")
            os.close(os.open(mark, os.O_WRONLY | os.O_CREAT, 0o600))


os.register_at_fork(after_in_child=_mark_fork)
