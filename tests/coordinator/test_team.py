"""Team telemetry and the team model against a real coordinator app on loopback (real LMDB):
telemetry is redacted before it is stored, a published model is served and verified by the
daemon-side fetch, and tampered or foreign models are refused."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from coord_helpers import Env, sha

from maestro.coordinator.client import CoordinatorClient
from maestro.coordinator.models import Role
from maestro.coordinator.store import Store
from maestro.coordinator.team_model import (
    UntrustedTeamModelError,
    fetch_team_model,
    ranking_model,
    team_dir,
)
from maestro.model.features import FEATURES
from maestro.model.train import ModelStore, train

GITHUB_TOKEN = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"
AWS_KEY = "AKIA" + "QX7ZK2JH4M5N6P7R"


async def test_telemetry_is_redacted_before_ingest(env: Env, settings_dir: Path) -> None:
    headers = await env.auth("alpha")
    rows = [
        {"test": "tests/test_a.py::test_ok", "outcome": "passed", "message": ""},
        {
            "test": "tests/test_b.py::test_login",
            "outcome": "failed",
            "message": f"auth failed with token={GITHUB_TOKEN} and key {AWS_KEY}",
        },
    ]
    resp = await env.client.post("/v1/tenants/alpha/telemetry", json=rows, headers=headers)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"tenant": "alpha", "rows": 2, "redacted": 1}
    stored = b"".join(p.read_bytes() for p in (settings_dir / "telemetry").rglob("*.jsonl"))
    assert stored.count(b"\n") == 2
    assert GITHUB_TOKEN.encode() not in stored and AWS_KEY.encode() not in stored
    assert b"tests/test_b.py::test_login" in stored
    # the export (admin) is the redacted rows; readers cannot send, others' tenants are closed
    admin = await env.auth("alpha", Role.ADMIN)
    export = await (await env.client.get("/v1/tenants/alpha/telemetry", headers=admin)).read()
    assert GITHUB_TOKEN.encode() not in export and len(export.splitlines()) == 2
    reader = await env.auth("alpha", Role.READ)
    assert (
        await env.client.post("/v1/tenants/alpha/telemetry", json=rows, headers=reader)
    ).status == 403
    assert (
        await env.client.post("/v1/tenants/beta/telemetry", json=rows, headers=headers)
    ).status == 403
    assert (
        await env.client.post("/v1/tenants/alpha/telemetry", data=b"[1]", headers=headers)
    ).status == 400


@pytest.fixture
def settings_dir(env: Env) -> Path:
    app = env.client.app
    from maestro.coordinator.app import STATE

    path: Path = app[STATE].settings.data_dir
    return path


def _trained(tmp: Path) -> tuple[bytes, dict[str, object]]:
    store = ModelStore(tmp / "ci-model")
    X = np.random.default_rng(1).random((60, len(FEATURES)))
    info = store.save(train(X, (X[:, 0] > 0.5).astype(np.int_), kind="logistic"))
    return (store.dir / f"model-v{info.version}.skops").read_bytes(), asdict(info)


async def _publish(env: Env, data: bytes, info: dict[str, object]) -> int:
    admin = await env.auth("alpha", Role.ADMIN)
    put = await env.client.put(f"/alpha/cas/{sha(data)}", data=data, headers=admin)
    assert put.status == 200
    meta = {"sha256": sha(data), "size": len(data), "info": info}
    resp = await env.client.put("/v1/tenants/alpha/model", json=meta, headers=admin)
    return resp.status


async def test_team_model_is_served_verified_and_ranks(env: Env, tmp_path: Path) -> None:
    data, info = _trained(tmp_path)
    model_dir = tmp_path / "ws-model"
    own = ModelStore(model_dir)
    X = np.random.default_rng(2).random((60, len(FEATURES)))
    own.save(train(X, (X[:, 1] > 0.5).astype(np.int_), kind="logistic"))
    assert ranking_model(model_dir).source == "own"
    base = str(env.client.make_url(""))
    async with CoordinatorClient(base, "alpha", env.key("alpha", Role.READ)) as client:
        assert await fetch_team_model(client, model_dir) is None  # none published yet
        assert await _publish(env, data, info) == 200
        installed = await fetch_team_model(client, model_dir)
    assert installed is not None and installed.digest == sha(data)
    ranking = ranking_model(model_dir)
    assert ranking.source == "team" and ranking.predictor is not None
    assert "team model from the coordinator" in ranking.describe()
    assert ranking.predictor.predict(X[:3]).shape == (3,)
    # a file changed on disk after the fetch is refused; the workspace's own model ranks
    team_file = next(team_dir(model_dir).glob("model-v*.skops"))
    team_file.write_bytes(team_file.read_bytes() + b"\0")
    fallback = ranking_model(model_dir)
    assert fallback.source == "own" and "team model refused" in fallback.note


async def test_foreign_types_are_refused_at_publication(env: Env, tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    from maestro.model import train as train_module

    path = tmp_path / "foreign.skops"
    # a type outside the allowlist (any class of a test module stands for a foreign payload)
    sio.dump({"estimator": LogisticRegression(), "extra": train_module.Predictor}, path)
    _, info = _trained(tmp_path)
    status = await _publish(env, path.read_bytes(), info)
    assert status == 400
    admin = await env.auth("alpha", Role.ADMIN)
    assert (await env.client.get("/v1/tenants/alpha/model", headers=admin)).status == 404
    # metadata that lies about the digest is refused too
    data, info = _trained(tmp_path / "b")
    await env.client.put(f"/alpha/cas/{sha(data)}", data=data, headers=admin)
    lie = {"sha256": hashlib.sha256(b"other").hexdigest(), "size": len(data), "info": info}
    resp = await env.client.put("/v1/tenants/alpha/model", json=lie, headers=admin)
    assert resp.status == 409  # no such blob
    wrong_size = {"sha256": sha(data), "size": len(data) + 1, "info": info}
    resp = await env.client.put("/v1/tenants/alpha/model", json=wrong_size, headers=admin)
    assert resp.status == 400 and (await resp.json())["error"] == "untrusted_model"


async def test_tampered_stored_model_is_never_installed(env: Env, tmp_path: Path) -> None:
    data, info = _trained(tmp_path)
    assert await _publish(env, data, info) == 200
    store: Store = env.store
    tenant = store.get_tenant("alpha")
    assert tenant is not None
    with store.env.begin(write=True, db=store._db["cas"]) as txn:  # bit rot / tampering
        key = tenant.prefix + bytes.fromhex(sha(data))
        txn.put(key, data[:-1] + bytes([data[-1] ^ 1]))
    base = str(env.client.make_url(""))
    model_dir = tmp_path / "ws-model"
    async with CoordinatorClient(base, "alpha", env.key("alpha", Role.READ)) as client:
        assert await fetch_team_model(client, model_dir) is None  # quarantined, a miss
    assert ranking_model(model_dir).source == "heuristic"
    assert not list(team_dir(model_dir).glob("*.skops")) if team_dir(model_dir).exists() else True


def test_verify_refuses_bytes_that_do_not_match(tmp_path: Path) -> None:
    from maestro.coordinator.team_model import TeamModelInfo, verify_artifact

    data, info = _trained(tmp_path)
    meta = TeamModelInfo(sha256=sha(data), size=len(data), info=info)
    assert verify_artifact(data, meta).digest == sha(data)
    with pytest.raises(UntrustedTeamModelError, match="digest"):
        verify_artifact(data[:-1] + bytes([data[-1] ^ 1]), meta)
    bad = dict(info, features=["other"])
    with pytest.raises(UntrustedTeamModelError, match="features"):
        verify_artifact(data, TeamModelInfo(sha256=sha(data), size=len(data), info=bad))
    assert json.loads(meta.model_dump_json())["sha256"] == sha(data)


async def test_model_pull_and_status_say_which_model_ranks(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`maestro model pull` installs the published team model and `maestro model status` says it
    ranks; once its file is tampered with, status says the workspace's fallback ranks and why."""
    import asyncio

    import typer
    from typer.testing import CliRunner

    from maestro.cli.model_cmd import model_app

    data, info = _trained(tmp_path)
    assert await _publish(env, data, info) == 200
    monkeypatch.setenv("MAESTRO_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("TEAM_KEY", env.key("alpha", Role.READ))
    ws = tmp_path / "ws"
    ws.mkdir()
    base = str(env.client.make_url("")).rstrip("/")
    (ws / "pyproject.toml").write_text(
        f'[project]\nname = "x"\n\n[tool.maestro.remote]\nurl = "{base}"\n'
        'tenant = "alpha"\napi_key_env = "TEAM_KEY"\n'
    )
    app = typer.Typer()
    app.add_typer(model_app, name="model")
    cli = CliRunner()

    def model(*args: str) -> str:
        result = cli.invoke(app, ["model", *args, "--root", str(ws)])
        assert result.exit_code == 0, result.output
        return result.output

    pulled = await asyncio.to_thread(model, "pull")
    assert "ranking: team model from the coordinator" in pulled, pulled
    status = json.loads(await asyncio.to_thread(model, "status", "--json"))
    assert status["ranking"]["source"] == "team"
    assert sha(data)[:12] in status["ranking"]["description"]
    assert "ranking: team model from the coordinator" in await asyncio.to_thread(model, "status")

    team_file = next(team_dir(ModelStore.for_workspace(ws).dir).glob("model-v*.skops"))
    team_file.write_bytes(team_file.read_bytes() + b"\0")
    status = json.loads(await asyncio.to_thread(model, "status", "--json"))
    assert status["ranking"]["source"] == "heuristic", status["ranking"]
    assert "team model refused" in status["ranking"]["description"]


async def test_model_push_publishes_what_model_pull_installs_elsewhere(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`maestro model push` (admin key) publishes the workspace's model; `maestro model pull` in
    another workspace (read key) installs that same model and says it ranks."""
    import asyncio

    import typer
    from typer.testing import CliRunner

    from maestro.cli.model_cmd import model_app

    monkeypatch.setenv("MAESTRO_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ADMIN_KEY", env.key("alpha", Role.ADMIN))
    monkeypatch.setenv("READ_KEY", env.key("alpha", Role.READ))
    base = str(env.client.make_url("")).rstrip("/")
    app = typer.Typer()
    app.add_typer(model_app, name="model")
    cli = CliRunner()

    def workspace(name: str, key_env: str) -> Path:
        ws = tmp_path / name
        ws.mkdir()
        (ws / "pyproject.toml").write_text(
            f'[project]\nname = "{name}"\n\n[tool.maestro.remote]\nurl = "{base}"\n'
            f'tenant = "alpha"\napi_key_env = "{key_env}"\n'
        )
        return ws

    def model(ws: Path, *args: str) -> str:
        result = cli.invoke(app, ["model", *args, "--root", str(ws)])
        assert result.exit_code == 0, result.output
        return result.output

    ci, dev = workspace("ci", "ADMIN_KEY"), workspace("dev", "READ_KEY")
    X = np.random.default_rng(3).random((60, len(FEATURES)))
    store = ModelStore.for_workspace(ci)
    store.save(train(X, (X[:, 2] > 0.5).astype(np.int_), kind="logistic"))
    info = store.info()
    assert info is not None
    sent = (store.dir / f"model-v{info.version}.skops").read_bytes()

    pushed = await asyncio.to_thread(model, ci, "push")
    assert f"published team model {sha(sent)[:12]}" in pushed, pushed
    pulled = await asyncio.to_thread(model, dev, "pull")
    assert "ranking: team model from the coordinator" in pulled, pulled
    installed = next(team_dir(ModelStore.for_workspace(dev).dir).glob("model-v*.skops"))
    assert installed.read_bytes() == sent
