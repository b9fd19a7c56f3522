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
"""

from __future__ import annotations

import os
import sys
from types import CodeType
from typing import Any

_TOOL_IDS = (5, 2)  # sys.monitoring ids the plugin's own tracer (4, 3) does not take

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

        def profile(frame: Any, event: str, arg: Any) -> None:
            if event == "call":
                code = frame.f_code
                if id(code) not in started and not code.co_filename.startswith(unkept):
                    started[id(code)] = code

        if sys.getprofile() is not None:
            return  # another profiler's: unknown, as above
        sys.setprofile(profile)
    _started = started


def stop() -> list[CodeType] | None:
    """Stop noting; the code objects that started since `start`, or None when it never ran
    (what ran before the plugin is then unknown)."""
    global _started, _tool
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
        sys.setprofile(None)
    return list(found.values())
