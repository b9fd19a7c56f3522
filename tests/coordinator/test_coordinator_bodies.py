"""Small JSON bodies (tokens, keys, flags, decisions, telemetry) are read whole, however the
client's bytes arrive, and refused with 413 past their limit even without a Content-Length."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from coord_helpers import Env

from maestro.coordinator.models import Role
from maestro.policy import CacheInput, PolicyEngine
from maestro.policy.gate import PolicyGate


async def _trickle(data: bytes, size: int = 16 << 10) -> AsyncIterator[bytes]:
    """The body in pieces, sent chunked: the server sees several reads' worth."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_a_large_decision_batch_is_read_whole(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAESTRO_STATE_DIR", str(tmp_path / "state"))
    root = tmp_path / "ws"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[project]\nname = "ws"\nversion = "0"\n\n[tool.maestro.policy]\nupload_ci_only = true\n'
    )
    gate = PolicyGate(PolicyEngine.open(root), None)
    _, record = gate.decide(CacheInput(execution_id="exec-1", action="upload", target="tests/t.py"))
    big = record.model_copy(update={"input": {**record.input, "note": "x" * (600 << 10)}})
    body = b'{"decisions": [' + big.model_dump_json(by_alias=True).encode() + b"]}"
    rw = await env.auth("alpha", Role.READ_WRITE)
    resp = await env.client.post(
        "/v1/tenants/alpha/policy/decisions",
        data=body,
        headers={**rw, "Content-Type": "application/json", "Content-Length": str(len(body))},
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["stored"] == 1


async def test_an_oversized_chunked_body_is_refused_with_413(env: Env) -> None:
    admin = await env.auth("alpha", Role.ADMIN)
    body = b'{"role": "read", "label": "' + b"x" * 8192 + b'"}'
    resp = await env.client.post(
        "/v1/tenants/alpha/keys",
        data=_trickle(body, 1024),
        headers={**admin, "Content-Type": "application/json"},
    )
    assert resp.status == 413, await resp.text()
    assert (await resp.json())["error"] == "too_large"


async def test_every_json_body_route_says_where_a_malformed_body_is_wrong(env: Env) -> None:
    # the same answer from each route that reads a model: 400 bad_request, where and what
    # pydantic found first, and the body the route expects as the hint
    admin = await env.auth("alpha", Role.ADMIN)
    for method, url, body, where in (
        ("POST", "/v1/token", b'{"api_key": 7}', "api_key: "),
        ("POST", "/v1/tenants/alpha/keys", b'{"role": "root"}', "role: "),
        ("PUT", "/v1/tenants/alpha/flags/ml.fail-first", b"{not json", "body: "),
        ("POST", "/v1/tenants/alpha/policy/decisions", b'{"decisions": 1}', "decisions: "),
        ("PUT", "/v1/tenants/alpha/model", b"{}", "sha256: "),
    ):
        resp = await env.client.request(
            method, url, data=body, headers={**admin, "Content-Type": "application/json"}
        )
        answer = await resp.json()
        assert resp.status == 400 and answer["error"] == "bad_request", (url, answer)
        assert answer["message"].startswith(where), (url, answer)
        assert answer["hint"].startswith("expected "), (url, answer)
