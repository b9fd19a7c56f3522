"""A directory that workspace code lists is an input (``dir:<path>``): through a warm daemon,
whose watcher has already folded a new or removed file into the graph, `impacted` still names
the tests that listed its directory. Real daemon, real watcher, real pytest, real LMDB."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from conftest import DaemonEnv, started, targets
from project_python import project_python

from maestro import wire
from maestro.daemon.transport.client import DaemonClient, SyncDaemonClient

PYPROJECT = f"""\
[project]
name = "ws"

[tool.maestro]
interpreter = "{project_python()}"

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

CONFTEST = """\
import os

DATA = os.path.join(os.path.dirname(__file__), "..", "data")


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", sorted(os.listdir(os.path.join(DATA, "cases"))))
"""

FILES = {
    "pyproject.toml": PYPROJECT,
    "tests/conftest.py": CONFTEST,
    "tests/test_cases.py": "def test_case(case):\n    assert case.endswith('.txt')\n",
    "tests/test_other.py": "def test_other():\n    assert True\n",
    "data/cases/a.txt": "a",
    "data/cases/b.txt": "b",
    "data/notes.txt": "not listed",
}


async def graph_knows(client: DaemonClient, rel: str) -> None:
    """Wait until the watcher has folded `rel`'s change into the daemon's graph: `rel` or a
    directory it is in was reported (a file written into a new directory right away may be
    reported as the directory alone)."""
    deadline = time.monotonic() + 30
    seen: list[object] = []
    while time.monotonic() < deadline:
        try:
            event = await client.next_event(timeout=max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            break
        if event.event == "graph_changed" and any(
            rel == path or rel.startswith(path + "/") for path in event.payload["paths"]
        ):
            return
        seen.append(event.payload)
    pytest.fail(f"the daemon's watcher never reported {rel}; it reported {seen}")


async def impacted(client: DaemonClient, rel: str) -> list[str]:
    return targets(await client.call(wire.IMPACTED, wire.ImpactedParams(paths=[rel])))


def test_a_name_added_or_removed_impacts_the_listers_once_the_graph_knows_it(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = daemon_env
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(env.base / "cache"))
    env.write_old(FILES)
    started(env)
    with SyncDaemonClient(env.root, start=False) as sync:
        first = sync.stream(
            wire.RUN_TESTS, wire.RunTestsParams(env=dict(os.environ)), lambda e: None, timeout=120
        )
        assert first.exit_code == 0 and first.passed == 3
    # the conftest's listing counts for every test using the conftest, as its reads do
    listers = ["tests/test_cases.py", "tests/test_other.py"]

    async def main() -> None:
        client = await DaemonClient.connect(env.root, start=False)
        try:
            await client.subscribe(["graph_changed"])
            new = env.root / "data/cases/c.txt"
            new.write_text("c")
            await graph_knows(client, "data/cases/c.txt")
            assert await impacted(client, "data/cases/c.txt") == listers
            assert await impacted(client, "data/notes.txt") == []  # no name came or went
            # a new directory inside the listed one is a name too
            (env.root / "data/cases/more").mkdir()
            (env.root / "data/cases/more/d.txt").write_text("d")
            await graph_knows(client, "data/cases/more/d.txt")
            assert await impacted(client, "data/cases/more/d.txt") == listers
            # a name removed since the run
            (env.root / "data/cases/a.txt").unlink()
            await graph_knows(client, "data/cases/a.txt")
            assert await impacted(client, "data/cases/a.txt") == listers
        finally:
            await client.close()

    asyncio.run(main())


def test_once_the_listers_ran_again_the_new_name_is_no_change(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The names a conftest's listing saw are renewed by every run that imports it, not only
    by one that finds it reading something new: otherwise the first name added would impact
    its listers for ever."""
    env = daemon_env
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(env.base / "cache"))
    env.write_old(FILES)
    started(env)
    params = wire.RunTestsParams(env=dict(os.environ))
    with SyncDaemonClient(env.root, start=False) as sync:
        assert sync.stream(wire.RUN_TESTS, params, lambda e: None, timeout=120).passed == 3
        (env.root / "data/cases/c.txt").write_text("c")
        again = sync.stream(wire.RUN_TESTS, params, lambda e: None, timeout=120)
        assert again.passed == 4 and again.ran_files == 2
        paths = wire.ImpactedParams(paths=["data/cases/c.txt"])
        assert targets(sync.call(wire.IMPACTED, paths)) == []
        (env.root / "data/cases/b.txt").unlink()
        assert targets(sync.call(wire.IMPACTED, paths)) == []
        gone = wire.ImpactedParams(paths=["data/cases/b.txt"])
        assert targets(sync.call(wire.IMPACTED, gone)) == [
            "tests/test_cases.py",
            "tests/test_other.py",
        ]
