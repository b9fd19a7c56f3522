"""What `maestro test` prints under a run reaches the editor too: a test file read a variable
the user's environment sets and Maestro did not pass to pytest (so it ran again with it, and
every other test file runs once more at the next run: the user is told why), and a failure of a
file run in part that its whole file confirmed."""

from __future__ import annotations

import pytest
from conftest import Env, run_to_end, start_client, stop_client
from lsprotocol import types
from workspace_procs import commit_all, write_files

pytestmark = pytest.mark.slow

FILES = {
    "tests/test_reads_env.py": """
        import os


        def test_reads_a_variable():
            # a name the code does not spell out (the library reading it does, as ssl reads
            # SSL_CERT_FILE): only the run sees the read
            assert os.environ.get("_".join(["MC", "TRIAL", "SETTING"])) == "on"
        """,
}


async def test_a_variable_pytest_did_not_get_is_told(lsp_env: Env) -> None:
    env = lsp_env
    write_files(env.root, FILES)
    commit_all(env.root, "a test reading a variable of the user's environment")
    env.env["MC_TRIAL_SETTING"] = "on"
    client = await start_client(env, "visual_studio_code")
    try:
        ended = await run_to_end(client, "maestro.runFile", env.uri("tests/test_reads_env.py"))
        assert ended["passed"] == 1, ended
        shown = [m.message for m in client.messages if m.type == types.MessageType.Info]
        assert any(
            "tests/test_reads_env.py read MC_TRIAL_SETTING" in m
            and "Maestro did not pass to pytest" in m
            for m in shown
        ), shown
        assert any("will be passed to pytest and keyed from now on" in m for m in shown), shown
    finally:
        await stop_client(client)
