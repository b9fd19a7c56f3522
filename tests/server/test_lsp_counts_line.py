"""The editor's end of a run says its counts as pytest's own summary line does, in pytest's
order and words ("1 failed, 1 passed, 1 skipped, 1 xfailed, 1 warning"); it said
"1 passed, 1 failed, 1 skipped" (its own order, no xfailed, no warning)."""

from __future__ import annotations

import re
import subprocess
import textwrap

import pytest
from conftest import Env, notes, run_to_end, start_client, stop_client
from project_python import project_python

pytestmark = pytest.mark.slow

MIXED = """
    import warnings

    import pytest


    def test_fails():
        assert 1 == 2


    def test_passes():
        warnings.warn("deprecated thing", DeprecationWarning)


    @pytest.mark.skip(reason="not here")
    def test_skipped():
        pass


    @pytest.mark.xfail(reason="known")
    def test_xfails():
        assert False
    """


def pytest_counts(env: Env, target: str) -> str:
    """The counts of plain pytest's last line ("== 1 failed, 1 passed in 0.1s ==")."""
    out = subprocess.run(
        [str(project_python()), "-m", "pytest", "-p", "no:cacheprovider", target],
        cwd=env.root,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    last = out.strip().splitlines()[-1]
    found = re.match(r"=+ (.*) in [0-9.]+s.* =+$", last)
    assert found, out
    return found.group(1)


async def test_a_runs_end_says_its_counts_as_pytest_does(lsp_env: Env) -> None:
    env = lsp_env
    (env.root / "tests" / "test_mixed.py").write_text(textwrap.dedent(MIXED).lstrip())
    expected = pytest_counts(env, "tests/test_mixed.py")
    assert expected == "1 failed, 1 passed, 1 skipped, 1 xfailed, 1 warning"
    client = await start_client(env, "neovim")
    try:
        for ran in ("first", "again"):
            ended = await run_to_end(client, "maestro.runFile", env.uri("tests/test_mixed.py"))
            assert ended["counts"] == expected, (ran, ended)
            progress = [
                p["message"]
                for p in notes(client, "maestro/runProgress")
                if p["runId"] == ended["runId"]
            ]
            assert progress[-1].startswith(expected), (ran, progress[-1])
    finally:
        await stop_client(client)
