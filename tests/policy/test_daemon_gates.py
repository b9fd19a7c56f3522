"""The policy at a real daemon's gates: a capped second run queues and says why, a forced test
joins the plan, a flaky test's result is not cached, decisions are served by execution id."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from workspace_procs import daemon_workspace

from maestro import wire
from maestro.daemon.transport.client import DaemonClient
from maestro.policy.model import DecisionRecord
from maestro.policy.protocol import POLICY_DECISIONS, PolicyDecisionsParams

CAP = """package maestro.workspace.run

import rego.v1

# METADATA
# custom:
#   id: caps.db_serial
#   remediation: tests/db share one database; wait for the running suite
queue contains {"rule": "caps.db_serial", "msg": "at most 1 concurrent run under tests/db"} if {
\tsome p in input.paths
\tstartswith(p, "tests/db/")
\tsome r in input.running
\tsome q in r.paths
\tstartswith(q, "tests/db/")
}
"""

SLOW = """import os, time
from pathlib import Path

def test_waits():
    release = Path(os.environ.get("RELEASE", "{release}"))
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
"""

FILES = {
    "pyproject.toml": (
        "[project]\nname = 'ws'\nversion = '0'\n\n"
        "[tool.maestro.policy.force_include.security]\n"
        'when = ["src/auth/"]\ninclude = ["tests/security/"]\n'
    ),
    "src/auth/__init__.py": "",
    "src/auth/tokens.py": "def token():\n    return 1\n",
    "tests/test_tokens.py": "from auth.tokens import token\n\ndef test_token():\n"
    "    assert token() == 1\n",
    "tests/security/test_login.py": "def test_login():\n    assert True\n",
    "tests/db/test_b.py": "def test_b():\n    assert True\n",
    "tests/test_flaky.py": "import pytest\n\n@pytest.mark.flaky\ndef test_f():\n    assert True\n",
    ".maestro/policy/caps.rego": CAP,
}


@pytest.fixture
def ws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    def files(base: Path) -> dict[str, str]:
        release = base / "release"
        return {**FILES, "tests/db/test_a.py": SLOW.replace("{release}", str(release))}

    with daemon_workspace(monkeypatch, files, "mpol") as root:
        yield root


async def _decisions(client: DaemonClient, **kw: str) -> list[DecisionRecord]:
    result = await client.call(POLICY_DECISIONS, PolicyDecisionsParams(**kw, limit=200))
    return list(result.decisions)


@pytest.mark.slow
def test_daemon_queues_a_capped_run_forces_a_test_and_does_not_cache_flaky(ws: Path) -> None:
    release = ws.parent / "release"

    async def main() -> None:
        a = await DaemonClient.connect(ws, start=True)
        b = await DaemonClient.connect(ws, start=False)
        try:
            first = asyncio.create_task(
                a.call(wire.RUN_TESTS, wire.RunTestsParams(paths=["tests/db/test_a.py"]),
                       timeout=120)
            )  # fmt: skip
            # the first run is admitted (and running) before the second asks
            for _ in range(400):
                found = await _decisions(a)
                if any(d.point == "run" and d.result == "allow" for d in found):
                    break
                await asyncio.sleep(0.05)
            second = asyncio.create_task(
                b.call(wire.RUN_TESTS, wire.RunTestsParams(paths=["tests/db/test_b.py"]),
                       timeout=120)
            )  # fmt: skip
            queued: list[DecisionRecord] = []
            for _ in range(400):
                queued = [d for d in await _decisions(a) if d.result == "queue"]
                if queued:
                    break
                await asyncio.sleep(0.05)
            assert queued, "the second run was not queued"
            await asyncio.sleep(0.5)
            release.write_text("go")
            r1, r2 = await asyncio.gather(first, second)
            assert (r1.exit_code, r2.exit_code) == (0, 0)
            found = await _decisions(a, execution_id=queued[0].execution_id)
            queue = [d for d in found if d.result == "queue"]
            assert queue and queue[0].waited_ms is not None and queue[0].waited_ms >= 400
            summary = queue[0].summary
            assert "queued" in summary and "(rule caps.db_serial)" in summary
            assert "remediation: tests/db share one database" in summary

            # force-include: tests/security runs when src/auth changes, though nothing imports it
            await a.call(wire.RUN_TESTS, wire.RunTestsParams(), timeout=120)
            (ws / "src/auth/tokens.py").write_text("def token():\n    return 1  # edited\n")
            await asyncio.sleep(0.5)
            run = await a.call(
                wire.RUN_TESTS, wire.RunTestsParams(paths=["tests/test_tokens.py"]), timeout=120
            )
            assert sorted(f.target for f in run.files) == [
                "tests/security/test_login.py", "tests/test_tokens.py",
            ]  # fmt: skip

            # flaky: never served from the cache
            again = await a.call(
                wire.RUN_TESTS, wire.RunTestsParams(paths=["tests/test_flaky.py"]), timeout=120
            )
            assert [f.cached for f in again.files] == [False]
            about = await _decisions(a, test="tests/test_flaky.py")
            denied = [d for d in about if d.point == "cache"]
            assert denied and denied[0].rules[0].rule == "cache.no_cache_marker"
        finally:
            release.write_text("go")
            await a.close()
            await b.close()

    asyncio.run(main())
