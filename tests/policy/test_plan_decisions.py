"""What planning pays for policy: a plan's cache ``serve`` decisions are asked in one call
(``PolicyEngine.decide_many``) with the same answers as one ``decide`` each, and a new process
with the same policy set reads them back from the workspace's state instead of evaluating
every test file again (policy/memo.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_decision_cost import counting
from test_isolate import CRASH

from maestro.policy import CacheInput, PolicyEngine, RunInput
from maestro.policy.markers import MarkerScanner
from maestro.policy.memo import memo_path

SERVE = """package maestro.workspace.cache

import rego.v1

# METADATA
# custom:
#   id: cache.live
#   remediation: live tests always run
deny contains {"rule": "cache.live", "target": input.target, "msg": "live"} if {
\tinput.action == "serve"
\tstartswith(input.target, "tests/live_")
}
"""

WINDOW = """
[tool.maestro.policy.windows.nightly]
tz = "UTC"
start = "19:00"
end = "07:00"
"""

CONFLICT = """package maestro.workspace.cache

import rego.v1

pick := "a" if startswith(input.target, "tests/bad")

pick := "b" if startswith(input.target, "tests/bad")

deny contains {"rule": "conflict", "msg": pick} if pick
"""


def asks(n: int) -> list[dict[str, Any]]:
    return [
        {"target": f"tests/{'live' if i % 3 == 0 else 'unit'}_{i}.py",
         "markers": ["flaky"] if i % 5 == 0 else [], "outcome": "passed"}
        for i in range(n)
    ]  # fmt: skip


def test_decide_many_answers_as_decide_does_and_shares_its_memo(
    workspace: Callable[..., Path],
) -> None:
    engine = PolicyEngine.open(workspace("", {"serve.rego": SERVE}))
    assert engine.last_error is None and engine.current is not None
    base = CacheInput(execution_id="e1", action="serve", target="x")
    updates = asks(12)
    calls = counting(engine.current)
    many = engine.decide_many(base, updates)
    assert calls[0] == 12
    one = [engine.decide(base.model_copy(update=u)) for u in updates]
    assert calls[0] == 12  # the same inputs: the memo answers decide too
    assert many == one
    assert {d.result for d in many} == {"allow", "deny"}
    plain = [d for d in many if d.result == "allow" and not d.rules]
    assert len(plain) > 1 and all(d is plain[0] for d in plain)  # one object in the memo
    assert [r.rule for r in many[0].rules] == ["cache.live", "cache.no_cache_marker"]
    # another execution id asks the same (no module reads it): answered, not evaluated
    engine.decide_many(base.model_copy(update={"execution_id": "e2"}), updates)
    assert calls[0] == 12


def test_decide_many_resolves_each_inputs_clock(workspace: Callable[..., Path]) -> None:
    engine = PolicyEngine.open(workspace(WINDOW))
    from datetime import UTC, datetime

    from maestro.policy.sources import workspace_config
    from maestro.policy.windows import window_states

    root = engine.root
    assert root is not None
    noon = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    base = RunInput(
        kind="background", now_ms=int(noon.timestamp() * 1000),
        windows=window_states(workspace_config(root), noon),
    )  # fmt: skip
    later = [{"now_ms": base.now_ms + i * 60_000} for i in range(3)]
    many = engine.decide_many(base, later)
    one = [engine.decide(base.model_copy(update=u)) for u in later]
    assert many == one
    assert [d.retry_after_ms for d in many] == [
        7 * 3600_000, 7 * 3600_000 - 60_000, 7 * 3600_000 - 120_000
    ]  # fmt: skip


def test_decide_many_applies_the_fail_mode_per_input(workspace: Callable[..., Path]) -> None:
    """An evaluation error (two values for one complete rule) for one input gets the point's
    fail mode; the others are decided."""
    engine = PolicyEngine.open(workspace("", {"conflict.rego": CONFLICT}))
    assert engine.last_error is None
    targets = [{"target": "tests/a.py"}, {"target": "tests/bad.py"}, {"target": "tests/b.py"}]
    base = CacheInput(action="serve", target="x")
    serve = engine.decide_many(base, targets)
    assert [d.result for d in serve] == ["allow", "allow", "allow"]  # local serving fails open
    assert [bool(d.error) for d in serve] == [False, True, False]
    assert [r.rule for r in serve[1].rules] == ["policy.error"]
    upload = engine.decide_many(CacheInput(action="upload", target="x"), targets)
    assert [d.result for d in upload] == ["allow", "deny", "allow"]  # uploads fail closed
    with pytest.raises(Exception, match="not fields of CacheInput"):
        engine.decide_many(base, [{"nope": 1}])


def test_a_new_process_with_the_same_policy_reads_the_plans_decisions_back(
    workspace: Callable[..., Path], tmp_path: Path
) -> None:
    root = workspace("[tool.maestro.policy]\nupload_ci_only = true\n", {"serve.rego": SERVE})
    memo = tmp_path / "memo"
    first = PolicyEngine.open(root, memo_dir=memo)
    base = CacheInput(execution_id="e", action="serve", target="x")
    updates = asks(30)
    decided = first.decide_many(base, updates)
    first.decide(CacheInput(action="upload", target="tests/unit_1.py"))  # not kept
    first.save_memo()
    assert first.current is not None
    assert memo_path(memo, first.current.digest).is_file()

    again = PolicyEngine.open(root, memo_dir=memo)  # the next CLI run, a restarted daemon
    assert again.current is not None and again.current.digest == first.current.digest
    calls = counting(again.current)
    assert again.decide_many(base, updates) == decided
    assert calls[0] == 0
    again.decide(CacheInput(action="upload", target="tests/unit_1.py"))
    assert calls[0] == 1  # only serve decisions are kept: an upload is decided live

    # another policy (another digest) reads nothing of it
    (root / ".maestro/policy/serve.rego").write_text(SERVE.replace("live_", "slow_"))
    other = PolicyEngine.open(root, memo_dir=memo)
    assert other.current is not None and other.current.digest != first.current.digest
    calls = counting(other.current)
    denied = [d for d in other.decide_many(base, updates) if d.result == "deny"]
    assert calls[0] == 30
    assert all(r.rule != "cache.live" for d in denied for r in d.rules)


def test_a_damaged_or_foreign_memo_is_ignored(
    workspace: Callable[..., Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = workspace("", {"serve.rego": SERVE})
    memo = tmp_path / "memo"
    first = PolicyEngine.open(root, memo_dir=memo)
    base = CacheInput(action="serve", target="x")
    first.decide_many(base, asks(4))
    first.save_memo()
    assert first.current is not None
    path = memo_path(memo, first.current.digest)

    import orjson

    held = orjson.loads(path.read_bytes())
    path.write_bytes(orjson.dumps({**held, "versions": ["0.0.0", "0"]}))  # another Maestro
    again = PolicyEngine.open(root, memo_dir=memo)
    assert again.current is not None
    calls = counting(again.current)
    again.decide_many(base, asks(4))
    assert calls[0] == 4

    path.write_bytes(b"{not json")
    with caplog.at_level(logging.WARNING, logger="maestro.policy.memo"):
        damaged = PolicyEngine.open(root, memo_dir=memo)
    assert "not read" in caplog.text
    assert damaged.current is not None
    calls = counting(damaged.current)
    assert [d.result for d in damaged.decide_many(base, asks(4))] == [
        "deny", "allow", "allow", "deny"
    ]  # fmt: skip
    assert calls[0] == 4


def test_markers_are_read_again_when_the_files_digest_changes(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    path = tmp_path / "tests/test_a.py"
    path.write_text("import pytest\n\n@pytest.mark.flaky\ndef test_a():\n    pass\n")
    scanner = MarkerScanner(tmp_path)
    assert scanner.found("tests/test_a.py", "d1") == ("flaky",)
    path.write_text("def test_a():\n    pass\n")
    assert scanner.found("tests/test_a.py", "d1") == ("flaky",)  # the plan said: unchanged
    assert scanner.found("tests/test_a.py", "d2") == ()
    assert scanner.markers("tests/test_a.py") == []  # by modification time: read again


def test_marker_scans_by_digest_are_kept_for_the_next_process(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    path = tmp_path / "tests/test_a.py"
    path.write_text("import pytest\n\n@pytest.mark.critical\ndef test_a():\n    pass\n")
    kept = tmp_path / "state/policy-memo/markers.json"
    first = MarkerScanner(tmp_path)
    first.keep_in(kept)
    assert first.found("tests/test_a.py", "d1") == ("critical",)
    first.save()
    path.unlink()  # the next process does not read the file for a digest it was given
    again = MarkerScanner(tmp_path)
    again.keep_in(kept)
    assert again.found("tests/test_a.py", "d1") == ("critical",)
    assert again.found("tests/test_a.py", "d2") == ()  # another content: read (now gone)
    kept.write_text("[not a map")
    damaged = MarkerScanner(tmp_path)
    damaged.keep_in(kept)  # logged, and files are read
    assert damaged.found("tests/test_a.py", "d1") == ()


def test_old_memo_files_are_pruned_and_the_marker_scans_stay(
    workspace: Callable[..., Path], tmp_path: Path
) -> None:
    from maestro.policy import memo

    root = workspace("", {"serve.rego": SERVE})
    folder = tmp_path / "memo"
    folder.mkdir()
    (folder / "markers.json").write_text("{}")
    engine = PolicyEngine.open(root, memo_dir=folder)
    base = CacheInput(action="serve", target="x")
    for i in range(memo.KEPT_FILES + 2):
        (root / ".maestro/policy/serve.rego").write_text(SERVE.replace("live_", f"live{i}_"))
        engine.reload()
        engine.decide_many(base, asks(2))
        engine.save_memo()
    names = sorted(p.name for p in folder.iterdir())
    assert "markers.json" in names and len(names) == memo.KEPT_FILES + 1


def test_a_set_a_child_compiled_is_not_checked_again_by_the_next_process(
    workspace: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's cache gates and a restarted daemon open the policy isolated: a set checked
    before (same sources, same versions) spares the child interpreter; a crashing one is
    never kept."""
    from maestro.errors import PolicyError
    from maestro.policy import isolate
    from maestro.policy.engine import CHECKED_FILE
    from maestro.policy.sources import load

    runs: list[int] = []
    real = isolate.ChildCompiler._run

    def counted(self: isolate.ChildCompiler, body: bytes) -> str | None:
        runs.append(1)
        return real(self, body)

    monkeypatch.setattr(isolate.ChildCompiler, "_run", counted)
    root = workspace("", {"serve.rego": SERVE})
    memo = tmp_path / "memo"
    PolicyEngine.open(root, isolate=True, memo_dir=memo)
    assert len(runs) == 1 and (memo / CHECKED_FILE).is_file()
    again = PolicyEngine.open(root, isolate=True, memo_dir=memo)
    assert len(runs) == 1 and again.last_error is None
    isolate.ChildCompiler(kept=memo / CHECKED_FILE).check(load(root))
    assert len(runs) == 1

    # another Maestro or rego-cpp version checks again
    monkeypatch.setattr(isolate, "versions", lambda: ["0.0.0", "0"])
    isolate.ChildCompiler(kept=memo / CHECKED_FILE).check(load(root))
    assert len(runs) == 2
    monkeypatch.undo()

    (root / ".maestro/policy/crash.rego").write_text(CRASH)
    for _ in range(2):
        with pytest.raises(PolicyError, match="rego-cpp crashed"):
            isolate.ChildCompiler(kept=memo / CHECKED_FILE).check(load(root))
