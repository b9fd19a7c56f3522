"""Fuzzed params for every ``maestro/*`` request and every ``maestro.*`` command, through a real
server and daemon: each is answered (a result, or InvalidParams / a Maestro error in one line:
never an internal error, a traceback or silence), no daemon is started outside the workspace,
and the server is alive at the end. Seeded: a failure names its case and replays."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from typing import Any

import pytest
from conftest import Env, command, request, start_client
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from maestro.server import methods

pytestmark = pytest.mark.slow

SEED = 20
PER_METHOD = 24
PROPER = (-32602, -32001)  # InvalidParams, a Maestro error (methods.Refused)

JUNK: list[Any] = [
    None, 0, -1, 2**53, 3.5, True, False, "", " ", "x" * 5000, "../../etc/passwd",
    "/", "/etc", "file:///", "file:///etc/hosts", "file:///tmp", "untitled:Untitled-1",
    "http://example.com/a.py", "tests/test_calc.py", "tests/test_calc.py::test_nope[1]",
    "pkg/calc.py", "a\x00b", "ünïcødé ✓", "--output=/tmp/x", "HEAD~999", [], [1, "a"],
    ["file:///etc/hosts"], {}, {"uri": 5}, {"uri": "file:///etc/hosts"}, {"a": {"b": [None]}},
]  # fmt: skip


def fuzzed_params(rng: random.Random, spec: methods.Request[Any, Any]) -> Any:
    """A top-level value of the wrong shape, or the model's own fields with junk values."""
    if rng.random() < 0.15:
        return rng.choice([None, [], [1, 2], "x", 5, True])
    fields = [f.alias or name for name, f in spec.params.model_fields.items()] or ["junk"]
    chosen = rng.sample(fields, rng.randint(1, len(fields)))
    return {name: rng.choice(JUNK) for name in chosen}


def fuzzed_arguments(rng: random.Random) -> list[Any]:
    return [rng.choice(JUNK) for _ in range(rng.randint(0, 3))]


async def test_fuzzed_requests_and_commands_get_proper_answers(lsp_env: Env) -> None:
    env = lsp_env
    rng = random.Random(SEED)
    client = await start_client(env, "neovim")
    problems: list[str] = []

    async def ask(label: str, call: Any) -> None:
        try:
            await asyncio.wait_for(call, 30)
        except JsonRpcException as exc:
            if exc.code not in PROPER:
                problems.append(f"{label}: error {exc.code} {exc.message[:200]}")
            elif "Traceback" in exc.message or "\n  File " in exc.message:
                problems.append(f"{label}: a traceback in the message")
        except TimeoutError:
            problems.append(f"{label}: no answer within 30 s")

    try:
        for spec in methods.REQUESTS:
            for i in range(PER_METHOD):
                params = fuzzed_params(rng, spec)
                label = f"{spec.method} #{i} {json.dumps(params)[:120]}"
                await ask(label, client.protocol.send_request_async(spec.method, params))
        for cmd in methods.COMMANDS:
            for i in range(PER_METHOD):
                args = fuzzed_arguments(rng)
                label = f"{cmd.name} #{i} {json.dumps(args)[:120]}"
                await ask(
                    label,
                    client.workspace_execute_command_async(
                        types.ExecuteCommandParams(command=cmd.name, arguments=args)
                    ),
                )
        await command(client, "maestro.cancel", timeout=30)  # runs a fuzzed command started
        status = await request(client, "maestro/status", {}, timeout=30)
        roots = {w["root"] for w in status["workspaces"]}
        assert roots <= {str(env.root)}, f"a workspace outside the folder: {roots}"
        assert not problems, f"{len(problems)} bad answers:\n" + "\n".join(problems)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), 15)
        with contextlib.suppress(Exception):
            await client.stop()
