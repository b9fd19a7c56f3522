"""`maestro model export|train|eval|status` on a workspace with synthetic telemetry."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import typer
from synth import synthetic_runs
from typer.testing import CliRunner

from maestro.cli.model_cmd import model_app
from maestro.model.telemetry import Telemetry


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MAESTRO_STATE_DIR", str(tmp_path / "state"))
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    now = time.time()
    with Telemetry.for_workspace(ws) as tel:
        for i, (_, change, results) in enumerate(synthetic_runs(60)):
            tel.record_run(change, results, ts=now - 2 * 86400 + i * 600)
    return ws


def test_model_cli_round_trip(workspace: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    app.add_typer(model_app, name="model")
    cli = CliRunner()
    root = ["--root", str(workspace)]
    res = cli.invoke(app, ["model", "status", *root, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["model"] is None
    res = cli.invoke(app, ["model", "train", *root, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["version"] == 1
    res = cli.invoke(app, ["model", "train", *root, "--json"])
    assert json.loads(res.output)["trained"] is False
    res = cli.invoke(app, ["model", "eval", *root, "--json"])
    assert res.exit_code == 0, res.output
    ev = json.loads(res.output)
    assert ev["apfd"]["model"] > ev["apfd"]["random"]
    out = tmp_path / "set.csv"
    res = cli.invoke(app, ["model", "export", *root, "--out", str(out)])
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("run_id,ts,test,distance") and len(lines) == 1 + 60 * 64
    res = cli.invoke(app, ["model", "status", *root, "--json"])
    status = json.loads(res.output)
    assert status["model"]["version"] == 1 and status["telemetry"]["runs"] == 60
