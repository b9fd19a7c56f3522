"""The first plan after the policy changed: a long-lived engine decides the recent plans' cache
``serve`` inputs on a newly installed set in the background (a warm-up), so the plan finds them
decided; and a plan's unmarked files share one evaluation when no rule reads their target.
Every answer is the one the new set gives each input on its own."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_decision_cost import counting

from maestro.policy import CacheInput, PolicyEngine
from maestro.policy.engine import PolicySet
from maestro.policy.memo import memo_path
from maestro.policy.model import Decision

LIVE = """package maestro.workspace.cache

import rego.v1

# METADATA
# custom:
#   id: cache.{prefix}
#   remediation: these always run
deny contains {{"rule": "cache.{prefix}", "target": input.target, "msg": "{prefix}"}} if {{
\tinput.action == "serve"
\tstartswith(input.target, "tests/{prefix}_")
}}
"""

FAILED = """package maestro.workspace.cache

import rego.v1

# METADATA
# custom:
#   id: cache.failed_runs_again
#   remediation: a failed result is run again, not replayed
deny contains {"rule": "cache.failed_runs_again", "msg": "it failed last time"} if {
\tinput.action == "serve"
\tinput.outcome == "failed"
}
"""

BASE = CacheInput(execution_id="e1", action="serve", target="x")


def serves(n: int) -> list[dict[str, Any]]:
    return [
        {"target": f"tests/{('live', 'slow', 'unit')[i % 3]}_{i}.py",
         "markers": ["flaky"] if i % 7 == 0 else [],
         "outcome": "failed" if i % 4 == 0 else "passed", "ci": False}
        for i in range(n)
    ]  # fmt: skip


def one_by_one(root: Path, updates: list[dict[str, Any]]) -> list[Decision]:
    """What a fresh engine answers each input alone (no memo shared, no grouping)."""
    fresh = PolicyEngine.open(root)
    assert fresh.last_error is None
    return [fresh.decide(BASE.model_copy(update=u)) for u in updates]


def test_unmarked_files_share_one_evaluation_when_no_rule_reads_their_target(
    workspace: Callable[..., Path],
) -> None:
    root = workspace("", {"failed.rego": FAILED})
    engine = PolicyEngine.open(root)
    assert engine.current is not None and engine.current.target_blind
    updates = serves(60)
    calls = counting(engine.current)
    many = engine.decide_many(BASE, updates)
    marked = sum(1 for u in updates if u["markers"])
    assert calls[0] == 2 + marked  # one per outcome of the unmarked, one per marked file
    assert many == one_by_one(root, updates)
    assert {d.result for d in many} == {"allow", "deny"}
    assert "cache.no_cache_marker" in {r.rule for d in many for r in d.rules}
    denied = [u for u, d in zip(updates, many, strict=True) if d.result == "deny"]
    assert all(u["outcome"] == "failed" or u["markers"] for u in denied)


@pytest.mark.parametrize(
    "reads",
    [
        'startswith(input["target"], "tests/live")',
        'startswith(object.get(input, "tar", ""), "x")',
        # the target read otherwise than by a string test with a literal (tests/policy/
        # test_target_tests.py: those share one evaluation per answers)
        'glob.match("tests/live*", ["/"], input.target)',
        'p := "tests/live"\n\tstartswith(input.target, p)',
        "count(input.target) > 16",
        'startswith(lower(input.target), "tests/live")',
    ],
)
def test_a_rule_that_may_read_the_target_is_asked_for_every_file(
    workspace: Callable[..., Path], reads: str
) -> None:
    rule = FAILED.replace('input.outcome == "failed"', reads)
    root = workspace("", {"r.rego": rule})
    engine = PolicyEngine.open(root)
    assert engine.last_error is None and engine.current is not None
    assert not engine.current.target_blind
    updates = serves(12)
    calls = counting(engine.current)
    many = engine.decide_many(BASE, updates)
    assert calls[0] == len(updates)
    assert many == one_by_one(root, updates)


def changed_engine(
    workspace: Callable[..., Path], tmp_path: Path
) -> tuple[Path, PolicyEngine, list[dict[str, Any]]]:
    """A daemon's engine that planned ``serves`` with a rule on tests/live_*, whose module now
    names tests/slow_* instead (not reloaded yet)."""
    root = workspace("", {"serve.rego": LIVE.format(prefix="live")})
    engine = PolicyEngine.open(root, memo_dir=tmp_path / "memo")
    engine.warm_on_install = True
    updates = serves(40)
    engine.decide_many(BASE, updates)
    engine.remember_serves(updates)
    (root / ".maestro/policy/serve.rego").write_text(LIVE.format(prefix="slow"))
    return root, engine, updates


def test_a_new_set_decides_the_recent_plans_serve_inputs_before_the_next_plan(
    workspace: Callable[..., Path], tmp_path: Path
) -> None:
    root, engine, updates = changed_engine(workspace, tmp_path)
    before = engine.decide_many(BASE, updates)
    policy = engine.reload()
    assert engine.wait_warm(60)
    assert engine.warmed is not None and engine.warmed.digest == policy.digest
    assert engine.warmed.decided == engine.warmed.asked == len(updates)
    calls = counting(policy)
    after = engine.decide_many(BASE, updates)
    assert calls[0] == 0  # the plan found every answer decided
    # the new policy's answers, not the old ones kept
    assert after == one_by_one(root, updates)
    assert after != before
    assert {r.rule for d in after for r in d.rules} >= {"cache.slow"}
    assert "cache.live" not in {r.rule for d in after for r in d.rules}
    # kept on disk for the next process (a CLI run reads them back)
    assert memo_path(tmp_path / "memo", policy.digest).is_file()
    reopened = PolicyEngine.open(root, memo_dir=tmp_path / "memo")
    assert reopened.current is not None
    calls = counting(reopened.current)
    assert reopened.decide_many(BASE, updates) == after
    assert calls[0] == 0


def test_a_restarted_engine_decides_the_kept_served_files_of_a_set_changed_meanwhile(
    workspace: Callable[..., Path], tmp_path: Path
) -> None:
    root, engine, updates = changed_engine(workspace, tmp_path)
    # the daemon stopped; the policy changed (changed_engine); a new daemon opens it
    restarted = PolicyEngine.open(root, memo_dir=tmp_path / "memo")
    policy = restarted.current
    assert policy is not None and policy.digest != engine.current.digest  # type: ignore[union-attr]
    restarted.warm_on_install = True
    restarted.start_warm()
    assert restarted.wait_warm(60)
    assert restarted.warmed is not None and restarted.warmed.decided == len(updates)
    calls = counting(policy)
    assert restarted.decide_many(BASE, updates) == one_by_one(root, updates)
    assert calls[0] == 0
    # a damaged file is ignored: nothing warmed, nothing wrong
    (tmp_path / "memo" / "serves.json").write_text("{not json")
    again = PolicyEngine.open(root, memo_dir=tmp_path / "other")
    again.memo_dir = tmp_path / "memo"
    again.warm_on_install = True
    again.start_warm()
    assert again.wait_warm(60) and again.warmed is None


def pause_warm_after(n: int, engine: PolicyEngine) -> tuple[threading.Event, threading.Event]:
    """Make the next warm-up stop after ``n`` evaluations until released: (paused, release)."""
    paused, release = threading.Event(), threading.Event()

    def hold(policy: PolicySet) -> None:
        evaluate = policy._evaluate
        done = [0]

        def held(point: Any, payload: dict[str, Any]) -> Decision:
            if threading.current_thread().name == "policy-warm":
                if done[0] == n:
                    paused.set()
                    assert release.wait(60)
                done[0] += 1
            return evaluate(point, payload)

        policy._evaluate = held  # type: ignore[method-assign]
        engine.listeners.remove(hold)

    engine.listeners.append(hold)
    return paused, release


def test_a_plan_during_the_warm_up_gets_the_new_sets_answers(
    workspace: Callable[..., Path], tmp_path: Path
) -> None:
    root, engine, updates = changed_engine(workspace, tmp_path)
    paused, release = pause_warm_after(5, engine)
    policy = engine.reload()
    assert paused.wait(60)  # the warm-up decided 5 and waits
    calls = counting(policy)
    try:
        during = engine.decide_many(BASE, updates)
    finally:
        release.set()
    assert calls[0] == len(updates) - 5  # what the warm-up decided is not evaluated again
    assert during == one_by_one(root, updates)
    assert engine.wait_warm(60)
    # nor what the plan decided by the warm-up (but the input it was evaluating when paused)
    assert calls[0] == len(updates) - 5 + 1
    assert engine.decide_many(BASE, updates) == during


def test_a_warm_up_stops_when_another_set_replaces_its_own(
    workspace: Callable[..., Path], tmp_path: Path
) -> None:
    root, engine, updates = changed_engine(workspace, tmp_path)
    paused, release = pause_warm_after(3, engine)
    first = engine.reload()
    assert paused.wait(60)
    (root / ".maestro/policy/serve.rego").write_text(LIVE.format(prefix="unit"))
    second = engine.reload()  # its own warm-up starts
    release.set()
    assert engine.wait_warm(60)
    assert engine.current is second and second.digest != first.digest
    assert engine.warmed is not None and engine.warmed.digest == second.digest
    calls = counting(second)
    after = engine.decide_many(BASE, updates)
    assert calls[0] == 0
    assert after == one_by_one(root, updates)
    assert "cache.unit" in {r.rule for d in after for r in d.rules}


def test_nothing_is_warmed_for_a_set_that_reads_the_execution_id(
    workspace: Callable[..., Path], tmp_path: Path
) -> None:
    root, engine, _ = changed_engine(workspace, tmp_path)
    reads = LIVE.format(prefix="slow").replace(
        'input.action == "serve"', 'input.action == "serve"\n\tinput.execution_id != ""'
    )
    (root / ".maestro/policy/serve.rego").write_text(reads)
    policy = engine.reload()
    assert not policy.blind
    assert engine.wait_warm(60)
    assert engine.warmed is None or engine.warmed.digest != policy.digest


RUNS = """from pathlib import Path

def test_{name}():
    runs = Path(__file__).parents[2] / "{name}.txt"  # outside the workspace: not an input
    runs.write_text(runs.read_text() + "x" if runs.exists() else "x")
"""

DAEMON_FILES = {
    "pyproject.toml": "[project]\nname = 'ws'\nversion = '0'\n",
    "tests/live_test.py": RUNS.format(name="live"),
    "tests/slow_test.py": RUNS.format(name="slow"),
    "tests/unit_test.py": "def test_unit():\n    assert True\n",
    ".maestro/policy/serve.rego": LIVE.format(prefix="live").replace('_"', '"'),
}


@pytest.fixture
def daemon_ws(monkeypatch: pytest.MonkeyPatch) -> Any:
    from workspace_procs import daemon_workspace

    with daemon_workspace(monkeypatch, DAEMON_FILES, "mpwm") as root:
        yield root


def test_a_daemon_decides_a_changed_policys_serve_inputs_before_the_next_run(
    daemon_ws: Path,
) -> None:
    import asyncio
    import time

    import orjson

    from maestro import wire
    from maestro.daemon.transport.client import DaemonClient
    from maestro.paths import workspace_state_dir
    from maestro.policy.markers import MEMO_DIR

    root = daemon_ws

    async def run(client: DaemonClient) -> wire.RunTestsResult:
        return await client.call(wire.RUN_TESTS, wire.RunTestsParams(), timeout=120)

    async def main() -> tuple[wire.RunTestsResult, str, wire.RunTestsResult]:
        client = await DaemonClient.connect(root, start=True)
        try:
            await run(client)
            second = await run(client)
            # the policy changes while the daemon is idle: no request tells it
            (root / ".maestro/policy/serve.rego").write_text(
                LIVE.format(prefix="slow").replace('_"', '"')
            )
            fresh = PolicyEngine.open(root)
            assert fresh.last_error is None and fresh.current is not None
            kept = memo_path(workspace_state_dir(root) / MEMO_DIR, fresh.current.digest)
            deadline = time.monotonic() + 60
            while not kept.is_file() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            text = kept.read_text() if kept.is_file() else ""
            third = await run(client)
            return second, text, third
        finally:
            await client.close()

    second, kept, third = asyncio.run(main())
    cached = {f.target: f.cached for f in second.files}
    assert cached == {"tests/live_test.py": False, "tests/slow_test.py": True,
                      "tests/unit_test.py": True}  # fmt: skip
    # decided by the new set in the background, before the third run asked
    assert kept, "the changed policy's serve decisions were not kept before the next run"
    entries = {
        orjson.loads(k[len("cache") :])["target"]: d for k, d in orjson.loads(kept)["entries"]
    }
    assert set(entries) == set(cached)
    assert [r["rule"] for r in entries["tests/slow_test.py"]["rules"]] == ["cache.slow"]
    assert entries["tests/live_test.py"]["result"] == "allow"
    cached = {f.target: f.cached for f in third.files}
    assert cached == {"tests/live_test.py": True, "tests/slow_test.py": False,
                      "tests/unit_test.py": True}  # fmt: skip
    assert (root.parent / "slow.txt").read_text() == "xx"  # the first run and the third
    assert any("cache.slow" in note for note in third.policy)


class _App:
    """What PolicyService uses of the daemon: its root and its broadcast."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def broadcast(self, event: str, payload: object = None) -> int:
        return 0


async def test_the_daemon_reloads_a_changed_policy_unasked_and_a_request_meanwhile_waits(
    workspace: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from maestro.daemon.services import policy as service_module

    monkeypatch.setattr(service_module, "SOURCES_POLL_S", 0.05)
    root = workspace("", {"serve.rego": LIVE.format(prefix="live")})
    service = service_module.PolicyService(_App(root))  # type: ignore[arg-type]
    await service.startup(None)  # type: ignore[arg-type]
    try:
        gate = await service.gate()
        assert gate is not None and gate.engine.warm_on_install
        old = gate.engine.current
        (root / ".maestro/policy/serve.rego").write_text(LIVE.format(prefix="slow"))
        expected = PolicyEngine.open(root).current
        assert expected is not None and old is not None and expected.digest != old.digest
        # the poll notices (no request): a reload starts; one asked meanwhile waits for it
        for _ in range(400):
            reloading = service._reloading
            if reloading is not None and not reloading.done():
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the changed policy was not reloaded")
        asked = await service.gate()
        assert asked is gate and gate.engine.current is not None
        assert gate.engine.current.digest == expected.digest
    finally:
        await service.stop(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "settings",
    [
        "",
        "[tool.maestro.policy]\nupload_ci_only = true\nno_cache_markers = ['slow', 'net']\n"
        "never_skip_markers = ['critical']\nquarantine = ['tests/']\n",
    ],
)
def test_an_unmarked_serve_decision_skips_only_built_in_rules_that_cannot_fire(
    workspace: Callable[..., Path], settings: str
) -> None:
    """The built-in cache rules fire for a marker or an upload only: an unmarked file's serve
    decision asked without them is the whole cache point's."""
    root = workspace(settings, {"serve.rego": LIVE.format(prefix="live")})
    engine = PolicyEngine.open(root)
    policy = engine.current
    assert engine.last_error is None and policy is not None and policy.unmarked
    calls: list[str] = []
    query = policy.compiled.query_raw

    def seen(key: str, value: Any) -> bytes:
        calls.append(key)
        return query(key, value)

    policy.compiled.query_raw = seen  # type: ignore[method-assign]
    for target in ("tests/live_a.py", "tests/unit_a.py", "", "tests/"):
        for ci in (False, True):
            for outcome in (None, "passed", "failed"):
                for action, markers in (
                    ("serve", []), ("serve", ["net"]), ("serve", ["other"]), ("store", []),
                    ("upload", []),
                ):  # fmt: skip
                    payload = CacheInput(
                        action=action, target=target, markers=markers, ci=ci, outcome=outcome
                    ).model_dump(mode="json")  # type: ignore[arg-type]
                    calls.clear()
                    fast = policy._evaluate("cache", payload)
                    policy.unmarked = False
                    try:
                        whole = policy._evaluate("cache", payload)
                    finally:
                        policy.unmarked = True
                    assert fast == whole, payload
                    unmarked = action == "serve" and not markers
                    assert calls == ["cache_unmarked" if unmarked else "cache", "cache"]
    (root / ".maestro/policy/serve.rego").unlink()
    no_rules = PolicyEngine.open(root).current
    assert no_rules is not None and not no_rules.unmarked  # nothing to skip to
