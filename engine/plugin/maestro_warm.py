"""pytest's process, started before Maestro knows what it will run.

Starting the interpreter and importing pytest take a few hundred milliseconds, as long as
Maestro's own planning of a small suite; the runner (``WarmPytest`` in maestro/engine/runner.py)
starts this process first so that the two overlap. It is started as ``python -m pytest -p
maestro_warm`` with ``MAESTRO_WARM_DESCRIBE_FD`` set, and the plugin folder's ``sitecustomize``
calls :func:`serve` while the interpreter starts, before ``-m`` runs pytest: pytest is imported,
the interpreter described, then the runner sends one line of JSON on stdin, ``{"args": [...],
"env": {...}}``, the variables are set, stdin becomes ``/dev/null`` (the runner's
``stdin=DEVNULL``), ``sys.argv`` gets the run's arguments, and ``-m pytest`` goes on as usual.
The process is then ``python -m pytest ARGS`` in every respect a test can see, down to the frames
under the test (a suite that walks the whole stack with ``inspect.stack()`` pays for every frame
and every frame without a module file). End of input, or an empty line (the run needed no
process, or the runner died), exits at once with status 0 and runs nothing.

``-p maestro_warm`` is a guard: it is replaced by the run's arguments, so pytest imports this
module as a plugin only if ``serve`` never ran (no ``sitecustomize``), and it then exits before
pytest loads any conftest.

Run as a script, this file is the interpreter query of maestro/engine/interpreter.py: it prints
the same description of the interpreter (pytest found, not imported) and exits.
"""

from __future__ import annotations

import json
import os
import sys

TYPE_CHECKING = False  # typing is not imported: the interpreter query runs this file
if TYPE_CHECKING:
    from typing import Any

DESCRIBE_FD_ENV = "MAESTRO_WARM_DESCRIBE_FD"
UNSERVED_EXIT = 3  # pytest imported the guard: the process was never handed a run


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


def _loaded(cwd: str) -> dict[str, Any]:
    """The source files of the imported modules with their stat, and the entries of the working
    directory (first on ``sys.path`` under ``-m``) named like an imported top-level module."""
    files: list[list[Any]] = []
    top: set[str] = set()
    for name, module in list(sys.modules.items()):
        top.add(name.partition(".")[0])
        try:
            path = getattr(module, "__file__", None)
        except Exception:  # a dead weakref.proxy in sys.modules (jinja2's ModuleLoader)
            continue
        if not isinstance(path, str):
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        files.append([path, st.st_mtime_ns, st.st_size])
    try:
        here = sorted(e for e in os.listdir(cwd) if e.partition(".")[0] in top)
    except OSError:
        here = []
    return {"files": files, "top": sorted(top), "shadowing": here}


def description(pytest_version: str | None) -> dict[str, Any]:
    """The interpreter as Maestro's interpreter query reads it (maestro/engine/interpreter.py
    runs this file to ask; a waiting pytest process hands it over instead)."""
    import sysconfig

    return {
        "version": list(sys.version_info[:3]),
        "implementation": sys.implementation.name,
        "platform": sysconfig.get_platform(),
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
        "pytest_version": pytest_version,
    }


def _describe(fd_text: str, cwd: str) -> None:
    """Tell the runner what the interpreter query (maestro/engine/interpreter.py) would: it then
    need not start the interpreter once more to ask."""
    from importlib.metadata import version

    try:
        pytest_version: str | None = version("pytest")
    except Exception:
        pytest_version = "unknown"
    answer = description(pytest_version)
    # What this process has loaded before it knows its run: the runner hands it a run only if
    # none of it changed since, and no new file in the folder would shadow it.
    answer["loaded"] = _loaded(cwd)
    try:
        with os.fdopen(int(fd_text), "w", encoding="utf-8") as f:
            f.write(json.dumps(answer) + "\n")
    except (OSError, ValueError):
        pass  # the runner asks the interpreter itself


def serve(fd_text: str) -> None:
    """Import pytest, describe the interpreter on ``fd_text``, wait for the run and set it up;
    returns to let ``-m pytest`` run it. Called from ``sitecustomize`` (which took
    ``MAESTRO_WARM_DESCRIBE_FD`` out of the environment) while the interpreter starts."""
    # -m puts the working directory first on sys.path only after site ran: pytest (and what it
    # imports) must come from where `python -m pytest` would take it.
    cwd = os.getcwd()
    first = not sys.flags.safe_path
    if first:
        sys.path.insert(0, cwd)
    try:
        import pytest  # noqa: F401  (the slow part, done while the runner plans)
    finally:
        if first and sys.path and sys.path[0] == cwd:
            del sys.path[0]
    _describe(fd_text, cwd)
    request = _request()
    if request is None:
        sys.stdout.flush()
        os._exit(0)  # in site: SystemExit would be reported as a failed sitecustomize
    args = [str(a) for a in request.get("args", [])]
    env = request.get("env", {})
    os.environ.update({str(k): str(v) for k, v in env.items()})
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.close(null)
    sys.argv[1:] = args  # -m sets sys.argv[0] to pytest's __main__.py


def _query() -> None:
    """The interpreter query's answer on stdout; pytest is found, never imported."""
    import importlib.util

    pytest_version = None
    if importlib.util.find_spec("pytest") is not None:
        try:
            from importlib.metadata import version

            pytest_version = version("pytest")
        except Exception:
            pytest_version = "unknown"
    print(json.dumps(description(pytest_version)))  # noqa: T201


if __name__ == "__main__":  # the interpreter query runs this file
    _query()
elif os.environ.get(DESCRIBE_FD_ENV):  # pytest imported the guard: serve never ran
    sys.stderr.write("maestro_warm: the waiting pytest process was not set up; exiting\n")
    os._exit(UNSERVED_EXIT)
