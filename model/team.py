"""The team model on the daemon's side: the published model's metadata and checks, fetching it
from the coordinator, and which model ranks a workspace's tests.

The coordinator serves it (maestro.coordinator.team_model, which publishes through the same
checks); this module imports nothing of the server side, so a daemon that only ranks with its
own model (or the heuristic) loads neither aiohttp's server nor numpy until it ranks.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError

from maestro.errors import IntegrityError, MaestroError

if TYPE_CHECKING:
    from maestro.coordinator.client import CoordinatorClient
    from maestro.model.train import ModelInfo, Predictor

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
