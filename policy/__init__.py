"""Policy as code: Rego decisions at Maestro's gates (run, select, cache, coordinator, plugin),
recorded and explained. Knows nothing of processes; the daemon and the CLI compose it."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Imported on first use: the engine loads regopy and YAML, which a run without a policy (the
# CLI's quarantine check imports maestro.policy.quarantine) never needs.
_WHERE = {"PolicyEngine": "engine", "PolicySet": "engine"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"maestro.policy.{_WHERE.get(name, 'model')}"), name)


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
