"""The file versions a workspace keeps to diff changes against stay bounded: real pytest children,
a real LMDB cache, the `maestro cache` commands."""

from __future__ import annotations

import os
import time

import pytest
from precision_helpers import Workspace, ran_nodes
from typer.testing import CliRunner

from maestro.cli.cache_cmd import cache_app
from maestro.engine.testing import FINGERPRINTS_DIR
from maestro.graph import fingerprints
from maestro.paths import workspace_state_dir

EDITS = 6


def _versions(ws: Workspace) -> set[str]:
    store = workspace_state_dir(ws.root) / FINGERPRINTS_DIR
    return {p.name.partition(".")[0] for p in store.glob("??/*") if p.is_file()}


def _age(ws: Workspace, seconds: float) -> None:
    """As if everything kept had been written ``seconds`` ago."""
    then = time.time() - seconds
    for path in (workspace_state_dir(ws.root) / FINGERPRINTS_DIR).rglob("*"):
        os.utime(path, (then, then))


def _edit_many(ws: Workspace) -> None:
    ws.run()
    for n in range(EDITS):
        old = "return x * 3" if n == 0 else f"return x * 3 + {n - 1} * 0"
        ws.edit("pkg/calc.py", old, f"return x * 3 + {n} * 0")
        assert ran_nodes(ws.run()) == ["tests/test_calc.py::test_triple"]


def test_cache_gc_drops_the_versions_no_stored_result_needs(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    _edit_many(ws)
    before = _versions(ws)
    assert len(before) > EDITS  # a version of pkg/calc.py per edit, the other inputs once
    _age(ws, 3600)
    stats = CliRunner().invoke(cache_app, ["stats"])
    assert stats.exit_code == 0, stats.output
    assert f"{len(before)} in 1 workspace (" in " ".join(stats.output.split())
    result = CliRunner().invoke(cache_app, ["gc", "--max-size", "10GB"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    after = _versions(ws)
    # each test file's last keys (the last and up to two earlier) name at most three versions
    # of pkg/calc.py: the other edits' versions go
    assert len(before) - len(after) >= EDITS - 3, (len(before), len(after))
    assert f"dropped {len(before) - len(after)} kept file versions" in said
    assert f"; {len(after)} kept" in said
    # an upgrade that changes the fingerprint format still judges the next change function by
    # function, from the version the last result ran (kept)
    monkeypatch.setattr(fingerprints, "FORMAT", fingerprints.FORMAT + 1)
    ws.edit("pkg/calc.py", f"return x * 3 + {EDITS - 1} * 0", "return x + x + x")
    calc = next(f for f in ws.plan().files if f.target == "tests/test_calc.py")
    assert calc.run_nodes == ("tests/test_calc.py::test_triple",), calc.describe()
    assert ran_nodes(ws.run()) == ["tests/test_calc.py::test_triple"]


def test_a_run_drops_them_by_itself_now_and_then(ws: Workspace) -> None:
    _edit_many(ws)
    before = _versions(ws)
    ws.edit("pkg/calc.py", f"return x * 3 + {EDITS - 1} * 0", "return x + x + x")
    _age(ws, 2 * 3600)  # the last drop, and every version kept, two hours ago
    assert ran_nodes(ws.run()) == ["tests/test_calc.py::test_triple"]
    after = _versions(ws)
    assert len(after) <= len(before) + 1 - (EDITS - 3), (len(before), len(after))
    # what the run just kept is judged by: the next edit still selects by function
    ws.edit("pkg/calc.py", "return x + x + x", "return 3 * x")
    assert ran_nodes(ws.run()) == ["tests/test_calc.py::test_triple"]
