"""What a daemon loads from its start to its first answer and the background work that follows:
not the coordinator's server side (aiohttp's web framework, the routes) nor numpy / scikit-learn,
which only ranking or training needs, nor detect-secrets and requests, whose detectors a child
reads once. Read from the daemon's own `-X importtime` report (its stderr goes to its log)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest
from conftest import DaemonEnv, started, targets

from maestro import wire
from maestro.daemon.lifecycle import stop_daemon
from maestro.daemon.transport.client import SyncDaemonClient
from maestro.policy.protocol import (
    POLICY_DECISIONS,
    POLICY_INCIDENT_CURRENT,
    PolicyDecisionsParams,
)

NOT_AT_START = ("aiohttp.web", "maestro.coordinator.app", "numpy", "sklearn")
NEVER = ("detect_secrets", "requests", "urllib3", "charset_normalizer")
"""Top-level packages a daemon never loads, even the first one with no detectors saved."""
TEAM_BUNDLE = ("maestro.policy.bundle", "jwt", "cryptography", "prometheus_client")
"""Only a workspace that trusts team bundle keys needs these."""


def imported(log: str) -> set[str]:
    """Module names in the `-X importtime` lines of a log."""
    return {
        line.rsplit("|", 1)[-1].strip()
        for line in log.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def wait_for(read: Callable[[], str], needles: tuple[str, ...], timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = read()
        if all(n in text for n in needles):
            return text
        time.sleep(0.1)
    raise AssertionError(f"the daemon log never showed {needles}:\n{text[-3000:]}")


def test_start_and_first_answer_load_neither_the_server_nor_numpy(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon_env.write_old(
        {
            "pkg/__init__.py": "",
            "pkg/mod.py": "def f():\n    return 1\n",
            "tests/test_mod.py": "from pkg.mod import f\n\ndef test_f():\n    assert f() == 1\n",
        }
    )
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    # no detect-secrets detectors saved yet, as for the first daemon after an install
    monkeypatch.setenv("MAESTRO_CACHE_DIR", str(daemon_env.base / "cache"))
    started(daemon_env)
    log_path = daemon_env.paths.log
    with SyncDaemonClient(daemon_env.root, start=False, timeout=30) as client:
        report = client.call(wire.IMPACTED, wire.ImpactedParams(paths=["pkg/mod.py"]))
        assert targets(report) == ["tests/test_mod.py"]
        # the background work a start sets off has run: the speculation model's load (which
        # reads which model ranks) and the first run's warm-up (its imports, its pytest)
        text = wait_for(
            lambda: log_path.read_text(errors="replace"),
            ("telemetry: ", "ranking with", "maestro.engine.testing"),
        )
    assert "maestro.daemon.app" in imported(text)  # the report is there
    stop_daemon(daemon_env.root)
    loaded = imported(log_path.read_text(errors="replace"))
    assert not {m for m in loaded if m.split(".")[0] in {"numpy", "sklearn", *NEVER}}
    assert not loaded & set(NOT_AT_START)
    assert list((daemon_env.base / "cache" / "detectors").glob("detect-secrets-*.json"))


PROJECT = {
    "pkg/__init__.py": "",
    "pkg/mod.py": "def f():\n    return 1\n",
    "tests/test_mod.py": "from pkg.mod import f\n\ndef test_f():\n    assert f() == 1\n",
}


@pytest.mark.parametrize(
    "pyproject",
    ["", "[tool.maestro.policy]\nupload_ci_only = true\n"],
    ids=["built-in rules alone", "settings of its own"],
)
def test_the_gate_opens_after_the_first_answer_without_the_team_bundles_crypto(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch, pyproject: str
) -> None:
    """No bundle keys: the gate (rego-cpp) opens after the first answer, so that a first run
    does not wait for it, and the team bundle's crypto stays unloaded."""
    daemon_env.write_old({**PROJECT, "pyproject.toml": pyproject} if pyproject else PROJECT)
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    started(daemon_env)
    log_path = daemon_env.paths.log
    with SyncDaemonClient(daemon_env.root, start=False, timeout=30) as client:
        client.call(wire.IMPACTED, wire.ImpactedParams(paths=["pkg/mod.py"]))
        deadline = time.monotonic() + 30
        while "regopy" not in imported(log_path.read_text(errors="replace")):
            assert time.monotonic() < deadline, "the gate did not open after the first answer"
            time.sleep(0.1)
        # an editor asks for the open bundle incident when it connects: there can be none
        assert client.call(POLICY_INCIDENT_CURRENT, wire.Empty()).incident is None
        answer = client.call(POLICY_DECISIONS, PolicyDecisionsParams())
        assert answer.error is None
        assert answer.policy  # the set's digest: the gate is open
    stop_daemon(daemon_env.root)
    assert not imported(log_path.read_text(errors="replace")) & set(TEAM_BUNDLE)


def test_the_test_runner_is_imported_after_the_graph_answers(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The orphans of a dead daemon's runs are killed once the first answer is out (a run kills
    them itself before it starts): a restarted daemon's first answer does not import the test
    runner for them."""
    daemon_env.write_old(PROJECT)
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    started(daemon_env)
    log_path = daemon_env.paths.log
    with SyncDaemonClient(daemon_env.root, start=False, timeout=30) as client:
        client.call(wire.IMPACTED, wire.ImpactedParams(paths=["pkg/mod.py"]))
        text = wait_for(lambda: log_path.read_text(errors="replace"), ("maestro.engine.runner",))
    lines = text.splitlines()
    runner = next(i for i, line in enumerate(lines) if line.endswith(" maestro.engine.runner"))
    ready = next(i for i, line in enumerate(lines) if "graph ready" in line)
    assert ready < runner


RUN_IMPORTS = ("maestro.cache.remote", "maestro.policy.windows", "maestro.engine.changes")
"""What a run imports from its request to its plan: the warm-up imports them, before it."""


def test_the_first_run_imports_nothing_the_warm_up_could_have(
    daemon_env: DaemonEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first run through a daemon that had time to warm up does not wait for the modules its
    request and plan need (each was a tenth of a second on a loaded host)."""
    daemon_env.write_old(PROJECT)
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    started(daemon_env)
    log_path = daemon_env.paths.log
    with SyncDaemonClient(daemon_env.root, start=False, timeout=30) as client:
        client.call(wire.IMPACTED, wire.ImpactedParams(paths=["pkg/mod.py"]))
        # the warm-up's last step: the first run's pytest process
        before = wait_for(
            lambda: log_path.read_text(errors="replace"), ("-m pytest -p maestro_warm",), 60
        )
        params = wire.RunTestsParams(env=dict(os.environ))
        assert client.stream(wire.RUN_TESTS, params, lambda e: None, timeout=120).passed == 1
    stop_daemon(daemon_env.root)
    during = imported(log_path.read_text(errors="replace")[len(before) :])
    assert set(RUN_IMPORTS) <= imported(before)
    assert not during & set(RUN_IMPORTS)
    # no telemetry and nothing changed: no ranking tells the files apart, numpy stays unloaded
    assert not {m for m in during if m.split(".")[0] == "numpy"}
