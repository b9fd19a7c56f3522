"""Registered Lua scripts sent as EVALSHA in one Redis pipeline: one round trip for many calls."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError

if TYPE_CHECKING:
    from redis.asyncio import Redis

Eval = tuple[Any, list[str], list[Any]]
"""One call: a registered script (it has ``sha`` and ``script``), its keys, its arguments."""


async def evalsha_all(client: Redis, commands: list[Eval]) -> list[Any]:
    """The results of `commands`, sent as EVALSHA in one pipeline (not a transaction); the first
    error among them is raised. A script Redis lacks (restarted, flushed) is loaded, and only the
    commands that failed for it are sent again. (A pipeline given the script objects would ask
    SCRIPT EXISTS first: a second round trip every time.)"""
    results = await _send(client, commands)
    missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
    if missing:
        for script in {id(commands[i][0]): commands[i][0] for i in missing}.values():
            await client.script_load(script.script)
        retried = await _send(client, [commands[i] for i in missing])
        for i, result in zip(missing, retried, strict=True):
            results[i] = result
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


async def _send(client: Redis, commands: list[Eval]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for script, keys, args in commands:
        pipe.evalsha(script.sha, len(keys), *keys, *args)
    return list(await pipe.execute(raise_on_error=False))
