"""Red team: 240 seeded secrets of 18 kinds, planted in what a real workspace's tests print,
assert, raise, warn, log and read from data files, run by `maestro test` through the daemon with
sync to a real coordinator on loopback.

Every request body the coordinator receives is recorded server-side (its `record_requests_dir`
setting), and every sink is scanned: those bodies, the coordinator's store and log, the local
cache (CAS blobs and action results), the daemon's state (telemetry, logs) and the JUnit XML.
No seed may survive anywhere, and at least 99% of the seeds that reach a sink (each is tagged)
must arrive there redacted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from project_python import project_python
from redaction_seeds import ENV_NAMES, Seed, plant, seeds
from test_redaction import leaked

pytestmark = pytest.mark.slow

MAESTRO = str(Path(sys.executable).parent / "maestro")
KEY_ENV = "MAESTRO_REDTEAM_KEY"
CONTEXTS = ("print", "assert", "raise", "warn", "log", "data")


def _base_env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    env["MAESTRO_DAEMON_IDLE"] = "120"
    return env


def _test_source(context: str, items: list[tuple[int, Seed]]) -> str:
    lines = ["import logging, pathlib, warnings", "", "log = logging.getLogger('app')", ""]
    for i, seed in items:
        text = f"seed-{i:03d} {seed.text}"
        body = {
            "print": f"print({text!r})",
            "assert": f"assert {text!r} == 'expected'",
            "raise": f"raise ValueError({text!r})",
            # a warning that the test run treats as an error (filterwarnings = error): a plain
            # warning of a passing test is stored nowhere, so it could not be checked
            "warn": f"warnings.simplefilter('error')\n    warnings.warn({text!r})",
            "log": f"log.warning({text!r})\n    assert False, 'see the captured log'",
            "data": (
                f"data = (pathlib.Path(__file__).parent / 'data' / 's{i:03d}.txt').read_text()\n"
                "    assert data == ''"
            ),
        }[context]
        lines += [f"def test_s{i:03d}():", f"    {body}", "", ""]
    return "\n".join(lines)


PARAM_FILE = "test_param.py"


def _param_source(planted: list[Seed]) -> str:
    """One parametrized test whose ids are the seeds (each in its kind's own context, e.g. a
    URL with a password: a bare 14-letter word is no secret), so they are in its node ids."""
    ids = [f"seed-{i:03d} {plant(s.kind, s.value, str)}" for i, s in enumerate(planted)]
    return (
        "import pytest\n\n"
        f"IDS = {ids!r}\n\n\n"
        '@pytest.mark.parametrize("n", range(len(IDS)), ids=IDS)\n'
        "def test_p(n):\n"
        "    assert n >= 0\n"
    )


@dataclass
class Setup:
    base: Path
    seeds: list[Seed]
    ws: Path
    env: dict[str, str]
    coord_data: Path
    coord_log: Path
    bodies: Path
    junit: Path


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    proc = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode in (0, 1), proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture
def redteam() -> Iterator[Setup]:
    with _setup(node_ids=False) as setup:
        yield setup


@contextmanager
def _setup(*, node_ids: bool) -> Iterator[Setup]:
    """A coordinator recording every body and a workspace whose tests carry the seeds: in what
    they print, assert, raise, warn, log and read (``node_ids`` False), or in their node ids."""
    base = Path(tempfile.mkdtemp(prefix="mrt", dir="/tmp"))
    planted = list(seeds())
    coord_data, bodies, coord_log = base / "coord", base / "bodies", base / "coord.log"
    env = _base_env()
    coord = [MAESTRO, "coordinator"]
    _run([*coord, "tenant", "add", "team", "--data", str(coord_data)], base, env)
    create = [*coord, "key", "create", "team", "--role", "read-write", "--json"]
    made = _run([*create, "--data", str(coord_data)], base, env)
    key = json.loads(made.strip().splitlines()[-1])["api_key"]
    config = base / "coord.toml"
    config.write_text(f"record_requests_dir = {str(bodies)!r}\n")
    server = subprocess.Popen(
        [*coord, "serve", "--port", "0", "--data", str(coord_data), "--config", str(config)],
        cwd=base,
        stdout=subprocess.PIPE,
        stderr=coord_log.open("ab"),
        env=env,
    )
    ws = base / "ws"
    ws_env = dict(env)
    try:
        assert server.stdout is not None
        port = json.loads(server.stdout.readline())["port"]
        (ws / "tests" / "data").mkdir(parents=True)
        (ws / "pyproject.toml").write_text(
            textwrap.dedent(
                f"""
                [project]
                name = "redteam"
                version = "0"

                [tool.pytest.ini_options]
                testpaths = ["tests"]

                [tool.maestro]
                interpreter = {str(project_python())!r}

                [tool.maestro.remote]
                url = "http://127.0.0.1:{port}"
                tenant = "team"
                api_key_env = "{KEY_ENV}"

                [tool.maestro.policy.bundle]
                refresh_s = 1
                """
            )
        )
        by_context: dict[str, list[tuple[int, Seed]]] = {c: [] for c in CONTEXTS}
        for i, seed in enumerate(planted):
            context = CONTEXTS[i % len(CONTEXTS)]
            by_context[context].append((i, seed))
            if context == "data" and not node_ids:
                (ws / "tests" / "data" / f"s{i:03d}.txt").write_text(f"seed-{i:03d} {seed.text}")
            if seed.kind in ENV_NAMES:  # the developer's shell holds it: a known value
                ws_env[f"{ENV_NAMES[seed.kind]}_{i}"] = seed.value
        if node_ids:
            (ws / "tests" / PARAM_FILE).write_text(_param_source(planted))
        else:
            for context, items in by_context.items():
                (ws / "tests" / f"test_{context}.py").write_text(_test_source(context, items))
        ws_env.update(
            MAESTRO_CACHE_DIR=str(base / "cache"),
            MAESTRO_STATE_DIR=str(base / "state"),
            MAESTRO_DAEMON="start",
            MAESTRO_SYNC_MAX_BACKOFF_S="1",
        )
        ws_env[KEY_ENV] = key
        yield Setup(base, planted, ws, ws_env, coord_data, coord_log, bodies, base / "junit.xml")
    finally:
        subprocess.run(
            [MAESTRO, "daemon", "stop"], cwd=ws, env=ws_env, capture_output=True, timeout=60
        )
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        shutil.rmtree(base, ignore_errors=True)


def _wait_uploaded(setup: Setup, files: int) -> dict[str, object]:
    deadline = time.monotonic() + 300
    while True:
        proc = subprocess.run(
            [MAESTRO, "status", "--json"],
            cwd=setup.ws,
            env=setup.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        remote = json.loads(proc.stdout)["daemon"]["remote"] if proc.returncode == 0 else {}
        settled = sum(remote.get(k, 0) for k in ("uploaded", "egress_blocked", "dropped"))
        if remote.get("queue_length") == 0 and settled >= files:
            return dict(remote)
        assert time.monotonic() < deadline, f"uploads never drained: {remote}"
        time.sleep(0.5)


def _files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (p for p in sorted(root.rglob("*")) if p.is_file())


def _sink_text(*roots: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in _files(*roots))


def _bodies(setup: Setup, endpoint: str) -> list[Path]:
    return [p for p in _files(setup.bodies) if endpoint in p.name]


def test_no_seeded_secret_reaches_any_sink(redteam: Setup) -> None:
    out = _run(
        [MAESTRO, "test", "--all", "--junit-xml", str(redteam.junit)], redteam.ws, redteam.env
    )
    assert "failed" in out, out[-2000:]  # the planted failures still fail, redacted
    remote = _wait_uploaded(redteam, len(CONTEXTS))
    assert remote["egress_blocked"] == 0  # redaction happened before the gate had to stop
    _run([MAESTRO, "daemon", "stop"], redteam.ws, redteam.env)  # flush its log

    sinks = {
        "coordinator request bodies": _sink_text(redteam.bodies),
        # the egress paths besides the cache uploads, each its own sink (tests/redaction/
        # test_egress_uploads.py plants every seed in each of them directly)
        "coordinator bodies: policy decisions": _sink_text(*_bodies(redteam, "policy_decisions")),
        "coordinator bodies: telemetry": _sink_text(*_bodies(redteam, "telemetry")),
        "coordinator bodies: team model": _sink_text(*_bodies(redteam, "_model")),
        "daemon telemetry database": _sink_text(*(redteam.base / "state").rglob("telemetry*")),
        "coordinator store": _sink_text(redteam.coord_data),
        "coordinator log": _sink_text(redteam.coord_log),
        "local cache (CAS, action results)": _sink_text(redteam.base / "cache"),
        "daemon state (telemetry, logs)": _sink_text(redteam.base / "state"),
        "junit xml": _sink_text(redteam.junit),
    }
    assert any(p.name.endswith(".body") for p in _files(redteam.bodies))
    report = []
    leaks: dict[str, list[str]] = {}
    for sink, text in sinks.items():
        reached = [(i, s) for i, s in enumerate(redteam.seeds) if f"seed-{i:03d}" in text]
        found = [f"seed-{i:03d} ({s.kind})" for i, s in enumerate(redteam.seeds) if leaked(s, text)]
        if found:
            leaks[sink] = found
        redacted = sum(1 for _, s in reached if not leaked(s, text))
        share = redacted / len(reached) if reached else 1.0
        report.append(f"{sink}: {len(reached)} seeds reached, {redacted} redacted ({share:.1%})")
        assert share >= 0.99, report[-1]
    print("\n".join(report))  # the numbers, for the record (pytest -s)
    assert not leaks, leaks
    # the sinks that must have seen the seeds did: the check above is not vacuous
    kinds = {s.kind for s in redteam.seeds}
    assert len(redteam.seeds) >= 200 and len(kinds) >= 15
    for sink in (
        "coordinator request bodies",
        "coordinator store",
        "local cache (CAS, action results)",
    ):
        reached = sum(f"seed-{i:03d}" in sinks[sink] for i in range(len(redteam.seeds)))
        assert reached == len(redteam.seeds), f"{sink}: {reached} seeds reached"


# -- seeds in node ids: policy decisions and telemetry ------------------------------------------


def _param_node_ids(setup: Setup) -> list[str]:
    """The node ids pytest gives the seeded parametrized test (it escapes some characters)."""
    proc = subprocess.run(
        [str(project_python()), "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         f"tests/{PARAM_FILE}"],
        cwd=setup.ws, env=setup.env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    ids = [line for line in proc.stdout.splitlines() if line.startswith(f"tests/{PARAM_FILE}::")]
    assert len(ids) == len(setup.seeds), proc.stdout[-2000:]
    return ids


def _reached(setup: Setup, text: str) -> int:
    return sum(f"seed-{i:03d}" in text for i in range(len(setup.seeds)))


@pytest.fixture(scope="module")
def node_id_sinks() -> Iterator[tuple[Setup, dict[str, str]]]:
    """A developer re-runs seeded parametrized tests by node id (copied from a report): the
    node ids are the run's policy decision input, which the daemon's policy sync sends to the
    coordinator, and the executed tests' telemetry rows. Every sink, once the daemon stopped."""
    with _setup(node_ids=True) as setup:
        _run([MAESTRO, "test", *_param_node_ids(setup)], setup.ws, setup.env)
        deadline = time.monotonic() + 120
        while _reached(setup, _sink_text(*_bodies(setup, "policy_decisions"))) < len(setup.seeds):
            assert time.monotonic() < deadline, "the run's policy decision was never sent"
            time.sleep(0.5)
        _run([MAESTRO, "daemon", "stop"], setup.ws, setup.env)
        state = setup.base / "state"
        yield (
            setup,
            {
                "coordinator request bodies": _sink_text(setup.bodies),
                "coordinator bodies: policy decisions": _sink_text(
                    *_bodies(setup, "policy_decisions")
                ),
                "coordinator store": _sink_text(setup.coord_data),
                "coordinator log": _sink_text(setup.coord_log),
                "daemon telemetry database": _sink_text(*state.rglob("telemetry*")),
                "local cache (CAS, action results)": _sink_text(setup.base / "cache"),
                "daemon state (decision log, logs)": _sink_text(state),
            },
        )


def _check(setup: Setup, sinks: dict[str, str], must_reach: tuple[str, ...]) -> None:
    leaks = {
        sink: [f"seed-{i:03d} ({s.kind})" for i, s in enumerate(setup.seeds) if leaked(s, text)]
        for sink, text in sinks.items()
    }
    for sink in must_reach:  # the check is not vacuous: every seed got there
        assert _reached(setup, sinks[sink]) == len(setup.seeds), sink
    assert not {k: v for k, v in leaks.items() if v}, leaks


def test_seeds_in_node_ids_reach_decisions_and_telemetry_redacted(
    node_id_sinks: tuple[Setup, dict[str, str]],
) -> None:
    setup, sinks = node_id_sinks
    remote = (
        "coordinator request bodies",
        "coordinator bodies: policy decisions",
        "coordinator store",
        "coordinator log",
    )
    _check(setup, {k: sinks[k] for k in (*remote, "daemon telemetry database")},
           ("coordinator bodies: policy decisions", "daemon telemetry database"))  # fmt: skip


def test_seeds_in_node_ids_never_reach_local_sinks(
    node_id_sinks: tuple[Setup, dict[str, str]],
) -> None:
    setup, sinks = node_id_sinks
    local = ("local cache (CAS, action results)", "daemon state (decision log, logs)")
    _check(setup, {k: sinks[k] for k in local}, local)
