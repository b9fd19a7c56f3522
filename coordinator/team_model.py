"""The team model: one test-ranking model per tenant, stored and served by the coordinator as a
verified skops artifact (never pickle), fetched by daemons, which fall back to their own.

Publishing (CI, admin key): upload the `.skops` file as an ordinary CAS blob of the tenant, then
``PUT /v1/tenants/{tenant}/model`` with `TeamModelInfo` (its sha256, size and the ModelInfo
`maestro model train` wrote). The coordinator loads the blob with skops' trusted-types check
restricted to `model.train.ALLOWED_TYPES` and the features this version computes; anything else
is refused (400 `untrusted_model`) and nothing is published. The pointer is an action-cache
entry of the tenant at a reserved key whose record references the blob, so it lives wherever the
tenant's entries live (embedded LMDB, or the replicas' upstream) and is served only while the
blob is present and intact (CAS reads re-hash).

Fetching (daemon): ``GET /v1/tenants/{tenant}/model`` gives the pointer; the blob comes through
the verified CAS read; it is written as a ModelStore version under the workspace's
``model/team/`` and loaded through `ModelStore.load`, which re-checks its digest and types. A
model that fails any check is deleted and refused; ranking then uses the workspace's own model.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from maestro.model.team import (
    MAX_MODEL_BYTES,
    Ranking,
    TeamModelInfo,
    UntrustedTeamModelError,
    fetch_team_model,
    ranking_model,
    team_dir,
    verify_artifact,
)

from .bodies import ApiError, json_body
from .openapi import AUTH_ERRORS, Operation, Response, err, operation
from .records import AcRecord

if TYPE_CHECKING:
    from .app import Coordinator

log = logging.getLogger(__name__)

__all__ = [
    "MAX_MODEL_BYTES",
    "POINTER_KEY",
    "Ranking",
    "TeamModelInfo",
    "TeamModelRoutes",
    "UntrustedTeamModelError",
    "add_routes",
    "fetch_team_model",
    "ranking_model",
    "team_dir",
    "verify_artifact",
]

POINTER_KEY = hashlib.sha256(b"maestro:team-model:v1").digest()


# -- coordinator side ------------------------------------------------------------------------------


class TeamModelRoutes:
    def __init__(self, coordinator: Coordinator) -> None:
        self.c = coordinator

    @operation(
        get=Operation(
            "The tenant's published team model (any role)",
            "get_team_model",
            {"200": Response("Published.", TeamModelInfo), **AUTH_ERRORS, "404": err("None.")},
        ),
        put=Operation(
            "Publish a team model (admin); its .skops must already be a CAS blob of the tenant",
            "put_team_model",
            {
                "200": Response("Published.", TeamModelInfo),
                "400": err("Untrusted types, wrong features, bad metadata."),
                **AUTH_ERRORS,
                "409": err("The blob is not stored."),
                "413": err("Body too large."),
            },
            body=TeamModelInfo,
        ),
    )
    async def model(self, request: web.Request) -> web.Response:
        if request.method not in ("GET", "PUT"):
            raise ApiError(405, "method_not_allowed", "GET or PUT", headers={"Allow": "GET, PUT"})
        if request.method == "GET":
            principal = await self.c.tenant_principal(request, admin=False)
            value = await self.c.blobs.get_ac(principal.tenant, POINTER_KEY)
            if value is None:
                raise ApiError(404, "not_found", "no team model published for this tenant")
            return web.Response(body=value, content_type="application/json")
        principal = await self.c.tenant_principal(request, admin=True)
        meta = await json_body(
            request,
            TeamModelInfo,
            1 << 20,
            "model metadata is a small JSON document",
            "TeamModelInfo (the published model's metadata)",
        )
        tenant = principal.tenant
        data = await self.c.blobs.get_cas(tenant, bytes.fromhex(meta.sha256))
        if data is None:
            raise ApiError(
                409,
                "model_blob_missing",
                "upload the .skops file as a CAS blob of the tenant first",
                hint=f"PUT /{tenant.name}/cas/{meta.sha256}",
            )
        try:
            info = await self.c.run(verify_artifact, data, meta)
        except UntrustedTeamModelError as exc:
            log.warning("tenant %s: team model refused: %s", tenant.name, exc.message)
            raise ApiError(400, exc.code, exc.message, hint=exc.hint) from None
        import time
        from dataclasses import asdict

        published = meta.model_copy(
            update={
                "info": asdict(info),
                "published_at": time.time(),
                "published_by": principal.key_id,
            }
        )
        body = published.model_dump_json().encode()
        record = AcRecord(raw=False, value=body, refs=((bytes.fromhex(meta.sha256), meta.size),))
        await self.c.blobs.put_ac(tenant, POINTER_KEY, record)
        log.info("tenant %s: team model %s published", tenant.name, meta.sha256[:12])
        return web.Response(body=body, content_type="application/json")


def add_routes(app: web.Application, coordinator: Coordinator) -> TeamModelRoutes:
    routes = TeamModelRoutes(coordinator)
    app.router.add_get("/v1/tenants/{tenant}/model", routes.model)
    app.router.add_put("/v1/tenants/{tenant}/model", routes.model)
    return routes
