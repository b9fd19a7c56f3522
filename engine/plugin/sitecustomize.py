"""Start Maestro's recorder in a Python process a test started, then run the environment's own
sitecustomize (this file shadows it by being first on PYTHONPATH).

Inert unless the test session set ``MAESTRO_CHILD_DIR`` (see maestro_record.py).
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


_start()
_chain()
