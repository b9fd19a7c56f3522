"""The sync engine's typed status (cache/remote.py, which knows nothing of the wire) names only
fields of the wire's RemoteStatus, with the same types: the daemon spreads one into the other."""

from __future__ import annotations

from typing import get_type_hints

from maestro.cache.remote import SyncState
from maestro.wire import RemoteStatus


def test_every_sync_state_field_is_a_remote_status_field_of_the_same_type() -> None:
    ours = get_type_hints(SyncState)
    wire = {name: field.annotation for name, field in RemoteStatus.model_fields.items()}
    assert set(ours) <= set(wire), set(ours) - set(wire)
    assert {n: t for n, t in ours.items() if wire[n] != t} == {}
    # what the daemon adds itself
    assert set(wire) - set(ours) == {"telemetry", "team_model"}
