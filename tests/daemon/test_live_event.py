"""What a run's ``run.progress`` events carry to a client (the editor, the CLI): a failed test's
whole report as pytest printed it and its message, redacted as its stored result is; no captured
output, no report of a test that did not fail, a collection error's report redacted too, and a
parameter id holding a secret as its stored result names it, from collection to result."""

from __future__ import annotations

import json

from maestro.daemon.services.tests import LiveEvents
from maestro.engine.events import Event
from maestro.engine.events import parse_event as parse_line
from maestro.redaction import Redactor

KNOWN = "opal-harbor-lantern-77"
GITHUB = "ghp_" + "Lq8" * 12
REPORT = (
    "def test_token():\n"
    f'        token = "{GITHUB}"\n'
    f'>       assert token == "{KNOWN}"\n'
    "E       AssertionError: assert 'ghp_Lq8Lq8Lq...8Lq8Lq8Lq8Lq8' == "
    f"'{KNOWN}'\n"
    "E         \n"
    f"E         - {KNOWN}\n"
    "\n"
    "tests/test_report.py:8: AssertionError"
)


def parse_event(fields: dict[str, object]) -> Event | None:
    return parse_line(json.dumps(fields))


def result(outcome: str, **more: object) -> dict[str, object]:
    return {
        "v": 1, "event": "test_result", "nodeid": "tests/test_report.py::test_token",
        "outcome": outcome, "duration_s": 0.01, "stdout": f"printed {KNOWN}\n", **more,
    }  # fmt: skip


def test_a_failed_test_s_report_is_carried_redacted() -> None:
    redactor = Redactor.from_environ({"DEPLOY_TOKEN": KNOWN})
    event = parse_event(
        result(
            "failed",
            message=f"AssertionError: assert 'x' == '{KNOWN}'",
            longrepr=REPORT,
            each=[result("failed", longrepr=REPORT)],
        )
    )
    assert event is not None
    data = LiveEvents(redactor).dump(event)
    assert KNOWN not in str(data) and GITHUB not in str(data), data
    assert data["longrepr"].startswith(
        'def test_token():\n        token = "[REDACTED:github-token:'
    )
    assert "E         - [REDACTED:env-deploy-token:" in data["longrepr"]
    assert data["message"].endswith("== '[REDACTED:env-deploy-token:fab6]'")
    assert "stdout" not in data and "stderr" not in data and "each" not in data


def test_only_a_failure_s_report_is_carried() -> None:
    redactor = Redactor.from_environ({})
    for outcome in ("passed", "skipped", "xfailed"):
        event = parse_event(result(outcome, longrepr="kept by the plugin"))
        assert event is not None
        assert "longrepr" not in LiveEvents(redactor).dump(event), outcome
    event = parse_event(result("error", longrepr="E   fixture 'db' not found"))
    assert event is not None
    assert LiveEvents(redactor).dump(event)["longrepr"] == "E   fixture 'db' not found"


def test_a_collection_error_s_report_is_redacted() -> None:
    redactor = Redactor.from_environ({"DEPLOY_TOKEN": KNOWN})
    error = {
        "path": "tests/test_a.py",
        "message": f"ImportError: {KNOWN}",
        "longrepr": f"ImportError while importing test module\n{KNOWN}",
    }
    event = parse_event({"v": 1, "event": "collected", "files": {}, "errors": [error]})
    assert event is not None
    data = LiveEvents(redactor).dump(event)
    assert KNOWN not in str(data)
    assert data["errors"][0]["longrepr"].startswith("ImportError while importing test module\n")


def test_a_secret_in_a_parameter_id_is_the_stored_id_throughout() -> None:
    live = LiveEvents(Redactor.from_environ({"DEPLOY_TOKEN": KNOWN}))
    secret_id = f"tests/test_a.py::test_word[{KNOWN}]"
    plain_id = "tests/test_a.py::test_plain"
    files = {"tests/test_a.py": [secret_id, plain_id]}
    collected = parse_event({"v": 1, "event": "collected", "files": files})
    started = parse_event({"v": 1, "event": "test_start", "nodeid": secret_id})
    finished = parse_event(result("failed") | {"nodeid": secret_id})
    assert collected is not None and started is not None and finished is not None
    stored = "tests/test_a.py::test_word[[REDACTED:env-deploy-token:fab6]]"
    assert live.dump(collected)["files"] == {"tests/test_a.py": [stored, plain_id]}
    assert live.dump(started)["nodeid"] == stored
    assert live.dump(finished)["nodeid"] == stored
    # a result reported while collecting (not among the collected items) is redacted alone
    alone = parse_event(result("skipped") | {"nodeid": f"tests/test_b.py::t[{KNOWN}]"})
    assert alone is not None
    assert KNOWN not in live.dump(alone)["nodeid"]


def test_what_tests_executed_and_read_stays_in_the_daemon() -> None:
    """A test's record (its functions: most of a run's events, 1.2 MB of 1.6 MB on click) and
    the session's end are the daemon's bookkeeping: no client shows them, and they name tests
    by their raw ids (a parameter id holding a secret in clear)."""
    live = LiveEvents(Redactor.from_environ({"DEPLOY_TOKEN": KNOWN}))
    raw = f"tests/test_a.py::test_word[{KNOWN}]"
    trace = parse_event(
        {"v": 1, "event": "test_trace", "nodeid": raw, "functions": {"pkg/a.py": ["f"]}}
    )
    end = parse_event({"v": 1, "event": "session_end", "exitstatus": 0, "duration_s": 0.1})
    assert trace is not None and end is not None
    assert live.dump(trace) is None and live.dump(end) is None
