"""A new key definition (`KEY_SCHEMA`) re-runs every file once: no result stored under the old
one is served again, neither by its key nor as an earlier result whose recorded inputs hold (an
undone edit's way back), nor carried for the tests a node-level run does not run. Real pytest
child, real LMDB."""

from __future__ import annotations

import pytest
from testing_helpers import Workspace, ran

from maestro.cache import keys
from maestro.engine import testing


def test_results_stored_under_another_key_definition_are_not_served(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ran(ws.run())
    assert first and ran(ws.run()) == []
    # an edit and its undo: the file's kept keys now hold two results
    ws.edit("pkg/a.py", "a + b", "b + a")
    assert ran(ws.run()) == ["tests/test_a.py"]
    ws.edit("pkg/a.py", "b + a", "a + b")
    assert ran(ws.run()) == []  # the earlier result, served by its recorded inputs
    monkeypatch.setattr(keys, "KEY_SCHEMA", keys.KEY_SCHEMA + 1)
    monkeypatch.setattr(testing, "KEY_SCHEMA", keys.KEY_SCHEMA)
    plan = ws.plan()
    assert not [f.target for f in plan.files if not f.runs]
    assert ran(ws.run()) == first
    assert ran(ws.run()) == []
