"""``maestro/status``: the server, its settings, each workspace daemon and the active runs.
State changes of a daemon link are pushed as ``maestro/statusChanged`` (see server.py)."""

from __future__ import annotations

import asyncio

from maestro import __version__
from maestro.server import backoff, methods
from maestro.server.methods import Empty, StatusInfo, serve
from maestro.server.runs import manager
from maestro.server.server import MaestroServer


async def status(ls: MaestroServer) -> StatusInfo:
    for root in ls.folders():
        ls.ws(root)
    spaces = list(ls.workspaces.values())
    links = await asyncio.gather(*(ws.link.status() for ws in spaces))
    for ws, link in zip(spaces, links, strict=True):
        if link["daemon"] is not None:
            backoff.note(ls, ws, backoff.remote_of(link["daemon"]))
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
