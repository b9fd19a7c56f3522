from __future__ import annotations

import json
from pathlib import Path

from cache_helpers import action_key, flip_failed_to_passed, make_result, raw_put
from typer.testing import CliRunner

from maestro.cache import Cache
from maestro.cli.cache_cmd import cache_app

runner = CliRunner()


def test_stats_json(cache_root: Path) -> None:
    with Cache.open() as c:
        c.put_action(action_key(1), make_result(stdout=c.put_blob(b"out")))
        c.get_action(action_key(1))
    result = runner.invoke(cache_app, ["stats", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["hits"], data["blobs"], data["actions"]) == (1, 1, 1)
    assert data["path"].endswith("lmdb")
    table = runner.invoke(cache_app, ["stats"])
    assert table.exit_code == 0 and "hits / misses" in table.output


def test_verify_exit_code_tracks_corruption(cache_root: Path) -> None:
    with Cache.open() as c:
        d = c.put_blob(b"fine once")
        path = c.path
    ok = runner.invoke(cache_app, ["verify"])
    assert ok.exit_code == 0 and "1 ok, 0 corrupt" in ok.output
    raw_put(path, b"cas", d.key, b"fine twice")
    bad = runner.invoke(cache_app, ["verify"])
    assert bad.exit_code == 1
    assert "0 ok, 1 corrupt" in bad.output and "Quarantined" in bad.output


def test_gc_parses_human_sizes(cache_root: Path) -> None:
    with Cache.open() as c:
        c.put_blobs([bytes([n]) * 4096 for n in range(10)])
    result = runner.invoke(cache_app, ["gc", "--max-size", "10KiB"])
    assert result.exit_code == 0, result.output
    with Cache.open() as c:
        assert c.stats().bytes <= 10 * 1024
    bad = runner.invoke(cache_app, ["gc", "--max-size", "lots"])
    assert bad.exit_code == 1
    assert "not a size" in bad.output and "hint" in bad.output


def test_snapshot_and_restore_commands(cache_root: Path, tmp_path: Path) -> None:
    with Cache.open() as c:
        c.put_action(action_key(1), make_result(stdout=c.put_blob(b"out")))
    snap = runner.invoke(cache_app, ["snapshot", str(tmp_path / "snap")])
    assert snap.exit_code == 0, snap.output
    refused = runner.invoke(cache_app, ["restore", str(tmp_path / "snap")])
    assert refused.exit_code == 1 and "--force" in refused.output
    assert "Traceback" not in refused.output
    forced = runner.invoke(cache_app, ["restore", str(tmp_path / "snap"), "--force"])
    assert forced.exit_code == 0, forced.output
    assert "previous cache was moved" in forced.output
    with Cache.open() as c:
        assert c.get_action(action_key(1)) is not None


def test_verify_counts_an_action_result_edited_in_lmdb(cache_root: Path) -> None:
    with Cache.open() as c:
        c.put_action(action_key(1), make_result(exit_code=1))
        path = c.path
    assert runner.invoke(cache_app, ["verify"]).exit_code == 0
    flip_failed_to_passed(path, action_key(1))
    bad = runner.invoke(cache_app, ["verify"])
    assert bad.exit_code == 1, bad.output
    assert "0 ok, 1 corrupt" in bad.output and "Quarantined" in bad.output
    assert "value digest" in bad.output  # the reason column of the quarantined entry
    again = runner.invoke(cache_app, ["verify"])
    assert again.exit_code == 0 and "0 corrupt" in again.output
