"""What an in-process run prepares in a thread while pytest runs, so that the end of the run,
which the user waits for, does not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# in a fresh interpreter: this suite's own tests have built every validator long before
SCRIPT = """
from maestro.cache.action import ActionResult, Provenance, TestOutcome, Timing, TraceRecord
from maestro.engine.testing import preload_models
from maestro.wire import RunTestsResult

models = (TestOutcome, Timing, Provenance, TraceRecord, ActionResult, RunTestsResult)
assert not any(m.__pydantic_complete__ for m in models)  # built on first use
preload_models()
print(sorted(m.__name__ for m in models if not m.__pydantic_complete__))
"""


def test_the_models_the_results_and_summary_are_built_with_are_ready_after_the_preload(
    tmp_path: Path,
) -> None:
    """Their validators are built in the preload: storing the results and the summary after
    pytest exits builds none."""
    # not from the checkout: its maestro/ folder would shadow the package
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
