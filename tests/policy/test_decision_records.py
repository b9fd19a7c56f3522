"""Decision records off the caller's path: a record is redacted in one scan (the same result as
one scan per string) and a long-lived process's log is written by a background writer that a
read waits for, bounded, and drained by close."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from maestro.policy import CacheInput, PolicyEngine, RunInput
from maestro.policy.gate import PolicyGate, redact_strings, redact_value
from maestro.policy.records import DecisionLog
from maestro.redaction import Redactor

SECRET = "hunter2-very-secret-value"
GITHUB = "ghp_" + "a1B2c3D4" * 5
AWS = "AKIA" + "Q" * 16


def per_string(value: Any, redactor: Redactor) -> Any:
    """The reference: every string (keys too) redacted on its own."""
    if isinstance(value, str):
        return str(redactor.redact(value))
    if isinstance(value, list):
        return [per_string(v, redactor) for v in value]
    if isinstance(value, dict):
        return {str(redactor.redact(k)): per_string(v, redactor) for k, v in value.items()}
    return value


@pytest.fixture
def redactor() -> Redactor:
    r = Redactor(detectors=True)
    r.add_known(SECRET, kind="test")
    r.add_known("ab\ncd", kind="multiline")  # a known value holding a newline
    return r


@pytest.mark.parametrize(
    "value",
    [
        {"target": f"tests/t.py?{SECRET}", "paths": ["a", f"b/{GITHUB}/c"], "n": 3, "x": None},
        {"env": [f"AWS_ACCESS_KEY_ID={AWS}", "Authorization: Bearer abcdefgh12345678"]},
        {f"key-{SECRET}": {"nested": [True, 1.5, "plain"]}},
        {"a": "xx ab", "b": "cd yy"},  # the known value only across the join: not redacted
        {"a": "line one\nline two " + SECRET, "b": "plain"},  # a newline: scanned one by one
        {"password": "=", "value": "'s3cr3t-passw0rd'"},
        [],
        {},
    ],
)
def test_one_scan_redacts_as_one_scan_per_string(value: Any, redactor: Redactor) -> None:
    assert redact_value(value, redactor) == per_string(value, redactor)


def test_redact_strings_keeps_the_list_when_nothing_is_secret(redactor: Redactor) -> None:
    plain = ["tests/a.py", "background", "Europe/Berlin"]
    assert redact_strings(plain, redactor) is plain
    assert redact_strings([f"x{SECRET}", "y"], redactor)[0].startswith("x[REDACTED:test:")


def test_a_record_redacts_input_rule_messages_targets_and_paths(
    workspace: Callable[..., Path], tmp_path: Path, redactor: Redactor
) -> None:
    root = workspace("[tool.maestro.policy]\nupload_ci_only = true\n")
    gate = PolicyGate(PolicyEngine.open(root), None, redactor)
    inp = CacheInput(execution_id="e", action="upload", target=f"tests/t.py?{SECRET}")
    decision = gate.engine.decide(inp)
    fired = decision.rules[0].model_copy(
        update={"message": f"no upload of {SECRET}", "target": f"tests/{GITHUB}.py"}
    )
    decision = decision.model_copy(update={"rules": [fired]})
    record = gate.record(inp, decision, targets=[f"tests/{SECRET}.py", "tests/a.py", "tests/a.py"])
    text = record.model_dump_json()
    assert SECRET not in text and GITHUB not in text
    assert record.rules[0].message.startswith("no upload of [REDACTED:test:")
    assert record.rules[0].target is not None and "[REDACTED:" in record.rules[0].target
    assert "tests/a.py" in record.targets and len(record.targets) == 2
    assert record.input["action"] == "upload" and record.rules[0].rule == "cache.ci_only_upload"


def test_background_log_reads_its_own_writes_and_close_drains(
    workspace: Callable[..., Path], tmp_path: Path
) -> None:
    root = workspace("[tool.maestro.policy.caps.db_serial]\npath = 'tests/db'\nmax = 1\n")
    path = tmp_path / "log" / "d.sqlite"
    log = DecisionLog(path, max_records=50, background=True)
    gate = PolicyGate(PolicyEngine.open(root), log)

    read_back: dict[str, list[str]] = {}

    def decide(tag: str) -> None:
        for i in range(15):  # 45 in all: none is trimmed before it is read back
            gate.decide(
                RunInput(execution_id=f"{tag}{i}", paths=[f"tests/db/{tag}{i}.py"], now_ms=1)
            )
        read_back[tag] = [r.execution_id for r in gate.decisions(execution_id=f"{tag}14")]

    threads = [threading.Thread(target=decide, args=(t,)) for t in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert read_back == {t: [f"{t}14"] for t in "abc"}
    assert log.count() == 45
    for i in range(30):
        gate.decide(RunInput(execution_id=f"z{i}", paths=["tests/db/z.py"], now_ms=1))
    gate.close()  # drains the queue before closing
    with sqlite3.connect(path) as db:
        ids = {row[0] for row in db.execute("select execution_id from decisions")}
    assert {f"z{i}" for i in range(30)} <= ids and len(ids) == 50  # the newest 50 of 75


def test_a_full_queue_makes_the_caller_wait_not_drop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workspace: Callable[..., Path]
) -> None:
    import maestro.policy.records as records

    monkeypatch.setattr(records, "MAX_PENDING", 2)
    log = DecisionLog(tmp_path / "d.sqlite", background=True)
    gate = PolicyGate(PolicyEngine.open(workspace()), log)
    for i in range(200):
        gate.decide(RunInput(execution_id=f"e{i}", now_ms=1))
    assert log.count() == 200
    gate.close()


def test_for_workspace_writes_in_the_background_when_isolated(
    workspace: Callable[..., Path],
) -> None:
    root = workspace()
    quick = PolicyGate.for_workspace(root)
    assert quick.log is not None and quick.log._pending is None
    quick.close()
    daemon = PolicyGate.for_workspace(root, isolate=True)
    assert daemon.log is not None and daemon.log._pending is not None
    daemon.close()


def test_an_idle_writer_ends_and_the_next_record_starts_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workspace: Callable[..., Path]
) -> None:
    import time

    import maestro.policy.records as records

    monkeypatch.setattr(records, "WRITER_IDLE_S", 0.05)
    log = DecisionLog(tmp_path / "d.sqlite", background=True)
    gate = PolicyGate(PolicyEngine.open(workspace()), log)
    gate.decide(RunInput(execution_id="first", now_ms=1))
    deadline = time.monotonic() + 10
    while log._writer is not None:  # a log per coordinator tenant must not keep a thread each
        assert time.monotonic() < deadline, "the idle writer did not end"
        time.sleep(0.02)
    gate.decide(RunInput(execution_id="second", now_ms=1))
    assert [r.execution_id for r in gate.decisions(execution_id="second")] == ["second"]
    gate.close()
