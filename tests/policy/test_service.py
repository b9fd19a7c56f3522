"""The daemon's policy service without a daemon: speculation meets run windows and its budget."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from maestro.cache import ActionResult, Provenance, TestOutcome, Timing
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


async def test_never_skip_puts_a_critical_file_back_into_a_predictive_plan(
    workspace: Callable[..., Path],
) -> None:
    """The daemon's side of never-skip: a file predictive mode dropped that carries `critical`
    is planned again, its deselected tests restored, and the predictive info says why."""
    from types import SimpleNamespace

    from maestro.engine.testing import PlannedFile
    from maestro.wire import PredictiveFile, PredictiveInfo, PredictiveTest

    root = workspace()
    tests = root / "tests"
    tests.mkdir()
    (tests / "test_pay.py").write_text(
        "import pytest\n\n@pytest.mark.critical\ndef test_pay():\n    pass\n"
    )
    (tests / "test_misc.py").write_text("def test_misc():\n    pass\n")
    (tests / "test_api.py").write_text(
        "import pytest\n\npytestmark = pytest.mark.critical\n\ndef test_a():\n    pass\n"
    )

    def planned(target: str, deselect: tuple[str, ...] = ()) -> PlannedFile:
        return PlannedFile(target=target, nodes=None, key=None, cached=None, reason=None,  # type: ignore[arg-type]
                           deselect=deselect)  # fmt: skip

    pay, misc = planned("tests/test_pay.py"), planned("tests/test_misc.py")
    api = planned("tests/test_api.py", deselect=("tests/test_api.py::test_a",))
    before = [pay, misc, api]
    plan = SimpleNamespace(files=[api])  # predictive mode dropped pay and misc
    info = PredictiveInfo(
        threshold=0.5, model="heuristic",
        skipped=[PredictiveFile(target=t, probability=0.01, reason="unlikely")
                 for t in ("tests/test_pay.py", "tests/test_misc.py")],
        skipped_tests=[PredictiveTest(node_id="tests/test_api.py::test_a", probability=0.01,
                                      reason="unlikely")],
    )  # fmt: skip
    service = PolicyService(_App(root))  # type: ignore[arg-type]
    out = await service.never_skip(before, plan, info, "p1")  # type: ignore[arg-type]
    assert [f.target for f in plan.files] == ["tests/test_pay.py", "tests/test_api.py"]
    assert api.deselect == ()
    assert [s.target for s in out.skipped] == ["tests/test_misc.py"]
    assert out.skipped_tests == []
    assert "kept by policy (never_skip): tests/test_api.py, tests/test_pay.py" in out.note
    [note] = service.notes("p1")
    assert "never_skip.marker" in note
    await service.stop(None)  # type: ignore[arg-type]


def _result() -> ActionResult:
    return ActionResult(
        exit_code=0,
        tests=[TestOutcome(node_id="tests/t.py::test_a", outcome="passed", duration_s=0.01)],
        timing=Timing(started_at=datetime(2026, 12, 3, tzinfo=UTC), wall_s=0.1, cpu_s=0.1),
        provenance=Provenance.current(),
    )


class _Uploads:
    """What MirroredCache uses of RemoteSync when storing: the uploads it queues."""

    def __init__(self) -> None:
        self.queued: list[str] = []

    def enqueue_upload(self, action_hex: str, result: object) -> None:
        self.queued.append(action_hex)


async def test_a_ci_only_upload_rule_keeps_a_laptops_results_out_of_the_team_cache(
    workspace: Callable[..., Path], tmp_path: Path
) -> None:
    """The daemon's upload gate on a real LMDB cache: stored locally either way, queued for the
    team cache only from CI."""
    from maestro.cache.remote import MirroredCache

    root = workspace("[tool.maestro.policy]\nupload_ci_only = true\n")
    service = PolicyService(_App(root))  # type: ignore[arg-type]
    assert await service.gate() is not None
    sync = _Uploads()
    cache = MirroredCache.mirror(sync, tmp_path / "cache")  # type: ignore[arg-type]
    try:
        for run, ci in (("laptop", False), ("ci", True)):
            gates = service.cache_gate(run, ci=ci)
            assert gates is not None
            cache.upload_gate = gates[1]
            key = f"{len(run):064x}"
            cache.put_action(key, _result())
            assert cache.get_action(key) is not None  # stored locally in both cases
        assert sync.queued == [f"{len('ci'):064x}"]
    finally:
        cache.close()
    [laptop] = service.notes("laptop")
    assert "cache.ci_only_upload" in laptop and "denied" in laptop
    await service.stop(None)  # type: ignore[arg-type]
