"""`maestro status` says what the daemon's telemetry uploader and team-model fetch did: a real
embedded coordinator, a real daemon started by `maestro test`, and the real CLI."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sync_helpers import Team

from maestro.model.features import FEATURES
from maestro.model.train import ModelStore, train


def _call(url: str, method: str, path: str, token: str, data: bytes, kind: str) -> int:
    req = urllib.request.Request(
        url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": kind},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        status: int = resp.status
        return status


def _publish_team_model(url: str, admin_key: str, tmp: Path) -> str:
    """Train a small model as CI would and publish it as the tenant's team model."""
    store = ModelStore(tmp / "ci-model")
    X = np.random.default_rng(1).random((60, len(FEATURES)))
    info = store.save(train(X, (X[:, 0] > 0.5).astype(np.int_), kind="logistic"))
    data = (store.dir / f"model-v{info.version}.skops").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    body = json.dumps({"api_key": admin_key}).encode()
    req = urllib.request.Request(
        f"{url}/v1/token", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        token = json.loads(resp.read())["token"]
    assert _call(url, "PUT", f"/team/cas/{digest}", token, data, "application/octet-stream") == 200
    meta = json.dumps({"sha256": digest, "size": len(data), "info": asdict(info)}).encode()
    assert _call(url, "PUT", "/v1/tenants/team/model", token, meta, "application/json") == 200
    return digest


@pytest.mark.slow
def test_status_says_what_the_uploader_and_the_team_model_fetch_did(
    team: Team, tmp_path: Path
) -> None:
    admin = team.coord.key("team", "admin")
    ws = team.workspace("stat", "read-write")
    ws.setup(remote_extra="telemetry_upload_every_s = 0.5\nteam_model_every_s = 1")
    out = ws.test()
    assert out.returncode == 0, out.stderr + out.stdout

    def uploaded_and_fetched(remote: dict[str, Any]) -> bool:
        tel, model = remote.get("telemetry") or {}, remote.get("team_model") or {}
        return tel.get("rows_sent", 0) >= 3 and model.get("last_fetch") == "none published"

    remote = ws.wait_remote(uploaded_and_fetched, timeout=60)
    tel, model = remote["telemetry"], remote["team_model"]
    assert tel["every_s"] == 0.5 and tel["batches_sent"] >= 1 and tel["failures"] == 0
    assert tel["last_sent_at"] and tel["last_round_at"]
    assert model["every_s"] == 1 and model["ranking"] in ("own", "heuristic")

    digest = _publish_team_model(team.coord.url, admin, tmp_path)
    remote = ws.wait_remote(
        lambda r: (r.get("team_model") or {}).get("ranking") == "team", timeout=60
    )
    # the fetch that installed it, or one after it (a status call can take longer than 1 s)
    assert str(remote["team_model"]["last_fetch"]).startswith(("installed v1", "unchanged (v1)"))
    assert digest[:12] in remote["team_model"]["description"]

    text = ws.maestro("status", timeout=60)
    assert text.returncode == 0, text.stderr
    lines = text.stdout
    assert "telemetry every 0.5 s" in lines and " rows sent in " in lines
    assert "team model fetched every 1 s, last fetch" in lines
    assert "ranking: team model from the coordinator" in lines
    ws.stop_daemon()


def test_the_fetch_waits_out_a_backoff_and_says_why_it_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from maestro.cache import Cache
    from maestro.cache.remote import RemoteSync
    from maestro.daemon.services.team_model import TeamModelFetcher

    engine = RemoteSync(
        Cache.open(tmp_path / "cache"),
        url="http://127.0.0.1:9",  # nothing listens there
        tenant="team",
        api_key="mk_x_y",
        queue_path=tmp_path / "queue.sqlite",
        read_timeout_s=2.0,
    )
    engine.start()
    try:
        fetcher = TeamModelFetcher(engine, tmp_path / "model", every_s=60, timeout_s=20)
        monkeypatch.setattr(engine, "backoff_until", lambda: time.time() + 30)
        assert fetcher.fetch() == "skipped: the coordinator asked to back off"
        monkeypatch.setattr(engine, "backoff_until", lambda: None)
        outcome = fetcher.fetch()
        assert outcome.startswith("failed: "), outcome
        status = fetcher.status()
        assert status.fetches == 2 and status.last_fetch == outcome
        assert status.ranking == "heuristic" and "no model" in status.description
    finally:
        engine.stop()
