"""The remote coordinator: a multi-tenant, Bazel-HTTP-cache-compatible cache server.

See docs/coordinator.md. Entry points: `create_app(settings)` (aiohttp), `load_settings()`, and
`CoordinatorClient` for the daemon side.

The names load on first use: a daemon or CLI that only talks to a coordinator imports the
client, not the server (aiohttp's web framework, the routes, the OpenAPI document).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .client import CoordinatorClient
    from .settings import Settings, load_settings

__all__ = ["CoordinatorClient", "Settings", "create_app", "load_settings"]

_WHERE = {
    "create_app": ".app",
    "CoordinatorClient": ".client",
    "Settings": ".settings",
    "load_settings": ".settings",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
