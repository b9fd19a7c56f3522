"""In-process coordinators for the tests of every folder (coordinator, policy, flags, redaction,
LSP): one app served on loopback with the coordinator's own runner settings, and a started
client for it.

On sys.path through pytest's `pythonpath` (pyproject.toml), like workspace_procs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web
    from aiohttp.test_utils import TestClient


async def serve(app: web.Application) -> TestClient:  # type: ignore[type-arg]
    """A started client of ``app``, served on loopback; ``await client.close()`` stops both."""
    from aiohttp.test_utils import TestClient, TestServer

    from maestro.coordinator.app import RUNNER_KWARGS

    server = TestServer(app)
    await server.start_server(**RUNNER_KWARGS)
    client: TestClient[Any, Any] = TestClient(server)
    await client.start_server()
    return client
