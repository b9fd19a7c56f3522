"""The policy models' validators are built on first use, not at import: a daemon imports them
to register its policy methods and answers its first query without them; it builds them with
`prepare()` while it opens its gate, before a run asks for a decision."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
from pydantic import BaseModel

from maestro.daemon.services import policy  # what a daemon imports at start
from maestro.policy import model, protocol


def built(m: type[BaseModel]) -> bool:
    return type(m.__pydantic_validator__).__name__ != "MockValSer"


models = [*model.INPUTS.values(), model.Decision, model.DecisionRecord, model.FiredRule,
          protocol.PolicyDecisionsResult, protocol.PolicyIncidentResult]
print(sorted(m.__name__ for m in models if built(m)))
model.prepare()
print(sorted(m.__name__ for m in models[:-2] if not built(m)))
"""


def test_importing_the_daemon_policy_service_builds_no_policy_validator() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd="/", capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "[]"]
