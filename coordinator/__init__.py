"""The remote coordinator: a multi-tenant, Bazel-HTTP-cache-compatible cache server.

See docs/coordinator.md. Entry points: `create_app(settings)` (aiohttp), `load_settings()`, and
`CoordinatorClient` for the daemon side.

The names load on first use: a daemon or CLI that only talks to a coordinator imports the
client, not the server (aiohttp's web framework, the routes, the OpenAPI document).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from maestro.lazy import lazy_names

if TYPE_CHECKING:
    from .app import create_app
    from .client import CoordinatorClient
    from .settings import Settings, load_settings

__all__ = ["CoordinatorClient", "Settings", "create_app", "load_settings"]

_WHERE = {
    "create_app": "app",
    "CoordinatorClient": "client",
    "Settings": "settings",
    "load_settings": "settings",
}


__getattr__ = lazy_names(__name__, _WHERE, globals())
