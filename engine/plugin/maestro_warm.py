"""``python -m maestro_warm``: pytest's process, started before Maestro knows what it will run.

Starting the interpreter and importing pytest take a few hundred milliseconds, as long as
Maestro's own planning of a small suite; the runner (``WarmPytest`` in maestro/engine/runner.py)
starts this process first so that the two overlap. It then sends one line of JSON on stdin,
``{"args": [...], "env": {...}}``, and this process becomes what ``python -m pytest ARGS`` would
be: the variables are set, stdin is ``/dev/null`` (the runner's ``stdin=DEVNULL``), ``sys.argv``
and ``__main__`` are pytest's (``runpy``, as ``-m`` does). pytest itself is imported first either
way. End of input, or an empty line (the run needed no process, or the runner died), exits at
once with status 0 and runs nothing.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from typing import Any


def _request() -> dict[str, Any] | None:
    """The runner's line, read without buffering: nothing of stdin may be left in a buffer."""
    chunks: list[bytes] = []
    while True:
        chunk = os.read(0, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    line = b"".join(chunks).strip()
    if not line:
        return None
    request = json.loads(line)
    return request if isinstance(request, dict) else None


DESCRIBE_FD_ENV = "MAESTRO_WARM_DESCRIBE_FD"


def _loaded() -> dict[str, Any]:
    """The source files of the imported modules with their stat, and the entries of the working
    directory (first on ``sys.path`` under ``-m``) named like an imported top-level module."""
    files: list[list[Any]] = []
    top: set[str] = set()
    for name, module in list(sys.modules.items()):
        top.add(name.partition(".")[0])
        path = getattr(module, "__file__", None)
        if not isinstance(path, str):
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        files.append([path, st.st_mtime_ns, st.st_size])
    try:
        here = sorted(e for e in os.listdir(".") if e.partition(".")[0] in top)
    except OSError:
        here = []
    return {"files": files, "top": sorted(top), "shadowing": here}


def _describe() -> None:
    """Tell the runner what the interpreter query (maestro/engine/interpreter.py) would: it then
    need not start the interpreter once more to ask."""
    fd_text = os.environ.pop(DESCRIBE_FD_ENV, None)
    if fd_text is None:
        return
    import sysconfig
    from importlib.metadata import version

    try:
        pytest_version: str | None = version("pytest")
    except Exception:
        pytest_version = "unknown"
    answer = {
        "version": list(sys.version_info[:3]),
        "implementation": sys.implementation.name,
        "platform": sysconfig.get_platform(),
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
        "pytest_version": pytest_version,
        # What this process has loaded before it knows its run: the runner hands it a run only if
        # none of it changed since, and no new file in the folder would shadow it.
        "loaded": _loaded(),
    }
    try:
        with os.fdopen(int(fd_text), "w", encoding="utf-8") as f:
            f.write(json.dumps(answer) + "\n")
    except (OSError, ValueError):
        pass  # the runner asks the interpreter itself


def main() -> None:
    import pytest  # noqa: F401  (the slow part, done while the runner plans)

    _describe()
    request = _request()
    if request is None:
        sys.exit(0)
    args = [str(a) for a in request.get("args", [])]
    env = request.get("env", {})
    os.environ.update({str(k): str(v) for k, v in env.items()})
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.close(null)
    sys.argv = [sys.argv[0], *args]
    runpy.run_module("pytest", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
