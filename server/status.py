"""``maestro/status``: the server, its settings, each workspace daemon and the active runs.
State changes of a daemon link are pushed as ``maestro/statusChanged`` (see server.py)."""

from __future__ import annotations

import asyncio

from maestro import __version__
from maestro.server import methods
from maestro.server.methods import Empty, StatusInfo, serve
from maestro.server.runs import manager
from maestro.server.server import MaestroServer


async def status(ls: MaestroServer) -> StatusInfo:
    for root in ls.folders():
        ls.ws(root)
    links = await asyncio.gather(*(ws.link.status() for ws in ls.workspaces.values()))
    return {
        "version": __version__,
        "settings": ls.settings,
        "testExplorer": ls.test_explorer,
        "workspaces": list(links),
        "runs": [r.to_json() for r in manager(ls).active.values()],
    }


def register(server: MaestroServer) -> None:
    @serve(server, methods.STATUS)
    async def status_request(ls: MaestroServer, params: Empty) -> StatusInfo:
        return await status(ls)
