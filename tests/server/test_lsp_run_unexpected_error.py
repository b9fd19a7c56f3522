"""A run that meets an error Maestro did not foresee (a bug in the server, a daemon answer it
cannot take) still ends: the progress ends, ``maestro/runFinished`` says what went wrong and what
to do, the log has the traceback with secrets redacted, and the server serves the next run.
Real server and daemon; the failure is put into the server process before maestro is imported."""

from __future__ import annotations

import textwrap

import pytest
from conftest import Env, run_to_end, start_client, stop_client
from lsprotocol import types

pytestmark = pytest.mark.slow

SECRET = "s3cr3t-value-0123456789abcdef"

# Handling the first run's plan raises a TypeError quoting a secret; the next run is left alone.
# Only the server process patches itself (the variable is gone before it starts the daemon).
SITECUSTOMIZE = """
import os, sys
if os.environ.pop("MAESTRO_TEST_PLAN_FAULT", None):
    sys.stderr = open(os.environ["MAESTRO_TEST_SERVER_LOG"], "a", buffering=1)
    from maestro.server import runs
    _on_event = runs.RunManager._on_event
    _armed = [True]

    def _faulty(self, run, name, payload):
        if name == "run.plan" and _armed[0]:
            _armed[0] = False
            raise TypeError("cannot take this plan, token " + os.environ["MAESTRO_API_TOKEN"])
        return _on_event(self, run, name, payload)

    runs.RunManager._on_event = _faulty
"""


async def test_a_run_that_meets_an_unexpected_error_ends_and_says_so(lsp_env: Env) -> None:
    env = lsp_env
    site = env.base / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE))
    log = env.base / "server.log"
    env.env.update({
        "PYTHONPATH": str(site),
        "MAESTRO_TEST_PLAN_FAULT": "1",
        "MAESTRO_TEST_SERVER_LOG": str(log),
        "MAESTRO_API_TOKEN": SECRET,
    })  # fmt: skip
    client = await start_client(env, "visual_studio_code")
    try:
        broken = await run_to_end(
            client, "maestro.runFile", env.uri("tests/test_calc.py"), timeout=30
        )
        error = broken["error"]
        assert error["code"] == "internal_error"
        assert "TypeError" in error["message"] and "Maestro output" in error["message"]
        assert "run it again" in error["hint"]
        assert SECRET not in str(broken)
        # the progress bar ends with the same words
        (token,) = [t for t in client.progress_reports if broken["runId"] in str(t)]
        end = client.progress_reports[token][-1]
        assert isinstance(end, types.WorkDoneProgressEnd)
        assert end.message is not None and "TypeError" in end.message
        shown = [m.message for m in client.messages if m.type == types.MessageType.Error]
        assert any("TypeError" in m for m in shown), shown
        assert all(SECRET not in m for m in shown)
        # the log has the traceback, without the secret
        text = log.read_text()
        assert "Traceback" in text and "cannot take this plan" in text
        assert SECRET not in text
        # the server still serves: the same run again passes
        again = await run_to_end(client, "maestro.runFile", env.uri("tests/test_calc.py"))
        assert again["error"] is None and again["passed"] >= 1, again
    finally:
        await stop_client(client)
