"""The daemon serving a real workspace: graph queries, the watcher, warm restart, test runs, CLI.

Every test runs a real detached daemon (daemon_env fixture: private state dir under /tmp, every
daemon killed afterwards) on a small workspace written here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import DaemonEnv, started, targets
from project_python import project_python

from maestro import wire
from maestro.daemon.lifecycle import stop_daemon
from maestro.daemon.transport.client import DaemonClient, SyncDaemonClient
from maestro.errors import InvalidParamsError, RequestCancelledError

T = TypeVar("T")
MAESTRO = str(Path(sys.executable).with_name("maestro"))

PYPROJECT = f"""\
[project]
name = "ws"

[tool.maestro]
interpreter = "{project_python()}"
env-allowlist = ["SLOW_*"]

[tool.pytest.ini_options]
testpaths = ["tests"]

[tool.ruff]
line-length = 100
"""

FILES = {
    "pyproject.toml": PYPROJECT,
    "src/pkg/__init__.py": "",
    "src/pkg/core.py": "def one():\n    return 1\n",
    "src/pkg/extra.py": "def two():\n    return 2\n",
    "src/pkg/api.py": "from pkg.core import one\n\ndef api():\n    return one()\n",
    "tests/conftest.py": (
        "import os, sys\nsys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'src'))\n"
    ),
    "tests/test_core.py": "from pkg.core import one\n\ndef test_one():\n    assert one() == 1\n",
    "tests/test_api.py": "from pkg.api import api\n\ndef test_api():\n    assert api() == 1\n",
    "tests/test_extra.py": "from pkg.extra import two\n\ndef test_two():\n    assert two() == 2\n",
}


def run(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


@pytest.fixture
def ws(daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch) -> DaemonEnv:
    """The workspace files, older than any index (so a restart may trust their stat)."""
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(daemon_env.base / "cache"))
    daemon_env.write_old(FILES)
    return daemon_env


def impacted_paths(client: SyncDaemonClient, *paths: str) -> list[str]:
    return targets(client.call(wire.IMPACTED, wire.ImpactedParams(paths=list(paths))))


def test_two_clients_at_once(ws: DaemonEnv) -> None:
    started(ws)

    async def main() -> None:
        a = await DaemonClient.connect(ws.root, start=False)
        b = await DaemonClient.connect(ws.root, start=False)
        try:
            core = wire.ImpactedParams(paths=["src/pkg/core.py"])
            extra = wire.ImpactedParams(paths=["src/pkg/extra.py"])
            results = await asyncio.gather(
                *(a.call(wire.IMPACTED, core) for _ in range(20)),
                *(b.call(wire.IMPACTED, extra) for _ in range(20)),
            )
        finally:
            await a.close()
            await b.close()
        assert all(targets(r) == ["tests/test_api.py", "tests/test_core.py"] for r in results[:20])
        assert all(targets(r) == ["tests/test_extra.py"] for r in results[20:])

    run(main())


def test_file_edited_on_disk_shows_up_in_the_next_answer(ws: DaemonEnv) -> None:
    started(ws)

    async def main() -> None:
        client = await DaemonClient.connect(ws.root, start=False)
        try:
            await client.subscribe(["graph_changed"])
            before = await client.call(
                wire.IMPACTED, wire.ImpactedParams(paths=["src/pkg/extra.py"])
            )
            assert targets(before) == ["tests/test_extra.py"]
            api = ws.root / "src/pkg/api.py"
            api.write_text(api.read_text() + "from pkg.extra import two\n")
            event = await client.next_event(timeout=10)
            assert event.event == "graph_changed"
            assert "src/pkg/api.py" in event.payload["paths"]
            # no refresh request: the very next query sees the new import
            after = await client.call(
                wire.IMPACTED, wire.ImpactedParams(paths=["src/pkg/extra.py"])
            )
            assert targets(after) == ["tests/test_api.py", "tests/test_extra.py"]
        finally:
            await client.close()

    run(main())


def test_query_right_after_a_save_never_needs_a_refresh(ws: DaemonEnv) -> None:
    """Poll without events: the edit appears within the watcher latency, and stays."""
    started(ws)
    with SyncDaemonClient(ws.root, start=False) as client:
        assert impacted_paths(client, "src/pkg/extra.py") == ["tests/test_extra.py"]
        (ws.root / "tests/test_new.py").write_text("from pkg.extra import two\n")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = impacted_paths(client, "src/pkg/extra.py")
            if "tests/test_new.py" in found:
                break
            time.sleep(0.01)
        assert found == ["tests/test_extra.py", "tests/test_new.py"]


def test_restart_answers_from_the_persisted_index(ws: DaemonEnv) -> None:
    started(ws)
    with SyncDaemonClient(ws.root, start=False) as client:
        first = client.call(wire.GRAPH_STATS, wire.GraphStatsParams())
    assert first.scanned == first.python_files
    assert stop_daemon(ws.root)
    started(ws)
    with SyncDaemonClient(ws.root, start=False) as client:
        warm = client.call(wire.GRAPH_STATS, wire.GraphStatsParams())
        assert impacted_paths(client, "src/pkg/core.py") == [
            "tests/test_api.py",
            "tests/test_core.py",
        ]
    assert warm.reused_from_index == warm.python_files == first.python_files
    assert warm.scanned == 0


def test_syntax_errors_are_found_when_asked_and_remembered(ws: DaemonEnv) -> None:
    (ws.root / "src/pkg/broken.py").write_text("def f(:\n")
    started(ws)
    with SyncDaemonClient(ws.root, start=False) as client:
        quick = client.call(wire.GRAPH_STATS, wire.GraphStatsParams())
        assert quick.diagnostics == [] and quick.syntax_unchecked == quick.python_files
        checked = client.call(wire.GRAPH_STATS, wire.GraphStatsParams(check_syntax=True))
        assert [(d.path, d.line) for d in checked.diagnostics] == [("src/pkg/broken.py", 1)]
        assert checked.syntax_unchecked == 0
        again = client.call(wire.GRAPH_STATS, wire.GraphStatsParams())
    assert again.diagnostics == checked.diagnostics


def test_unsaved_buffers_change_the_answer(ws: DaemonEnv) -> None:
    started(ws)
    text = (ws.root / "pyproject.toml").read_text()
    pytest_change = text.replace('testpaths = ["tests"]', 'testpaths = ["tests"]\naddopts = "-x"')
    ruff_change = text.replace("line-length = 100", "line-length = 120")
    with SyncDaemonClient(ws.root, start=False) as client:
        all_tests = client.call(
            wire.IMPACTED, wire.ImpactedParams(buffers={"pyproject.toml": pytest_change})
        )
        assert targets(all_tests) == [
            "tests/test_api.py",
            "tests/test_core.py",
            "tests/test_extra.py",
        ]
        ruff_only = client.call(
            wire.IMPACTED, wire.ImpactedParams(buffers={"pyproject.toml": ruff_change})
        )
        assert [c.path for c in ruff_only.changes] == ["pyproject.toml"]
        assert ruff_only.impacted == []
        unchanged = client.call(
            wire.IMPACTED, wire.ImpactedParams(buffers={"pyproject.toml": text})
        )
        assert unchanged.changes == []
        # a Python buffer: its dependents, even though nothing was saved
        api = client.call(
            wire.IMPACTED,
            wire.ImpactedParams(
                buffers={str(ws.root / "src/pkg/core.py"): "def one():\n    return 2\n"}
            ),
        )
        assert targets(api) == ["tests/test_api.py", "tests/test_core.py"]
    assert (ws.root / "pyproject.toml").read_text() == text


def test_malformed_params_get_a_clear_error_and_the_daemon_keeps_serving(ws: DaemonEnv) -> None:
    started(ws)
    with SyncDaemonClient(ws.root, start=False) as client:
        bad: list[dict[str, Any]] = [
            {"paths": ["a.py"], "since": "main"},
            {"paths": "src/pkg/core.py"},
            {"buffers": {"a.py": 3}},
        ]
        for params in bad:

            async def raw(p: dict[str, Any] = params) -> None:
                # bypass the client's own validation: send the frame as a buggy client would
                c = await DaemonClient.connect(ws.root, start=False)
                try:
                    stream = c.stream("ping", {})
                    stream._spec = wire.IMPACTED
                    stream._params = p
                    async with stream:
                        async for _ in stream:
                            pass
                finally:
                    await c.close()

            with pytest.raises(InvalidParamsError) as info:
                run(raw())
            assert "invalid params for impacted" in info.value.message
        with pytest.raises(InvalidParamsError, match="one change source"):
            client.call(wire.IMPACTED, {"paths": ["a.py"], "since": "main"})
        assert impacted_paths(client, "src/pkg/core.py") == [
            "tests/test_api.py",
            "tests/test_core.py",
        ]
        outside = client.call(wire.STATUS)
        assert {"impacted", "why", "graph_stats", "run_tests", "stale"} <= set(outside.methods)


def test_why_and_export(ws: DaemonEnv) -> None:
    started(ws)
    with SyncDaemonClient(ws.root, start=False) as client:
        why = client.call(
            wire.WHY, wire.WhyParams(target="tests/test_api.py", path="src/pkg/core.py")
        )
        assert why.depends
        assert [h.target for h in why.reason] == ["src/pkg/api.py", "src/pkg/core.py"]
        exported = client.call(wire.GRAPH_EXPORT, wire.GraphExportParams(format="json"))
        assert json.loads(exported.text)["schema"] == "maestro.graph/1"


def _cli(ws: DaemonEnv, *args: str, **env: str) -> str:
    proc = subprocess.run(
        [MAESTRO, *args, "--root", str(ws.root)],
        cwd=ws.root,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout


def test_cli_output_is_identical_with_and_without_the_daemon(ws: DaemonEnv) -> None:
    cases = [
        ("impacted", "--json", "src/pkg/core.py"),
        ("impacted", "--json", "tests/test_extra.py", "src/pkg/api.py"),
        ("why", "--json", "tests/test_api.py", "src/pkg/core.py"),
        ("why", "tests/test_extra.py", "src/pkg/core.py"),
        ("impacted", "src/pkg/core.py"),
    ]
    alone = [_cli(ws, *c, "--no-daemon") for c in cases]
    assert not ws.paths.socket.exists()
    served = [_cli(ws, *c, MAESTRO_DAEMON="start") for c in cases]
    assert ws.holder(), "the CLI should have started the daemon"

    def scrub(text: str) -> str:
        if text.startswith("{"):
            data = json.loads(text)
            data.pop("elapsed_ms", None)
            return json.dumps(data)
        return "\n".join(line.split(" (")[0] for line in text.splitlines())  # timings

    assert [scrub(t) for t in served] == [scrub(t) for t in alone]
    assert json.loads(served[0])["impacted"][0]["target"] == "tests/test_core.py"


def _slow_workspace(ws: DaemonEnv) -> None:
    (ws.root / "tests/test_slow.py").write_text(
        "import os, time\n\n"
        "def test_slow():\n"
        "    open(os.environ.get('SLOW_PID_FILE', '/dev/null'), 'w').write(str(os.getpid()))\n"
        "    time.sleep(float(os.environ.get('SLOW_S', '1.5')))\n"
    )


def test_run_tests_streams_progress_and_a_second_run_queues(ws: DaemonEnv) -> None:
    _slow_workspace(ws)
    started(ws)

    first_planned = asyncio.Event()

    async def one(
        client: DaemonClient, after: asyncio.Event | None
    ) -> tuple[list[wire.Event], Any]:
        if after is not None:  # the second run starts once the first is under way
            await after.wait()
        events: list[wire.Event] = []
        stream = client.stream(wire.RUN_TESTS, wire.RunTestsParams(no_cache=True), timeout=120)
        async with stream:
            async for event in stream:
                events.append(event)
                first_planned.set()
        return events, stream.result

    async def main() -> None:
        a = await DaemonClient.connect(ws.root, start=False)
        b = await DaemonClient.connect(ws.root, start=False)
        try:
            (ev_a, res_a), (ev_b, res_b) = await asyncio.gather(one(a, None), one(b, first_planned))
        finally:
            await a.close()
            await b.close()
        names_a = [e.event for e in ev_a]
        assert names_a[0] == "run.plan"
        assert "run.queued" not in names_a
        progress = [e.payload for e in ev_a if e.event == "run.progress"]
        kinds = [p["event"]["event"] for p in progress]
        assert "collected" in kinds and "test_result" in kinds
        assert progress[-1]["done"] == 4
        assert res_a.exit_code == 0 and res_a.passed == 4 and res_a.ran_files == 4
        names_b = [e.event for e in ev_b]
        assert names_b[0] == "run.queued" and ev_b[0].payload == {"ahead": 1, "speculative": 0}
        assert res_b.passed == 4

    run(main(), timeout=120)

    # Everything passed and was stored: a third run is served from the cache, and nothing is stale.
    with SyncDaemonClient(ws.root, start=False) as client:
        cached = client.stream(wire.RUN_TESTS, wire.RunTestsParams(), lambda e: None)
        assert cached.cached_files == 4 and cached.ran_files == 0
        assert client.call(wire.STALE).stale == []
        stats = client.call(wire.CACHE_STATS)
        assert stats.actions >= 4


def test_cancelling_a_run_kills_pytest(
    ws: DaemonEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _slow_workspace(ws)
    pid_file = ws.base / "slow.pid"
    monkeypatch.setenv("SLOW_PID_FILE", str(pid_file))
    monkeypatch.setenv("SLOW_S", "60")
    started(ws)

    async def main() -> None:
        client = await DaemonClient.connect(ws.root, start=False)
        try:
            stream = client.stream(
                wire.RUN_TESTS, wire.RunTestsParams(paths=["tests/test_slow.py"]), timeout=120
            )

            async def consume() -> None:
                async with stream:
                    async for _ in stream:
                        pass

            task = asyncio.create_task(consume())
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if pid_file.exists() and pid_file.read_text().strip():
                    break
                await asyncio.sleep(0.05)
            # the test body runs: cancelling the task cancels the request
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            pid = int(pid_file.read_text())
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("pytest survived the cancelled run")
            # the daemon serves the next run (the queue was released)
            again = client.stream(wire.RUN_TESTS, wire.RunTestsParams(paths=["tests/test_core.py"]))
            async with again:
                async for _ in again:
                    pass
            assert again.result.passed == 1
        finally:
            await client.close()

    run(main(), timeout=60)
    assert RequestCancelledError.code == "cancelled"


def test_hop_chains_only_for_the_first_targets_asked(ws: DaemonEnv) -> None:
    """Editors ask for no chains, the CLI's text for the ones it prints (and no one-line
    reasons): the chains that are sent are the same as a full answer's."""
    started(ws)
    with SyncDaemonClient(ws.root, start=False) as client:
        full = client.call(wire.IMPACTED, wire.ImpactedParams(paths=["src/pkg/core.py"]))
        none = client.call(wire.IMPACTED, wire.ImpactedParams(paths=["src/pkg/core.py"], hops=0))
        one = client.call(wire.IMPACTED, wire.ImpactedParams(paths=["src/pkg/core.py"], hops=1))
        # the CLI's text: the chains it prints, no one-line reasons (a different answer: etag)
        text = wire.ImpactedParams(paths=["src/pkg/core.py"], hops=1, why=False)
        terse = client.call(wire.IMPACTED, text)
        assert client.call(wire.IMPACTED, text.model_copy(update={"etag": one.etag})).impacted
    assert [(i.target, i.why, i.reason) for i in terse.impacted] == [
        (i.target, "", i.reason) for i in one.impacted
    ]
    assert len(full.impacted) == 2 and all(i.reason for i in full.impacted)
    assert [i.target for i in none.impacted] == [i.target for i in full.impacted]
    assert all(not i.reason for i in none.impacted)
    for row, whole in zip(none.impacted, full.impacted, strict=True):
        assert row.why == whole.why == " -> ".join(h.text for h in whole.reason)
        assert "imports pkg.core" in row.why
    assert one.impacted[0].reason == full.impacted[0].reason and not one.impacted[1].reason


def test_an_etag_holds_until_the_graph_or_the_change_changes(ws: DaemonEnv) -> None:
    """A client re-asking with the etag of the answer it holds gets `unchanged` (no rows) while
    that answer holds; an edit on disk or a different change record is a fresh answer."""
    started(ws)
    core = wire.ImpactedParams(paths=["src/pkg/core.py"])
    with SyncDaemonClient(ws.root, start=False) as client:
        first = client.call(wire.IMPACTED, core)
        assert first.etag and not first.unchanged and first.impacted
        same = client.call(wire.IMPACTED, core.model_copy(update={"etag": first.etag}))
        assert same.unchanged and same.etag == first.etag and not same.impacted
        other = wire.ImpactedParams(paths=["src/pkg/extra.py"], etag=first.etag)
        assert not client.call(wire.IMPACTED, other).unchanged  # another change set

        extra = ws.root / "src/pkg/extra.py"
        extra.write_text(extra.read_text() + "from pkg.core import *\n")
        deadline = time.monotonic() + 10
        while True:  # the watcher reports the edit; the etag no longer holds
            again = client.call(wire.IMPACTED, core.model_copy(update={"etag": first.etag}))
            if not again.unchanged:
                break
            assert time.monotonic() < deadline, "the edit never invalidated the etag"
            time.sleep(0.02)
        assert again.etag != first.etag
        assert "tests/test_extra.py" in targets(again)


def test_a_source_buffer_keeps_its_etag_while_typed_into_a_config_buffer_does_not(
    ws: DaemonEnv,
) -> None:
    """Who depends on a source file does not depend on what the file says: every keystroke in an
    unsaved buffer gets the same answer (re-asked: `unchanged`). A root config file is read for
    its sections, so its buffer's text is part of the answer."""
    started(ws)
    core = ws.root / "src/pkg/core.py"
    with SyncDaemonClient(ws.root, start=False) as client:
        first = client.call(
            wire.IMPACTED, {"buffers": {"src/pkg/core.py": core.read_text() + "#1"}}
        )
        assert first.etag and first.impacted
        typed = {"buffers": {"src/pkg/core.py": core.read_text() + "x = 2\n"}, "etag": first.etag}
        again = client.call(wire.IMPACTED, typed)
        assert again.unchanged and again.etag == first.etag

        config = (ws.root / "pyproject.toml").read_text()
        one = client.call(wire.IMPACTED, {"buffers": {"pyproject.toml": config + "# a\n"}})
        other = {"buffers": {"pyproject.toml": config + "[tool.pytest.ini_options]\n"}}
        two = client.call(wire.IMPACTED, {**other, "etag": one.etag})
        assert not two.unchanged and two.etag != one.etag


def test_a_run_finds_the_interpreter_in_the_clients_environment(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon started by an editor launched from the desktop (its python3 has no pytest) runs
    a terminal's `maestro test` with the terminal's active venv, as `--no-daemon` would."""
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(daemon_env.base / "cache"))
    daemon_env.write_old({"tests/test_one.py": "def test_one():\n    assert 1\n"})
    bare = daemon_env.base / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    monkeypatch.setenv("PATH", f"{bare / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin")
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    started(daemon_env)
    terminal = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "VIRTUAL_ENV": str(Path(sys.executable).parent.parent),
    }
    with SyncDaemonClient(daemon_env.root, start=False) as client:
        result = client.stream(
            wire.RUN_TESTS, wire.RunTestsParams(env=terminal), lambda e: None, timeout=120
        )
    assert (result.exit_code, result.passed) == (0, 1)
