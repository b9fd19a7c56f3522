"""Note the code that starts in a test run's pytest process before pytest loads Maestro's plugin.

pytest parses its ini file (with the workspace's own iniconfig, when that is the project),
builds its plugin manager and imports the ``-p`` plugins its addopts name, asking them for
their options, all before it loads ``-p maestro_pytest_plugin``: the recorder cannot see that
code run. ``sitecustomize`` starts this note as the interpreter starts; the plugin stops it when
it is imported and counts what started as run outside any test (maestro_pytest_plugin.py
``_loaded_before``).

Generated code and Maestro's own are not kept; the plugin keeps the workspace's (a workspace
may well lie under the interpreter's prefix, /usr/local/src/app under /usr/local: the prefixes
cannot tell it from the standard library here).

Before 3.12 the note is cProfile's profiler, called at every call and return: it is set only
when the first code from outside the standard library and the installed packages is compiled
or executed (the ``compile`` and ``exec`` audit events, which every module's import and every
``exec`` raise), since no code of the workspace can start before that. pytest's own import and
start, most of this window, then run without it.
"""

from __future__ import annotations

import _lsprof
import _thread
import os
import sys
from types import CodeType
from typing import Any

# sys.monitoring ids, freed as the plugin is imported, before its recorder takes 4 and 5
_TOOL_IDS = (5, 2)

_started: dict[int, CodeType] | None = None  # id -> each code object that started
_tool: int | None = None


def _unkept() -> tuple[str, ...]:
    return ("<", os.path.dirname(os.path.abspath(__file__)) + os.sep)


def start() -> None:
    """Begin noting (once), in the pytest process of a run."""
    global _started, _tool
    if _started is not None:
        return
    started: dict[int, CodeType] = {}
    unkept = _unkept()
    mon = getattr(sys, "monitoring", None)
    if mon is not None:
        free = [t for t in _TOOL_IDS if mon.get_tool(t) is None]
        if not free:
            return  # unknown: the plugin counts every function of those modules
        disable = mon.DISABLE

        def first_start(code: CodeType, offset: int) -> Any:
            if not code.co_filename.startswith(unkept):
                started[id(code)] = code
            return disable  # one event per code object

        _tool = free[0]
        mon.use_tool_id(_tool, "maestro-early")
        mon.register_callback(_tool, mon.events.PY_START, first_start)
        mon.set_events(_tool, mon.events.PY_START)
    else:
        if sys.getprofile() is not None:
            return  # another profiler's: unknown, as above
        _watch(started, unkept)
    _started = started


# Before 3.12: cProfile's C profiler, which notes each code object that starts (a profile
# function in Python would read each frame's f_code, an audit event of its own).
_profiler: Any = None
_profiling = False  # it is on
_unknown = False  # it could not be set when needed: what started is unknown
_watching = False  # the audit hook (which cannot be removed) still waits for the first code


def _installed() -> tuple[str, ...]:
    """The folders of the standard library and the installed packages, each ending in a
    separator: code from them is not the workspace's (the plugin excludes a workspace path
    with a ``site-packages`` part, and a workspace cannot lie inside the standard library)."""
    folders = {os.path.dirname(os.__file__)}  # lib-dynload and the rest lie inside
    folders.update(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    return tuple(os.path.join(os.path.abspath(f), "") for f in folders if f)


class _Profiler(_lsprof.Profiler):
    """Callable: code that saves the hook (``sys.getprofile()`` returns the profiler) and puts
    it back installs it as a Python profile function, which notes on; what started under the
    other hook meanwhile is unknown."""

    started: dict[int, CodeType]
    skipped: tuple[str, ...]

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        global _unknown
        _unknown = True
        code = frame.f_code
        if event == "call" and not code.co_filename.startswith(self.skipped):
            self.started[id(code)] = code


def _watch(started: dict[int, CodeType], unkept: tuple[str, ...]) -> None:
    """Start the profiler at the first execution of code that may be the workspace's."""
    global _watching, _profiler
    skipped = unkept + _installed()
    # only which code started is read: no caller -> callee table (subcalls), no builtins
    _profiler = _Profiler(subcalls=False, builtins=False)
    _profiler.started, _profiler.skipped = started, skipped
    main_thread = _thread.get_ident()

    def executed(event: str, args: tuple[Any, ...]) -> None:
        global _profiling, _unknown, _watching
        if not _watching or event not in ("exec", "compile"):
            return
        # exec: the code object; compile: its source and file name (a function made from a
        # compiled code object runs without an exec)
        code = args[0] if event == "exec" and args else None
        filename = getattr(code, "co_filename", None) if code is not None else None
        if event == "compile":
            filename = args[1] if len(args) > 1 else None
        if isinstance(filename, str) and filename.startswith(skipped):
            return
        _watching = False
        if _thread.get_ident() != main_thread or sys.getprofile() is not None:
            _unknown = True  # a profile function notes only its own thread's calls
            return
        if isinstance(code, CodeType):
            started[id(code)] = code  # its frame starts after this hook returns
        _profiler.enable(subcalls=False, builtins=False)
        _profiling = True

    _watching = True
    sys.addaudithook(executed)


def stop() -> list[CodeType] | None:
    """Stop noting; the code objects that started since `start`, or None when it never ran
    (what ran before the plugin is then unknown)."""
    global _started, _tool, _profiling, _watching, _unknown
    found, _started = _started, None
    if found is None:
        return None
    mon = getattr(sys, "monitoring", None)
    if mon is not None and _tool is not None:
        mon.set_events(_tool, 0)
        mon.register_callback(_tool, mon.events.PY_START, None)
        mon.free_tool_id(_tool)
        _tool = None
    elif mon is None:
        _watching = False
        if _profiling:
            if sys.getprofile() is not _profiler:
                _unknown = True  # replaced, or turned off, and not put back: unseen since
            _profiler.disable()
            _profiling = False
            unkept = _unkept()
            for entry in _profiler.getstats():
                code = entry.code  # a builtin's is its name
                if isinstance(code, CodeType) and not code.co_filename.startswith(unkept):
                    found.setdefault(id(code), code)
            _profiler.clear()
        if _unknown:
            return None
    return list(found.values())
