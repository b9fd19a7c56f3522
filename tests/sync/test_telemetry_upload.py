"""The daemon sends its runs' telemetry to the coordinator by itself: a real coordinator, a real
daemon started by `maestro test` in a workspace whose `[tool.maestro.remote]` names it, and the
coordinator's own export of what it ingested. Plus the uploader's bounds on real stores."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sync_helpers import FILES, Team

from maestro.cache import Cache
from maestro.cache.remote import RemoteSync
from maestro.daemon.services.telemetry_upload import TelemetryUploader
from maestro.model.telemetry import ChangeSet, Telemetry, TestResult

SECRET = "tok-4f9c2e7a1b8d6035aa"  # the value of a secret-named variable of the daemon's env


def _export(url: str, admin_key: str) -> list[dict[str, Any]]:
    body = json.dumps({"api_key": admin_key}).encode()
    req = urllib.request.Request(
        f"{url}/v1/token", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        token = json.loads(resp.read())["token"]
    req = urllib.request.Request(
        f"{url}/v1/tenants/team/telemetry", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.slow
def test_the_daemon_uploads_its_redacted_telemetry_by_itself(team: Team) -> None:
    admin = team.coord.key("team", "admin")
    ws = team.workspace("tel", "read-write")
    ws.extra_env.update(DEPLOY_TOKEN=SECRET)
    files = dict(FILES)
    files["tests/test_c.py"] = (
        "import pytest\n\n\n"
        f"@pytest.mark.parametrize('value', ['{SECRET}'])\n"
        "def test_param(value):\n    assert value\n"
    )
    ws.setup(files, remote_extra="telemetry_upload_every_s = 0.5")
    out = ws.test()
    assert out.returncode == 0, out.stderr + out.stdout

    deadline = time.monotonic() + 60
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = _export(team.coord.url, admin)
        if any(r.get("test") == "tests/test_a.py::test_add" for r in rows):
            break
        time.sleep(0.3)
    tests = {r["test"] for r in rows}
    assert "tests/test_a.py::test_add" in tests, rows
    assert {"tests/test_b.py::test_mul", "tests/test_b.py::test_mul_zero"} <= tests
    row = next(r for r in rows if r["test"] == "tests/test_a.py::test_add")
    assert row["outcome"] == "passed" and row["target"] == "tests/test_a.py"
    assert SECRET not in json.dumps(rows)  # redacted before it left the workspace
    assert any(r["test"].startswith("tests/test_c.py::test_param[") for r in rows)
    # sent once: another round finds nothing new
    time.sleep(1.5)
    again = _export(team.coord.url, admin)
    assert len(again) == len(rows)
    remote = ws.remote()
    assert remote["telemetry_queue"] == 0


def _store(tmp_path: Path, runs: int, tests_per_run: int) -> Path:
    path = tmp_path / "telemetry.sqlite3"
    with Telemetry(path) as store:
        for i in range(runs):
            store.record_run(
                ChangeSet((f"src/m{i}.py",)),
                [
                    TestResult(f"tests/test_{i}.py::t{j}", "passed", 0.01)
                    for j in range(tests_per_run)
                ],
            )
    return path


def _engine(tmp_path: Path) -> RemoteSync:
    engine = RemoteSync(
        Cache.open(tmp_path / "cache"),
        url="http://127.0.0.1:9",  # never started: nothing is sent
        tenant="team",
        api_key="mk_x_y",
        queue_path=tmp_path / "queue.sqlite",
    )
    engine.role = "read-write"
    return engine


def test_rounds_are_bounded_and_resume_from_the_watermark(tmp_path: Path) -> None:
    path = _store(tmp_path, runs=30, tests_per_run=10)
    engine = _engine(tmp_path)
    up = TelemetryUploader(engine, path, tmp_path, max_rows=50, max_batches=2, max_queued=5)
    assert up.round() == 2  # 2 batches of 5 runs (50 rows) at most per round
    assert up.watermark() == 10 and engine.queue.counts().telemetry == 2
    assert up.round() == 2 and up.watermark() == 20
    # a full queue (the coordinator is not taking them): nothing more is queued
    assert up.round() == 1 and engine.queue.counts().telemetry == 5
    assert up.round() == 0 and "waiting" in (up.counters.skipped or "")
    batch = json.loads(engine.queue.peek_telemetry(1)[0].payload)
    assert len(batch) == 50 and batch[0]["test"] == "tests/test_0.py::t0"
    # a restarted daemon resumes after the last run queued
    fresh = TelemetryUploader(_engine(tmp_path / "other"), path, tmp_path)
    assert fresh.watermark() == 25


def test_no_round_while_backing_off_or_with_a_read_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _store(tmp_path, runs=2, tests_per_run=2)
    engine = _engine(tmp_path)
    up = TelemetryUploader(engine, path, tmp_path)
    monkeypatch.setattr(engine, "backoff_until", lambda: time.time() + 30)
    assert up.round() == 0 and "back off" in (up.counters.skipped or "")
    monkeypatch.setattr(engine, "backoff_until", lambda: None)
    engine.role = "read"
    assert up.round() == 0 and up.watermark() == 0  # nothing skipped for good
    engine.role = "read-write"
    assert up.round() == 1 and up.watermark() == 2


def test_the_upload_interval_is_a_remote_setting(tmp_path: Path) -> None:
    from maestro.config import load_settings
    from maestro.errors import ConfigError

    table = '[tool.maestro.remote]\nurl = "http://127.0.0.1:8980"\ntenant = "team"\n'
    (tmp_path / "pyproject.toml").write_text(table)
    remote = load_settings(tmp_path).config.remote
    assert remote is not None and remote.telemetry_upload_every_s == 60.0
    (tmp_path / "pyproject.toml").write_text(table + "telemetry-upload-every-s = 0.5\n")
    remote = load_settings(tmp_path).config.remote
    assert remote is not None and remote.telemetry_upload_every_s == 0.5
    (tmp_path / "pyproject.toml").write_text(table + "telemetry_upload_every_s = -1\n")
    with pytest.raises(ConfigError) as bad:
        load_settings(tmp_path)
    assert "tool.maestro.remote.telemetry_upload_every_s" in str(bad.value)
    assert bad.value.where == "pyproject.toml:4"
