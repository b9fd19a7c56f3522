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
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from maestro.errors import IntegrityError, MaestroError

from .openapi import AUTH_ERRORS, Operation, Response, err, operation
from .records import AcRecord

if TYPE_CHECKING:
    from maestro.model.train import ModelInfo, Predictor

    from .app import Coordinator
    from .client import CoordinatorClient

log = logging.getLogger(__name__)

POINTER_KEY = hashlib.sha256(b"maestro:team-model:v1").digest()
MAX_MODEL_BYTES = 64 << 20


class TeamModelInfo(BaseModel):
    """The published model: its blob and the metadata `maestro model train` wrote."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=1, le=MAX_MODEL_BYTES)
    info: dict[str, Any]
    published_at: float | None = None
    published_by: str | None = None


class UntrustedTeamModelError(MaestroError):
    code = "untrusted_model"


def verify_artifact(data: bytes, meta: TeamModelInfo) -> ModelInfo:
    """Check bytes and metadata as a daemon would load them (blocking: run in a pool)."""
    from maestro.model.features import FEATURES
    from maestro.model.train import ModelInfo, UntrustedModelError, load_trusted

    if hashlib.sha256(data).hexdigest() != meta.sha256 or len(data) != meta.size:
        raise UntrustedTeamModelError("the model bytes do not match the published digest")
    try:
        info = ModelInfo(**meta.info)
    except TypeError as exc:
        raise UntrustedTeamModelError(f"model metadata is not a ModelInfo: {exc}") from None
    if info.kind not in ("gbdt", "logistic"):
        raise UntrustedTeamModelError(f"a team model must be trained (kind {info.kind!r})")
    if list(info.features) != list(FEATURES):
        raise UntrustedTeamModelError("the model was trained on other features than ours")
    info.digest = meta.sha256
    with tempfile.TemporaryDirectory(prefix="maestro-model-") as tmp:
        path = Path(tmp) / "model.skops"
        path.write_bytes(data)
        try:
            load_trusted(path, expected_digest=meta.sha256)
        except UntrustedModelError as exc:
            raise UntrustedTeamModelError(exc.message, hint=exc.hint) from None
        except Exception as exc:  # not a skops file at all
            raise UntrustedTeamModelError(f"not a loadable skops model: {exc}"[:300]) from None
    return info


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
            },
            body=TeamModelInfo,
        ),
    )
    async def model(self, request: web.Request) -> web.Response:
        from .app import ApiError

        if request.method not in ("GET", "PUT"):
            raise ApiError(405, "method_not_allowed", "GET or PUT", headers={"Allow": "GET, PUT"})
        if request.method == "GET":
            principal = await self.c.tenant_principal(request, admin=False)
            value = await self.c.blobs.get_ac(principal.tenant, POINTER_KEY)
            if value is None:
                raise ApiError(404, "not_found", "no team model published for this tenant")
            return web.Response(body=value, content_type="application/json")
        principal = await self.c.tenant_principal(request, admin=True)
        if (request.content_length or 0) > 1 << 20:
            raise ApiError(413, "too_large", "model metadata is a small JSON document")
        try:
            meta = TeamModelInfo.model_validate_json(await request.read())
        except ValidationError as exc:
            raise ApiError(400, "bad_request", f"expected TeamModelInfo: {exc}"[:500]) from None
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


# -- daemon side -----------------------------------------------------------------------------------


def team_dir(model_dir: Path) -> Path:
    """Where a workspace keeps the fetched team model: beside its own versions."""
    return model_dir / "team"


async def fetch_team_model(client: CoordinatorClient, model_dir: Path) -> ModelInfo | None:
    """Fetch, verify and install the tenant's team model; None when none is published.

    Raises UntrustedTeamModelError (and removes any partial install) when it fails a check."""
    import asyncio

    from maestro.model.train import ModelStore

    status, body, _ = await client.request_json("GET", f"/v1/tenants/{client.tenant}/model")
    if status == 404:
        return None
    try:
        meta = TeamModelInfo.model_validate_json(body)
    except ValidationError as exc:
        raise UntrustedTeamModelError(f"the coordinator sent bad model metadata: {exc}") from None
    store = ModelStore(team_dir(model_dir))
    current = store.info()
    if current is not None and current.digest == meta.sha256:
        return current
    try:
        data = await client.get_cas(meta.sha256)  # verified against the digest by the client
    except IntegrityError as exc:
        raise UntrustedTeamModelError(exc.message) from None
    if data is None:
        return None
    return await asyncio.to_thread(_install, store, data, meta)


def _install(store: Any, data: bytes, meta: TeamModelInfo) -> ModelInfo:
    from dataclasses import asdict

    from maestro.model.train import UntrustedModelError

    info = verify_artifact(data, meta)
    version = max(store.versions(), default=0) + 1
    info.version = version
    store.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = store.dir / f"model-v{version}.skops"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    for name, doc in (
        (f"model-v{version}.json", asdict(info)),
        ("current.json", {"version": version}),
    ):
        out = store.dir / name
        part = out.with_suffix(f".tmp{os.getpid()}")
        part.write_text(json.dumps(doc, indent=1, sort_keys=True))
        os.replace(part, out)
    try:
        store.load()  # the daemon's own check, exactly as ranking will load it
    except UntrustedModelError as exc:
        shutil.rmtree(store.dir, ignore_errors=True)
        raise UntrustedTeamModelError(exc.message) from None
    return info


@dataclass(frozen=True)
class Ranking:
    """Which model ranks tests in a workspace, and why."""

    source: str  # "team", "own" or "heuristic"
    predictor: Predictor | None
    note: str = ""

    def describe(self) -> str:
        if self.predictor is None:
            return f"heuristic (no model){': ' + self.note if self.note else ''}"
        info = self.predictor.info
        which = "team model from the coordinator" if self.source == "team" else "own model"
        text = f"{which} v{info.version} {info.kind}, digest {info.digest[:12] or '-'}"
        return text + (f" ({self.note})" if self.note else "")


def ranking_model(model_dir: Path) -> Ranking:
    """The team model when one is installed and passes its checks, else the workspace's own
    model, else the heuristic. Never raises for a bad file: it is reported in `note`."""
    from maestro.model.train import ModelStore, UntrustedModelError

    note = ""
    team = ModelStore(team_dir(model_dir))
    if team.current_version() is not None:
        try:
            predictor = team.load()
        except UntrustedModelError as exc:
            note = f"team model refused: {exc.message}"
        else:
            if predictor is not None:
                return Ranking("team", predictor)
    try:
        own = ModelStore(model_dir).load()
    except UntrustedModelError as exc:
        return Ranking("heuristic", None, "; ".join(filter(None, [note, exc.message])))
    if own is None:
        return Ranking("heuristic", None, note)
    return Ranking("own", own, note)
