"""Speculation in a real daemon: real watcher, real pytest subprocesses, real LMDB.

Every pytest session of the workspace appends a line to a marker file (its conftest does it at
import), so "no speculative work" is checked by what a user could see: no pytest ever started.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest
from conftest import DaemonEnv
from project_python import project_python, venv_with

from maestro import wire
from maestro.daemon.lifecycle import start_daemon
from maestro.daemon.transport.client import SyncDaemonClient

SPECULATION = """
[tool.maestro.ml.speculation]
enabled = true
delay-ms = 50
"""


def pyproject(speculate: bool) -> str:
    return f"""\
[project]
name = "ws"

[tool.maestro]
interpreter = "{project_python()}"
env-allowlist = ["SPEC_*"]
{SPECULATION if speculate else ""}
[tool.pytest.ini_options]
testpaths = ["tests"]
"""


CONFTEST = """\
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'src'))
marker = os.environ.get('SPEC_MARKER')
if marker:
    with open(marker, 'a') as f:
        f.write(str(os.getpid()) + '\\n')
"""

SLOW = """\
import fcntl, os, time
from pkg.core import one

def test_slow():
    open(os.environ['SPEC_PID'], 'w').write(str(os.getpid()))
    deadline = time.monotonic() + 60
    with open(os.environ['SPEC_HOLD'], 'rb') as hold:
        while time.monotonic() < deadline:
            try:
                fcntl.flock(hold, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.05)
    assert one() == 1
"""


class Hold:
    """Keeps test_slow waiting while held: an exclusive lock on the file it opens. The file is
    there, empty and old, from the start, so holding changes none of test_slow's inputs (its
    presence or absence would: a test that looks for a file depends on it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def on(self) -> None:
        self._file = self.path.open("rb")
        fcntl.flock(self._file, fcntl.LOCK_EX)

    def off(self) -> None:
        if self._file is not None:
            self._file.close()  # releases the lock
            self._file = None


FILES = {
    "src/pkg/__init__.py": "",
    "src/pkg/core.py": "def one():\n    return 1\n",
    "src/pkg/extra.py": "def two():\n    return 2\n",
    "tests/conftest.py": CONFTEST,
    "tests/test_core.py": "from pkg.core import one\n\ndef test_one():\n    assert one() == 1\n",
    "tests/test_extra.py": "from pkg.extra import two\n\ndef test_two():\n    assert two() == 2\n",
}


def setup(env: DaemonEnv, monkeypatch: pytest.MonkeyPatch, *, speculate: bool) -> Path:
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(env.base / "cache"))
    # the ranking reads per-node records: trace the first (cold) run too, as 3.12+ always does
    monkeypatch.setenv("MAESTRO_TRACE", "always")
    marker = env.base / "sessions.txt"
    monkeypatch.setenv("SPEC_MARKER", str(marker))
    monkeypatch.setenv("SPEC_PID", str(env.base / "slow.pid"))
    monkeypatch.setenv("SPEC_HOLD", str(env.base / "hold"))
    old = time.time() - 3600
    (env.base / "hold").write_bytes(b"")
    os.utime(env.base / "hold", (old, old))
    for rel, text in {**FILES, "pyproject.toml": pyproject(speculate)}.items():
        path = env.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.utime(path, (old, old))
    reply = start_daemon(env.root)
    assert reply is not None
    env.track(reply.pid)
    return marker


def sessions(marker: Path) -> int:
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def run_all(client: SyncDaemonClient) -> wire.RunTestsResult:
    params = wire.RunTestsParams(env=dict(os.environ))
    return client.stream(wire.RUN_TESTS, params, lambda e: None, timeout=120)


def spec(client: SyncDaemonClient) -> wire.SpeculationStatus:
    status = client.call(wire.STATUS).speculation
    assert status is not None
    return status


def wait_for(check: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def edit(root: Path, body: str) -> None:
    (root / "src/pkg/core.py").write_text(body)


def slow_started(pid_file: Path) -> None:
    """Wait until test_slow runs (it wrote its pid) in a speculative pytest."""
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "", what="slow")


def held_speculation(client: SyncDaemonClient, root: Path, pid_file: Path, hold: Hold) -> None:
    """Prime the cache, then save an edit whose speculative run test_slow keeps going (held)."""
    assert run_all(client).passed == 3
    pid_file.unlink()
    hold.on()
    edit(root, "def one():\n    return 3\n")
    slow_started(pid_file)


def test_flag_off_means_no_speculative_work(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = setup(daemon_env, monkeypatch, speculate=False)
    with SyncDaemonClient(daemon_env.root, start=False) as client:
        assert run_all(client).passed == 2
        before = sessions(marker)
        assert before == 1
        for n in range(3):
            edit(daemon_env.root, f"def one():\n    return 1  # {n}\n\nX = {n}\n")
            time.sleep(0.4)
        time.sleep(2.0)  # well past the watcher's batch and any speculation delay
        assert sessions(marker) == before, "a pytest process started after a save"
        status = spec(client)
        assert not status.enabled and status.state == "off"
        assert status.runs == status.cancelled == 0
        # the explicit run still works, and is recorded in telemetry
        assert run_all(client).passed == 2
    db = daemon_env.base / "st"
    assert list(db.rglob("telemetry.sqlite3"))


def test_speculative_result_is_served_as_a_cache_hit(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = setup(daemon_env, monkeypatch, speculate=True)
    with SyncDaemonClient(daemon_env.root, start=False) as client:
        first = run_all(client)
        assert first.passed == 2 and first.ran_files == 2
        started = sessions(marker)
        edit(daemon_env.root, "def one():\n    return 2\n")  # breaks test_core
        wait_for(lambda: spec(client).runs >= 1, what="a speculative run")
        assert sessions(marker) == started + 1
        status = spec(client)
        assert status.pending == 1 and status.first_failure_s
        # the explicit run after the save: no pytest, the failure comes from the cache
        result = run_all(client)
        assert sessions(marker) == started + 1
        assert result.failed == 1 and result.ran_files == 0 and result.cached_files == 2
        status = spec(client)
        assert status.hits == 1 and status.misses == 0 and status.pending == 0
        assert status.used_share == 1.0
    from maestro.model.telemetry import Telemetry

    (db,) = (daemon_env.base / "st").rglob("telemetry.sqlite3")
    with Telemetry(db) as telemetry:
        runs = list(telemetry.runs())
        assert [r.kind for r in runs] == ["explicit", "speculative"]
        speculative = runs[1]
        assert speculative.change.files == ("src/pkg/core.py",)
        assert speculative.used == {"tests/test_core.py::test_one": True}
        assert telemetry.speculation_usage() == (1, 1)


def test_superseding_edit_cancels_and_leaves_no_partial_result(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = setup(daemon_env, monkeypatch, speculate=True)
    root = daemon_env.root
    (root / "tests/test_slow.py").write_text(SLOW)
    pid_file, hold = daemon_env.base / "slow.pid", Hold(daemon_env.base / "hold")
    with SyncDaemonClient(root, start=False) as client:
        assert run_all(client).passed == 3
        pid_file.unlink()
        actions = client.call(wire.CACHE_STATS).actions
        hold.on()
        # v1: test_core fails at once, test_slow blocks in the same pytest process
        edit(root, "def one():\n    return 3\n")
        slow_started(pid_file)
        first = int(pid_file.read_text())
        pid_file.unlink()
        # v2 supersedes v1 while its pytest runs: that process group is killed
        edit(root, "def one():\n    x = 1\n    return x\n")

        def gone() -> bool:
            # the process can be reaped between the two looks: either way it is gone
            try:
                os.kill(first, 0)
                stat = Path(f"/proc/{first}/stat").read_text()
            except (ProcessLookupError, FileNotFoundError):
                return True
            return stat.rsplit(")", 1)[1].split()[0] == "Z"

        wait_for(gone, what="the superseded pytest to die")
        wait_for(lambda: spec(client).cancelled >= 1, what="the cancellation to be counted")
        # test_core's failure (reported before the kill) was not stored, nor anything else
        assert client.call(wire.CACHE_STATS).actions == actions
        assert spec(client).runs == 0
        # the v1 content is not served from the cache: it would run again
        wait_for(lambda: pid_file.exists(), what="the v2 speculation")
        hold.off()
        wait_for(lambda: spec(client).runs >= 1, what="the v2 speculation to finish")
        status = spec(client)
        assert status.cancelled == 1 and status.waste_share is not None
        assert status.waste_share > 0
        result = run_all(client)
        assert result.passed == 3 and result.ran_files == 0
        assert spec(client).hits >= 1
    assert sessions(marker) == 3  # the explicit prime, the cancelled v1, the v2 speculation


def test_a_run_behind_a_speculative_run_says_what_it_waits_for(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an editor's run waited behind a speculation (25 s on wrapt at load 11) with no word
    setup(daemon_env, monkeypatch, speculate=True)
    root = daemon_env.root
    (root / "tests/test_slow.py").write_text(SLOW)
    pid_file, hold = daemon_env.base / "slow.pid", Hold(daemon_env.base / "hold")
    with SyncDaemonClient(root, start=False) as client:
        held_speculation(client, root, pid_file, hold)
        queued: list[dict[str, object]] = []

        def on_event(event: wire.Event) -> None:
            if event.event == wire.RUN_QUEUED:
                queued.append(dict(event.payload or {}))
                hold.off()  # let the speculation finish

        params = wire.RunTestsParams(env=dict(os.environ))
        with SyncDaemonClient(root, start=False) as other:
            result = other.stream(wire.RUN_TESTS, params, on_event, timeout=120)
        assert queued and queued[0]["speculative"] == 2, queued
        said = wire.RunQueued.model_validate(queued[0]).describe()
        assert "the speculative run of 2 test files started by a save" in said
        # served by what the speculation stored (test_core and test_slow fail on one() == 3)
        assert (result.failed, result.ran_files) == (2, 0)


def test_a_run_of_other_files_does_not_wait_for_a_speculative_run(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an editor's run of 6 files waited 831 s behind a speculative run of 20 others (multidict)
    setup(daemon_env, monkeypatch, speculate=True)
    root = daemon_env.root
    (root / "tests/test_slow.py").write_text(SLOW)
    pid_file, hold = daemon_env.base / "slow.pid", Hold(daemon_env.base / "hold")
    with SyncDaemonClient(root, start=False) as client:
        held_speculation(client, root, pid_file, hold)
        slow = int(pid_file.read_text())
        try:
            params = wire.RunTestsParams(paths=["tests/test_extra.py"], env=dict(os.environ))
            with SyncDaemonClient(root, start=False) as other:
                # the speculation stays held: this returns only if the run did not wait for it
                result = other.stream(wire.RUN_TESTS, params, lambda e: None, timeout=60)
            assert (result.passed, result.failed) == (1, 0)
            status = spec(client)
            assert status.cancelled == 1, status
            assert status.last == "cancelled: an explicit run of other test files came", status
            with pytest.raises(ProcessLookupError):
                os.kill(slow, 0)  # the speculative pytest was stopped (reaped), not left running
        finally:
            hold.off()


def test_daemon_refuses_an_untrusted_model_and_still_runs(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import numpy as np
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    from maestro.model.train import ModelStore, train

    # a model file with a type outside the allowlist (a callable), put where ours would be
    rng = np.random.default_rng(0)
    X = rng.random((40, 12))
    y = (X[:, 0] > 0.5).astype(int)
    state = daemon_env.base / "st"
    monkeypatch.setenv("MAESTRO_STATE_DIR", str(state))
    store = ModelStore.for_workspace(daemon_env.root)
    info = store.save(train(X, y, kind="logistic"))
    evil = tmp_path / "evil.skops"
    sio.dump(FunctionTransformer(func=shutil.rmtree), evil)
    path = store.dir / f"model-v{info.version}.skops"
    shutil.copyfile(evil, path)
    meta = store.dir / f"model-v{info.version}.json"
    from maestro.model.train import _sha256

    meta.write_text(meta.read_text().replace(info.digest, _sha256(path)))
    setup(daemon_env, monkeypatch, speculate=False)
    with SyncDaemonClient(daemon_env.root, start=False) as client:
        assert run_all(client).passed == 2
        status = spec(client)
        assert status.model == "heuristic"
        assert "allowlist" in status.model_error


def test_waste_trips_the_tripwire_and_status_says_so(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = setup(daemon_env, monkeypatch, speculate=True)
    root = daemon_env.root
    text = (root / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(
        text.replace("delay-ms = 50\n", "delay-ms = 50\nmax-waste = 0.01\nmin-events = 1\n")
    )
    (root / "tests/test_slow.py").write_text(SLOW)
    pid_file, hold = daemon_env.base / "slow.pid", Hold(daemon_env.base / "hold")
    with SyncDaemonClient(root, start=False) as client:
        held_speculation(client, root, pid_file, hold)
        edit(root, "def one():\n    return 4\n")  # cancels: all speculative CPU so far wasted
        wait_for(lambda: spec(client).state == "throttled", what="the tripwire")
        status = spec(client)
        assert status.cancelled == 1 and status.runs == 0
        assert "speculation throttled" in status.throttled_reason
        before = sessions(marker)
        edit(root, "def one():\n    return 5\n")
        time.sleep(2.0)
        assert sessions(marker) == before, "a throttled speculator started pytest"
        assert spec(client).skipped >= 1
        hold.off()
        from maestro.cli.workspace_cmd import speculation_line

        assert "speculation throttled" in speculation_line(spec(client))
    log = next((daemon_env.base / "st").rglob("daemon.log")).read_text()
    assert "speculation throttled" in log


def test_runs_are_ordered_fail_first_from_telemetry(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = daemon_env.root
    (root / "tests").mkdir()
    (root / "tests/test_zzz.py").write_text(
        "def test_a():\n    pass\n\n\ndef test_z():\n    assert False\n"
    )
    setup(daemon_env, monkeypatch, speculate=False)  # no save after start: no change set

    def order(client: SyncDaemonClient) -> list[str]:
        seen: list[str] = []

        def on_event(event: wire.Event) -> None:
            inner = (event.payload or {}).get("event", {}) if event.event == "run.progress" else {}
            if inner.get("event") == "test_result":
                seen.append(inner["nodeid"])

        params = wire.RunTestsParams(env=dict(os.environ), no_cache=True)
        client.stream(wire.RUN_TESTS, params, on_event, timeout=120)
        return seen

    with SyncDaemonClient(root, start=False) as client:
        first = order(client)
        assert [n.split("::")[0] for n in first] == [
            "tests/test_core.py", "tests/test_extra.py", "tests/test_zzz.py", "tests/test_zzz.py"
        ]  # fmt: skip
        assert first[-1] == "tests/test_zzz.py::test_z"
        # the failure is in telemetry now, and by default the next run keeps pytest's order
        assert order(client) == first
        # `"files"` starts with its file, whose tests keep pytest's order (tests of one module
        # may depend on their order, and the result is stored)
        pyproject = root / "pyproject.toml"
        text = pyproject.read_text()
        pyproject.write_text(text + '\n[tool.maestro.ml]\nfail-first = "files"\n')
        files_first = ["tests/test_zzz.py::test_a", "tests/test_zzz.py::test_z"]
        # each try is a run; the watcher reloads the settings after the save
        wait_for(lambda: order(client)[:2] == files_first, timeout=60, what="files-first order")
        # `"tests"` also runs the failure first inside its file
        pyproject.write_text(text + '\n[tool.maestro.ml]\nfail-first = "tests"\n')
        inside = ["tests/test_zzz.py::test_z", "tests/test_zzz.py::test_a"]
        wait_for(lambda: order(client)[:2] == inside, timeout=60, what="tests-first order")


def test_a_failure_that_leaks_state_never_reaches_a_file_pytest_runs_before_it(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # freezegun's shape: a failing test never undoes what it patched. Plain pytest runs
    # test_core.py first, so it never sees the leak; a run that moved the failing file first
    # gave (and stored) a failure pytest does not give, or hung on frozen time.
    setup(daemon_env, monkeypatch, speculate=False)
    root = daemon_env.root
    (root / "src/pkg/state.py").write_text("FROZEN = False\n")
    (root / "tests/test_core.py").write_text(
        "from pkg import state\nfrom pkg.core import one\n\n"
        "def test_one():\n    assert not state.FROZEN, 'time is frozen'\n    assert one() == 1\n"
    )
    (root / "tests/test_zzz.py").write_text(
        "from pkg import state\nfrom pkg.extra import two\n\n"
        "def test_freeze():\n    state.FROZEN = True\n    assert two() == 2\n"
        "    state.FROZEN = False\n"
    )
    with SyncDaemonClient(root, start=False) as client:
        assert run_all(client).failed == 0
        (root / "src/pkg/extra.py").write_text("def two():\n    return 3\n")
        second = run_all(client)
        assert (second.failed, failed_files(second)) == (
            2,
            ["tests/test_extra.py", "tests/test_zzz.py"],
        )
        # every file runs again: in pytest's order, test_core.py before the file that leaks
        params = wire.RunTestsParams(env=dict(os.environ), no_cache=True)
        third = client.stream(wire.RUN_TESTS, params, lambda e: None, timeout=120)
        assert (third.failed, failed_files(third)) == (
            2,
            ["tests/test_extra.py", "tests/test_zzz.py"],
        )
        served = run_all(client)  # test_core.py from the cache (failures always run again)
        assert [f.target for f in served.files if f.cached] == ["tests/test_core.py"]
        assert (served.failed, failed_files(served)) == (
            2,
            ["tests/test_extra.py", "tests/test_zzz.py"],
        )


def failed_files(result: wire.RunTestsResult) -> list[str]:
    """The files with a failed test, from each file's stored outcomes."""
    return sorted(
        f.target
        for f in result.files
        if any(t["outcome"] == "failed" for t in (f.result or {}).get("tests", []))
    )


PREDICTIVE_FILES = {
    "src/pkg/util.py": "def base():\n    return 0\n",
    "src/pkg/core.py": "from pkg import util\n\ndef one():\n    return 2 + util.base()\n",
    "src/pkg/extra.py": "from pkg import util\n\ndef two():\n    return 2 + util.base()\n",
}


def predictive_run(client: SyncDaemonClient, threshold: float | None) -> wire.RunTestsResult:
    params = wire.RunTestsParams(
        env=dict(os.environ), predictive=threshold is not None, threshold=threshold
    )
    return client.stream(wire.RUN_TESTS, params, lambda e: None, timeout=120)


def test_predictive_mode_skips_unlikely_files_and_never_a_failing_one(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = setup(daemon_env, monkeypatch, speculate=False)
    root = daemon_env.root
    for rel, text in PREDICTIVE_FILES.items():
        (root / rel).write_text(text)
    with SyncDaemonClient(root, start=False) as client:
        first = run_all(client)  # test_core fails (one() == 2), test_extra passes
        assert (first.failed, first.passed, first.ran_files) == (1, 1, 2)
        # a change of code both files executed, and a new test file with no history
        (root / "src/pkg/util.py").write_text("def base():\n    x = 0\n    return x\n")
        (root / "tests/test_new.py").write_text("def test_new():\n    assert True\n")
        time.sleep(1.0)
        before = sessions(marker)
        result = predictive_run(client, 0.5)
        info = result.predictive
        assert info is not None and info.model == "heuristic" and info.threshold == 0.5
        assert len(info.skipped) == 1, info
        (skipped,) = info.skipped
        assert skipped.target == "tests/test_extra.py"
        assert skipped.probability < 0.5
        assert skipped.reason.startswith(f"P(fail) {skipped.probability:.3f} < 0.5: ")
        assert "hop(s) from the change" in skipped.reason
        # its execution record says it ran the changed function: a feature, shown
        assert "executed a changed function" in skipped.reason
        kept = {k.target: k.reason for k in info.kept}
        assert kept == {
            "tests/test_core.py": "failed last time: never skipped",
            "tests/test_new.py": "no history: never skipped",
        }
        # the skipped file is not in the result, the others ran in one pytest process
        assert sorted(f.target for f in result.files) == ["tests/test_core.py", "tests/test_new.py"]
        assert (result.failed, result.passed, result.ran_files) == (1, 1, 2)
        assert sessions(marker) == before + 1
        # flag off: unchanged behaviour; the skipped file was not cached as a pass, so it runs
        plain = run_all(client)
        assert plain.predictive is None
        assert plain.ran_files == 2 and plain.cached_files == 1  # test_core, test_extra; test_new
        assert {f.target for f in plain.files if not f.cached} == {
            "tests/test_core.py",
            "tests/test_extra.py",
        }


MIX = """\
from pkg.core import one
from pkg.extra import two


def test_fails():
    assert one() == 1


def test_passes():
    assert two() == 2
"""


def test_predictive_mode_deselects_unlikely_tests_inside_a_file_that_runs(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(daemon_env, monkeypatch, speculate=False)
    root = daemon_env.root
    for rel, text in {**PREDICTIVE_FILES, "tests/test_mix.py": MIX}.items():
        (root / rel).write_text(text)
    with SyncDaemonClient(root, start=False) as client:
        first = run_all(client)  # test_core::test_one and test_mix::test_fails fail
        assert (first.failed, first.passed) == (2, 2)
        (root / "src/pkg/util.py").write_text("def base():\n    x = 0\n    return x\n")
        time.sleep(1.0)
        result = predictive_run(client, 0.99)
        info = result.predictive
        assert info is not None
        assert [s.target for s in info.skipped] == ["tests/test_extra.py"]
        # test_mix runs (it failed last time), but only its test that failed: the other one is
        # deselected, with its probability and the features behind it
        (inside,) = info.skipped_tests
        assert inside.node_id == "tests/test_mix.py::test_passes"
        assert inside.reason.startswith(f"P(fail) {inside.probability:.3f} < 0.99: ")
        assert "skipped 1 test in them" in info.summary()
        mix = next(f for f in result.files if f.target == "tests/test_mix.py")
        assert mix.result is not None
        assert [t["node_id"] for t in mix.result["tests"]] == ["tests/test_mix.py::test_fails"]
        assert not mix.stored  # a result without test_passes must never be served later
        assert (result.failed, result.passed) == (2, 0)
        # flag off: test_mix runs again, whole (nothing of it was cached)
        plain = run_all(client)
        ran = {f.target: f for f in plain.files if not f.cached}
        assert "tests/test_mix.py" in ran
        mix_result = ran["tests/test_mix.py"].result
        assert mix_result is not None and len(mix_result["tests"]) == 2


def test_predictive_mode_keeps_likely_failures(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A low threshold runs everything impacted; an all-skipped run exits 0, not 5."""
    setup(daemon_env, monkeypatch, speculate=False)
    root = daemon_env.root
    with SyncDaemonClient(root, start=False) as client:
        assert run_all(client).passed == 2
        edit(root, "def one():\n    x = 1\n    return x\n")
        time.sleep(1.0)
        low = predictive_run(client, 0.0)
        assert low.predictive is not None and low.predictive.skipped == []
        assert low.ran_files == 1 and low.passed == 2
        edit(root, "def one():\n    y = 1\n    return y\n")
        time.sleep(1.0)
        high = predictive_run(client, 1.0)
        assert high.predictive is not None
        assert [s.target for s in high.predictive.skipped] == ["tests/test_core.py"]
        assert high.ran_files == 0 and high.exit_code == 0


def test_cli_predictive_lists_what_it_skipped_and_why(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from maestro.cli.app import app

    setup(daemon_env, monkeypatch, speculate=False)
    root = daemon_env.root
    for rel, text in PREDICTIVE_FILES.items():
        (root / rel).write_text(text)
    monkeypatch.setenv("COLUMNS", "300")
    runner = CliRunner()
    first = runner.invoke(app, ["test", "--root", str(root)])
    assert first.exit_code == 1, first.output
    (root / "src/pkg/util.py").write_text("def base():\n    x = 0\n    return x\n")
    time.sleep(1.0)
    xml = daemon_env.base / "junit.xml"
    args = ["--predictive", "--threshold", "0.5", "--junit-xml", str(xml), "--root", str(root)]
    out = runner.invoke(app, ["test", *args])
    assert out.exit_code == 1, out.output  # test_core still fails: it was never skipped
    lines = out.output.splitlines()
    found = [line for line in lines if line.startswith("skipped tests/test_extra.py")]
    assert len(found) == 1, out.output
    (skipped,) = found
    assert "P(fail) 0." in skipped and "< 0.5" in skipped and "hop(s) from the change" in skipped
    assert any(
        line.startswith("kept tests/test_core.py") and "failed last time: never skipped" in line
        for line in lines
    )
    assert "ran 1 test file, skipped 1" in out.output
    # the JUnit report names the skipped file as skipped, with the reason
    import xml.etree.ElementTree as ET

    cases = {c.get("file"): c for c in ET.parse(xml).getroot().iter("testcase")}
    marked = cases["tests/test_extra.py"].find("skipped")
    assert marked is not None and marked.get("type") == "maestro.predictive"
    assert "< 0.5" in (marked.get("message") or "")
    assert cases["tests/test_core.py"].find("failure") is not None


@pytest.mark.parametrize("start", ["conftest", "plugin"])
def test_a_speculation_pytest_cannot_start_is_a_warning_not_a_fault(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch, start: str
) -> None:
    """A save that breaks what pytest imports before its session (a conftest's import, a
    plugin module: iniconfig's own parser, which pytest imports at start-up) makes the
    speculative pytest exit at once. That is the user's code, which the explicit run reports:
    the daemon log says so in one warning line with the reason, not as an internal error with
    a traceback."""
    setup(daemon_env, monkeypatch, speculate=True)
    root = daemon_env.root
    if start == "conftest":
        (root / "tests/conftest.py").write_text(CONFTEST + "import pkg.core\n")
    else:  # a plugin module pytest imports before any conftest, as -p names it
        text = (root / "pyproject.toml").read_text()
        (root / "pyproject.toml").write_text(
            text.replace('testpaths = ["tests"]', 'testpaths = ["tests"]\naddopts = "-p spec_plug"')
        )
        shutil.copy(root / "src/pkg/core.py", root / "spec_plug.py")
        monkeypatch.setenv("PYTHONPATH", str(root))
    with SyncDaemonClient(root, start=False) as client:
        assert run_all(client).passed == 2
        broken = "raise ValueError('boom at start-up')\n"
        if start == "conftest":
            edit(root, broken)
        else:
            (root / "spec_plug.py").write_text(broken)
            edit(root, "def one():\n    return 2\n")  # a save the speculation runs on
        ended = ("pytest did not start", "speculative run failed")
        wait_for(lambda: spec(client).last.startswith(ended), what="the speculation's end")
        last = spec(client).last
    log = next((daemon_env.base / "st").rglob("daemon.log")).read_text()
    assert "speculative run failed" not in log and "Traceback" not in log, log[-3000:]
    (line,) = [line for line in log.splitlines() if "speculative run did not start" in line]
    assert " WARNING " in line and "boom at start-up" in line, line
    assert last.startswith("pytest did not start") and "boom at start-up" in last, last


BUSY = """\
import fcntl, os
import pytest
from pkg.core import one


@pytest.fixture
def free():
    with open(os.environ['SPEC_HOLD'], 'rb') as hold:
        try:
            fcntl.flock(hold, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError('the resource is busy') from None
        yield


def test_busy(free):
    assert one() in (1, 3)
"""


def test_a_speculative_error_is_run_again_not_served(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a speculative run broken by what another process did meanwhile (a pytest-cov run in the
    # folder deleted its coverage data: 95 errors) had its errors served to the run after it
    setup(daemon_env, monkeypatch, speculate=True)
    root = daemon_env.root
    (root / "tests/test_busy.py").write_text(BUSY)
    hold = Hold(daemon_env.base / "hold")
    with SyncDaemonClient(root, start=False) as client:
        assert run_all(client).passed == 3
        hold.on()  # what test_busy's fixture needs is busy while the speculation runs
        try:
            edit(root, "def one():\n    return 3\n")  # breaks test_core, test_busy still passes
            wait_for(lambda: spec(client).last.startswith("speculated"), what="the speculation")
            assert spec(client).last.startswith("speculated 2 file(s): 2 failing"), spec(client)
        finally:
            hold.off()
        # what plain pytest says now: test_core fails, test_busy passes
        result = run_all(client)
        outcomes = {
            t["node_id"]: t["outcome"] for f in result.files for t in (f.result or {})["tests"]
        }
        assert outcomes == {
            "tests/test_busy.py::test_busy": "passed",
            "tests/test_core.py::test_one": "failed",
            "tests/test_extra.py::test_two": "passed",
        }, outcomes
        assert (result.failed, result.errors, result.passed) == (1, 0, 2)
        # the test's own failure is still served from the speculation; the error ran again
        ran = sorted(f.target for f in result.files if not f.cached)
        assert ran == ["tests/test_busy.py"], ran


COVERAGE_PYPROJECT = """\
[project]
name = "ws"

[tool.maestro]
interpreter = "{python}"
env-allowlist = ["SPEC_*"]

[tool.maestro.ml.speculation]
enabled = true
delay-ms = 50

[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = "--cov=pkg --cov-context=test --cov-report=xml"
"""


@pytest.fixture(scope="module")
def cov_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with pytest-cov and coverage over this environment's packages (pytest), as a
    project with ``--cov`` in its addopts has (with its dependencies: coverage is in no
    environment `make test` sets up)."""
    return venv_with(tmp_path_factory, "pytest-cov>=5", deps=True).path


def test_a_speculative_run_and_the_users_pytest_cov_run_keep_apart(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch, cov_python: Path
) -> None:
    # multidict (--cov --cov-context=test): a terminal's pytest-cov run combined and deleted the
    # speculative run's .coverage.<host>.pid<n>.<random> file; the speculation's later tests
    # erred (coverage's "no such table: context") and a run waiting for it was served 95 errors
    import subprocess

    setup(daemon_env, monkeypatch, speculate=True)
    root = daemon_env.root
    (root / "pyproject.toml").write_text(COVERAGE_PYPROJECT.format(python=cov_python))
    (root / ".gitignore").write_text(".coverage\n.coverage.*\ncoverage.xml\n")
    (root / "tests/test_slow.py").write_text(SLOW)
    pid_file, hold = daemon_env.base / "slow.pid", Hold(daemon_env.base / "hold")
    with SyncDaemonClient(root, start=False) as client:
        assert run_all(client).passed == 3
        pid_file.unlink()
        hold.on()
        try:
            edit(root, "def one():\n    x = 1\n    return x\n")  # every test still passes
            slow_started(pid_file)  # the speculation's coverage data is being written
            # the user's own pytest-cov run in a terminal, ended while the speculation runs
            terminal = subprocess.run(
                [str(cov_python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 "tests/test_extra.py"],
                cwd=root, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert terminal.returncode == 0, terminal.stdout + terminal.stderr
            theirs = {p.name: p.read_bytes() for p in root.glob("*coverage*")}
            assert sorted(theirs) == [".coverage", "coverage.xml"], sorted(theirs)
        finally:
            hold.off()
        wait_for(lambda: spec(client).last.startswith("speculated"), what="the speculation")
        status = spec(client)
        # the workspace's coverage files are the ones the user's run made
        assert {p.name: p.read_bytes() for p in root.glob("*coverage*")} == theirs
        # and the run after is served what plain pytest says: every test passes
        result = run_all(client)
        assert (result.passed, result.failed, result.errors) == (3, 0, 0)
        assert status.last.startswith("speculated 2 file(s): 0 failing"), status
        assert result.ran_files == 0 and spec(client).hits == 2


def nice_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_a_run_that_waits_for_a_speculation_waits_at_the_users_priority(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # deepdiff at load 12 on 2 cores: a whole-suite run waited 66 s for a speculation of 20
    # files at nice 10, then ran 10 more: 91 s, where the same run without speculation took 68 s
    import resource

    own = os.getpriority(os.PRIO_PROCESS, 0)
    if os.geteuid() != 0 and resource.getrlimit(resource.RLIMIT_NICE)[0] < 20 - own:
        pytest.skip("this user may not raise a process's priority back")
    setup(daemon_env, monkeypatch, speculate=True)
    root = daemon_env.root
    (root / "tests/test_slow.py").write_text(SLOW)
    pid_file, hold = daemon_env.base / "slow.pid", Hold(daemon_env.base / "hold")
    with SyncDaemonClient(root, start=False) as client:
        held_speculation(client, root, pid_file, hold)
        slow = int(pid_file.read_text())
        niced = nice_of(slow)
        seen: list[int] = []

        def on_event(event: wire.Event) -> None:
            if event.event == wire.RUN_QUEUED and not seen:
                seen.append(nice_of(slow))  # the run waits for the speculation now
                hold.off()

        try:
            params = wire.RunTestsParams(env=dict(os.environ))
            with SyncDaemonClient(root, start=False) as other:
                result = other.stream(wire.RUN_TESTS, params, on_event, timeout=120)
        finally:
            hold.off()
        assert niced > own and seen == [own], (niced, seen)
        # served what the speculation stored: test_core and test_slow fail on one() == 3
        assert (result.failed, result.ran_files) == (2, 0)
        assert spec(client).cancelled == 0


def test_a_no_cache_run_does_not_wait_for_a_speculative_run(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a run that re-runs its files whatever is cached has no use for what a speculation stores
    setup(daemon_env, monkeypatch, speculate=True)
    root = daemon_env.root
    (root / "tests/test_slow.py").write_text(SLOW)
    pid_file, hold = daemon_env.base / "slow.pid", Hold(daemon_env.base / "hold")
    with SyncDaemonClient(root, start=False) as client:
        held_speculation(client, root, pid_file, hold)
        slow = int(pid_file.read_text())

        def on_event(event: wire.Event) -> None:
            if event.event != wire.RUN_QUEUED:
                hold.off()  # the run's own pytest has started: let its test_slow go

        try:
            params = wire.RunTestsParams(
                paths=["tests/test_core.py", "tests/test_slow.py"],  # the speculation's files
                no_cache=True,
                env=dict(os.environ),
            )
            with SyncDaemonClient(root, start=False) as other:
                # the speculation stays held: this returns only if the run did not wait for it
                result = other.stream(wire.RUN_TESTS, params, on_event, timeout=45)
            assert (result.failed, result.ran_files) == (2, 2)  # one() == 3
            status = spec(client)
            assert status.cancelled == 1, status
            assert status.last == "cancelled: an explicit run with --no-cache came", status
            with pytest.raises(ProcessLookupError):
                os.kill(slow, 0)
        finally:
            hold.off()


def test_a_run_goes_before_a_speculation_that_waited_for_the_lock(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # deepdiff (3.11): a save came while the daemon re-recorded the first run's files; the
    # speculation waited for that run, and the user's whole-suite run that came next, which
    # stops the re-recording, found the speculation ahead of it: 66 s of waiting for 20 files
    setup(daemon_env, monkeypatch, speculate=True)
    monkeypatch.delenv("MAESTRO_TRACE")  # the first run untraced: the daemon re-records it
    root = daemon_env.root
    (root / "tests/test_slow.py").write_text(SLOW)
    pid_file, hold = daemon_env.base / "slow.pid", Hold(daemon_env.base / "hold")
    with SyncDaemonClient(root, start=False) as client:
        assert run_all(client).passed == 3
        pid_file.unlink()
        hold.on()
        started: list[str] = []

        def on_event(event: wire.Event) -> None:
            if event.event != wire.RUN_QUEUED and not started:
                started.append(event.event)
                hold.off()  # the run's own pytest has started: let its test_slow go

        try:
            slow_started(pid_file)  # the re-recording runs test_slow, held
            edit(root, "def one():\n    x = 1\n    return x\n")  # every test still passes
            wait_for(lambda: spec(client).state == "running", what="the speculation")
            time.sleep(1.0)  # past its delay: it waits for the re-recording's lock
            with SyncDaemonClient(root, start=False) as other:
                # the speculation would hold test_slow: this returns only if the run went first
                result = other.stream(wire.RUN_TESTS, wire.RunTestsParams(env=dict(os.environ)),
                                      on_event, timeout=45)  # fmt: skip
        finally:
            hold.off()
        assert (result.passed, result.failed) == (3, 0)
        status = spec(client)
        assert status.runs == 0 and status.last == "an explicit run is waiting", status
