"""Policy in the editor, through a real server and daemon: a run a workspace Rego rule denies ends
with the refusal (message, remediation, retry time) and a warning; ``maestro/explain`` carries
the decisions about the test; an expired feature flag is shown once."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Env, command, notes, request, run_to_end, start_client
from coordinator_apps import serve
from lsprotocol import types
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.slow

FREEZE = """package maestro.workspace.run

import rego.v1

# METADATA
# custom:
#   id: ops.release_freeze
#   remediation: tests/test_calc.py is frozen while the release is cut; run tests/test_other.py
deny contains {
\t"rule": "ops.release_freeze", "msg": "calc tests are frozen", "retry_after_ms": 90000,
} if {
\tsome p in input.paths
\tstartswith(p, "tests/test_calc.py")
}
"""

# A flag registry with one expired flag, put in place in every process of the test (the real
# server and the real daemon it starts) before maestro is imported.
SITECUSTOMIZE = """
import os
if os.environ.get("MAESTRO_TEST_EXPIRED_FLAG"):
    from datetime import date
    import maestro.flags.registry as registry
    registry.BUILTIN_FLAGS = (*registry.BUILTIN_FLAGS, registry.Flag(
        name="old.switch", owner="platform", description="a finished rollout", kind="bool",
        default=True, scopes=frozenset(registry.Scope), expires=date(2026, 1, 31),
        kill_value=False,
    ))
"""


async def _stop(client: LanguageClient) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.shutdown_session(), 15)
    with contextlib.suppress(Exception):
        await client.stop()


def _warnings(client: LanguageClient) -> list[str]:
    return [m.message for m in client.messages if m.type == types.MessageType.Warning]


async def test_denied_run_and_explain_show_the_policy(lsp_env: Env) -> None:
    env = lsp_env
    (env.root / ".maestro/policy").mkdir(parents=True)
    (env.root / ".maestro/policy/freeze.rego").write_text(FREEZE)
    client = await start_client(env, "visual_studio_code")
    try:
        ended = await run_to_end(client, "maestro.runFile", env.uri("tests/test_calc.py"))
        assert ended["cancelled"] is False and "passed" not in ended
        assert ended["error"]["code"] == "policy_denied"
        denied = ended["denied"]
        assert "calc tests are frozen (rule ops.release_freeze)" in denied["message"]
        assert denied["remediation"].startswith("tests/test_calc.py is frozen")
        assert denied["retryAfterMs"] == 90000
        assert denied["executionId"]
        assert "retry in 90 s" in ended["message"]
        (warning,) = [w for w in _warnings(client) if "refused by policy" in w]
        assert "run tests/test_other.py" in warning and "retry in 90 s" in warning

        # a test outside the freeze still runs
        other = await run_to_end(client, "maestro.runFile", env.uri("tests/test_other.py"))
        assert other["error"] is None and other["passed"] == 1 and "denied" not in other

        answer = await request(
            client, "maestro/explain", {"target": "tests/test_calc.py::test_add"}
        )
        deny = next(d for d in answer["decisions"] if d["result"] == "deny")
        assert deny["point"] == "run" and deny["executionId"] == denied["executionId"]
        assert deny["retryAfterMs"] == 90000
        (rule,) = deny["rules"]
        assert rule["rule"] == "ops.release_freeze" and rule["kind"] == "deny"
        assert rule["remediation"].startswith("tests/test_calc.py is frozen")
        assert "remediation:" in deny["summary"]
        assert any(r.startswith("policy: run denied") for r in answer["reasons"])
        assert all(d["result"] != "deny" for d in (await request(
            client, "maestro/explain", {"target": "tests/test_other.py"}
        ))["decisions"])  # fmt: skip
        assert [n for n in notes(client, "maestro/runFinished") if n.get("denied")] == [ended]
    finally:
        await _stop(client)


async def test_expired_flag_warning_shown_once(lsp_env: Env) -> None:
    env = lsp_env
    site = env.base / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE))
    env.env["PYTHONPATH"] = str(site)
    env.env["MAESTRO_TEST_EXPIRED_FLAG"] = "1"
    client = await start_client(env, "neovim")
    try:
        await request(client, "maestro/status", {})  # connects the daemon
        for _ in range(200):
            if any("old.switch" in w for w in _warnings(client)):
                break
            await asyncio.sleep(0.05)
        (shown,) = [w for w in _warnings(client) if "old.switch" in w]
        assert "expired on 2026-01-31" in shown and "platform" in shown
        # a restarted daemon (a reconnect) does not say it again
        await command(client, "maestro.restartDaemon")
        await request(client, "maestro/status", {})
        await asyncio.sleep(1.0)
        assert len([w for w in _warnings(client) if "old.switch" in w]) == 1
    finally:
        await _stop(client)


async def test_team_bundle_incident_raised_and_cleared(lsp_env: Env, tmp_path: Path) -> None:
    """A real coordinator serves the team bundle; the daemon fetches it every second. A bundle
    signed by a key the workspace does not trust is quarantined: the editor gets
    maestro/policyIncident and one warning; a good bundle clears it (one message)."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from maestro.coordinator.app import create_app
    from maestro.coordinator.auth import create_key
    from maestro.coordinator.models import Role
    from maestro.coordinator.settings import Settings
    from maestro.coordinator.store import Store
    from maestro.policy.bundle import build

    env = lsp_env
    settings = Settings(data_dir=tmp_path / "coord", token_ttl_s=300, io_threads=2)
    with Store(settings.data_dir / "store") as store:
        store.add_tenant("alpha")
        http = await serve(create_app(settings, store=store))
        client: LanguageClient | None = None
        try:
            admin_key = create_key(store, "alpha", Role.ADMIN).plaintext
            token = await (await http.post("/v1/token", json={"api_key": admin_key})).json()
            admin = {"Authorization": f"Bearer {token['token']}"}
            trusted, stranger = (
                ec.generate_private_key(ec.SECP256R1()),
                ec.generate_private_key(ec.SECP256R1()),
            )
            pem = trusted.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
            (env.root / "team.pem").write_bytes(pem)
            base = str(http.make_url("")).rstrip("/")
            with (env.root / "pyproject.toml").open("a") as f:
                f.write(
                    f'\n[tool.maestro.remote]\nurl = "{base}"\ntenant = "alpha"\n'
                    'api-key-env = "MAESTRO_TEST_POLICY_KEY"\n\n'
                    "[tool.maestro.policy.bundle]\nrefresh_s = 1\n\n"
                    '[tool.maestro.policy.bundle.keys]\nk1 = "team.pem"\n'
                )
            env.env["MAESTRO_TEST_POLICY_KEY"] = create_key(store, "alpha", Role.READ).plaintext

            async def publish(key: ec.EllipticCurvePrivateKey, version: int) -> None:
                data = build(
                    {"freeze.rego": TEAM}, key=key, kid="k1", revision=f"r{version}",
                    version=version, expires=datetime.now(UTC) + timedelta(days=1),
                )  # fmt: skip
                put = await http.put("/v1/tenants/alpha/policy/bundle", data=data, headers=admin)
                assert put.status == 204

            client = await start_client(env, "neovim")
            await request(client, "maestro/status", {})  # the daemon runs and is subscribed
            await publish(stranger, 1)
            raised = await _note(client, "maestro/policyIncident", lambda n: n["active"])
            assert raised["root"] == str(env.root) and raised["reason"], raised
            await asyncio.sleep(2.5)  # later syncs quarantine it again: shown once only
            assert len([w for w in _warnings(client) if "policy bundle rejected" in w]) == 1
            await publish(trusted, 2)
            cleared = await _note(client, "maestro/policyIncident", lambda n: not n["active"])
            assert cleared["root"] == str(env.root)
            infos = [m.message for m in client.messages if "incident cleared" in m.message]
            assert len(infos) == 1, infos
        finally:
            if client is not None:
                await _stop(client)
            await http.close()


TEAM = b"""package maestro.team.run

import rego.v1

deny contains {"rule": "team.freeze", "msg": "release freeze"} if input.kind == "background"
"""


async def _note(
    client: LanguageClient,
    method: str,
    match: Callable[[dict[str, Any]], bool],
    timeout: float = 30,
) -> dict[str, Any]:
    for _ in range(int(timeout / 0.1)):
        found = [n for n in notes(client, method) if match(n)]
        if found:
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no matching {method} in {timeout} s: {notes(client, method)}")


async def test_incident_raised_before_the_editor_connected_is_shown(lsp_env: Env) -> None:
    """A daemon warm-starts with its last good team bundle expired: the incident is raised at
    its start, before any server subscribed. The editor connecting later still shows it once."""
    import json
    import subprocess
    import sys

    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from maestro.paths import workspace_key
    from maestro.policy.bundle import build

    env = lsp_env
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    (env.root / "team.pem").write_bytes(pem)
    with (env.root / "pyproject.toml").open("a") as f:
        f.write('\n[tool.maestro.policy.bundle.keys]\nk1 = "team.pem"\n')
    folder = Path(env.env["MAESTRO_STATE_DIR"]) / "workspaces" / workspace_key(env.root)
    folder = folder / "policy-bundle"
    folder.mkdir(parents=True, mode=0o700)
    expired = datetime.now(UTC) - timedelta(hours=1)
    data = build({"freeze.rego": TEAM}, key=key, kid="k1", revision="r7", version=7,
                 expires=expired)  # fmt: skip
    (folder / "last-good.tar.gz").write_bytes(data)
    (folder / "state.json").write_text(json.dumps({"revision": "r7", "version": 7}))

    maestro = Path(sys.executable).parent / "maestro"
    started = subprocess.run(
        [str(maestro), "daemon", "start"], cwd=env.root, env=env.env,
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    for _ in range(300):  # the daemon raised (and persisted) the incident: nobody listened
        if "incident" in json.loads((folder / "state.json").read_text()):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the daemon raised no incident at its start")

    client = await start_client(env, "neovim")
    try:
        await request(client, "maestro/status", {})  # connects to the running daemon
        raised = await _note(client, "maestro/policyIncident", lambda n: n["active"], timeout=20)
        assert raised["root"] == str(env.root), raised
        assert raised["reason"] == "expired" and raised["revision"] == "r7", raised
        for _ in range(100):
            if any("policy bundle rejected" in w for w in _warnings(client)):
                break
            await asyncio.sleep(0.05)
        shown = [w for w in _warnings(client) if "policy bundle rejected" in w]
        assert len(shown) == 1 and "expired" in shown[0], shown
        assert "the last good policy stays in force" in shown[0]
        # a reconnect to a restarted daemon (which raises it again) does not show it twice
        await command(client, "maestro.restartDaemon")
        await request(client, "maestro/status", {})
        await asyncio.sleep(1.5)
        assert len([w for w in _warnings(client) if "policy bundle rejected" in w]) == 1
    finally:
        await _stop(client)
