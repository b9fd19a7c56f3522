"""Start Maestro's recorder in a Python process a test started, then run the environment's own
sitecustomize (this file shadows it by being first on PYTHONPATH); in a pytest process started
ahead of its run, wait for that run (maestro_warm.py).

Inert unless the test session set ``MAESTRO_CHILD_DIR`` (see maestro_record.py) or the runner
set ``MAESTRO_WARM_DESCRIBE_FD`` or ``MAESTRO_EVENTS_FD`` (the run's own pytest process, where it
notes the code that starts before the plugin: maestro_early.py).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys


def _start() -> None:
    if os.environ.get("MAESTRO_CHILD_DIR"):
        try:
            import maestro_record  # type: ignore[import-not-found,unused-ignore]

            maestro_record.start_child()
        except Exception:  # recording must never break the program under test
            pass


def _chain() -> None:
    """Execute the next ``sitecustomize`` on sys.path, as if ours were not there."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


def _warm() -> None:
    """Wait here, before ``-m pytest`` runs, so that the run's process is exactly a
    ``python -m pytest`` one; never let it run pytest unset (it would run every test)."""
    fd_text = os.environ.pop("MAESTRO_WARM_DESCRIBE_FD", None)
    if not fd_text:
        return
    try:
        import maestro_warm  # type: ignore[import-not-found,unused-ignore]

        maestro_warm.serve(fd_text)
        del sys.modules["maestro_warm"]  # as in `python -m pytest`: not among its modules
    except BaseException as exc:
        sys.stderr.write(f"maestro: the waiting pytest process failed: {exc!r}\n")
        sys.stderr.flush()
        os._exit(3)


def _early() -> None:
    """In the pytest process of a run (not a test's child), note the code that starts before
    pytest loads Maestro's plugin (maestro_early.py); in one started ahead of its run, from
    before it imports pytest."""
    run = os.environ.get("MAESTRO_EVENTS_FD") or os.environ.get("MAESTRO_WARM_DESCRIBE_FD")
    if run and not os.environ.get("MAESTRO_CHILD_DIR"):
        try:
            import maestro_early  # type: ignore[import-not-found,unused-ignore]

            maestro_early.start()
        except Exception:  # the plugin then counts all the code of what was loaded before it
            pass


_start()
_chain()
_early()
_warm()
