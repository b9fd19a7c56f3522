"""Policy as code: Rego decisions at Maestro's gates (run, select, cache, coordinator, plugin),
recorded and explained. Knows nothing of processes; the daemon and the CLI compose it."""

from maestro.policy.engine import PolicyEngine, PolicySet
from maestro.policy.model import (
    CacheInput,
    CoordinatorInput,
    Decision,
    DecisionRecord,
    FiredRule,
    PluginInput,
    PolicyInput,
    RunInput,
    SelectInput,
)

__all__ = [
    "CacheInput",
    "CoordinatorInput",
    "Decision",
    "DecisionRecord",
    "FiredRule",
    "PluginInput",
    "PolicyEngine",
    "PolicyInput",
    "PolicySet",
    "RunInput",
    "SelectInput",
]
