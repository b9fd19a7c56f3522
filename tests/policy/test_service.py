"""The daemon's policy service without a daemon: speculation meets run windows and its budget."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from maestro.daemon.services.policy import PolicyService
from maestro.errors import PolicyDeniedError


class _App:
    def __init__(self, root: Path) -> None:
        self.root = root

    def broadcast(self, event: str, payload: object = None) -> int:
        return 0


def _closed_window() -> str:
    # a one-minute window that opened an hour ago: closed now, whatever the day
    start = datetime.now(UTC) - timedelta(hours=1)
    end = start + timedelta(minutes=1)
    return (
        f'[tool.maestro.policy.windows.w]\ntz = "UTC"\nstart = "{start:%H:%M}"\n'
        f'end = "{end:%H:%M}"\n'
    )


async def test_speculation_is_refused_outside_its_window_and_without_budget(
    workspace: Callable[..., Path],
) -> None:
    service = PolicyService(_App(workspace(_closed_window())))  # type: ignore[arg-type]
    refused = await service.refuse_speculation("s1", budget_s=10)
    assert refused is not None and "(rule windows.closed)" in refused
    await service.stop(None)  # type: ignore[arg-type]

    open_ws = PolicyService(_App(workspace("")))  # type: ignore[arg-type]
    assert await open_ws.refuse_speculation("s2", budget_s=10) is None
    spent = await open_ws.refuse_speculation("s3", budget_s=0)
    assert spent is not None and "speculation.budget" in spent
    await open_ws.stop(None)  # type: ignore[arg-type]


async def test_a_background_run_outside_its_window_is_denied_with_retry(
    workspace: Callable[..., Path],
) -> None:
    service = PolicyService(_App(workspace(_closed_window())))  # type: ignore[arg-type]
    with pytest.raises(PolicyDeniedError) as caught:
        await service.admit("b1", [], kind="background")
    assert caught.value.retry_after_ms is not None and caught.value.retry_after_ms > 0
    assert caught.value.hint is not None and "start it yourself" in caught.value.hint
    await service.admit("i1", [], kind="interactive")  # interactive runs are not windowed
    await service.finished("i1")
    await service.stop(None)  # type: ignore[arg-type]


ERRING_RUN = """package maestro.workspace.run

import rego.v1

pick := "a" if input.kind != ""

pick := "b" if input.kind != ""

deny contains {"rule": "conflict", "msg": pick} if pick
"""


async def test_a_local_run_the_policy_cannot_decide_starts_with_a_warning(
    workspace: Callable[..., Path],
) -> None:
    """Fail open for local runs: the run is admitted and its result carries the warning."""
    root = workspace("", {"erring.rego": ERRING_RUN})
    service = PolicyService(_App(root))  # type: ignore[arg-type]
    await service.admit("e1", ["tests/t.py"], kind="interactive")
    [note] = service.notes("e1")
    assert "could not decide" in note and "fail open" in note and "policy.error" in note
    gate = await service.gate()
    assert gate is not None
    [record] = gate.decisions(execution_id="e1")
    assert record.result == "allow" and record.error
    await service.finished("e1")
    await service.stop(None)  # type: ignore[arg-type]
