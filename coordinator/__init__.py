"""The remote coordinator: a multi-tenant, Bazel-HTTP-cache-compatible cache server.

See docs/coordinator.md. Entry points: `create_app(settings)` (aiohttp), `load_settings()`, and
`CoordinatorClient` for the daemon side.
"""

from .app import create_app
from .client import CoordinatorClient
from .settings import Settings, load_settings

__all__ = ["CoordinatorClient", "Settings", "create_app", "load_settings"]
