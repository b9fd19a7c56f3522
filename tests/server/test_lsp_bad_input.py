# ruff: noqa: E501  (the table of cases reads best one case per line)
"""Bad input to the language server: every request gets a proper answer or a proper JSON-RPC
error (never an internal error with a traceback, never silence), no daemon is started outside
the workspace, and the server keeps serving after each."""

from __future__ import annotations

import asyncio
import json
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import Env
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.slow

INVALID_PARAMS = -32602
REFUSED = -32001  # a Maestro error (methods.Refused): message and hint
METHOD_NOT_FOUND = -32601


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    params: Any
    error: int | None = None  # None: an answer is expected
    says: str = ""  # in the error message, or in the answer's JSON


def cmd(name: str, *args: Any) -> dict[str, Any]:
    return {"command": name, "arguments": list(args)}


CASES = [
    Case("uris as a string", "maestro/impactedTargets", {"uris": "file:///x"}, INVALID_PARAMS, "uris"),
    Case("bad cacheState", "maestro/impactedTargets", {"cacheState": "sometimes"}, INVALID_PARAMS, "cacheState"),
    Case("reasons as an object", "maestro/impactedTargets", {"reasons": {"a": 1}}, INVALID_PARAMS),
    Case("textDocument as a string", "maestro/impactedTargets", {"textDocument": "file:///x"}, INVALID_PARAMS),
    Case("root as a number", "maestro/impactedTargets", {"root": 5}, INVALID_PARAMS, "root"),
    Case("unknown git ref", "maestro/impactedTargets", {"since": "no-such-ref-123"}, REFUSED, "no-such-ref-123"),
    Case("git ref that reads as an option", "maestro/impactedTargets", {"since": "--output=/tmp/x"}, INVALID_PARAMS, "not a git ref"),
    Case("document not on disk (untitled:)", "maestro/impactedTargets", {"textDocument": {"uri": "untitled:Untitled-1"}}, REFUSED, "not a file"),
    Case("uris with an http URI", "maestro/impactedTargets", {"uris": ["http://example.com/a.py"]}, REFUSED, "not a file"),
    Case("document outside", "maestro/impactedTargets", {"textDocument": {"uri": "file:///etc/hosts"}}, REFUSED, "outside"),
    Case("root /", "maestro/impactedTargets", {"root": "/"}, REFUSED, "outside"),
    Case("root /tmp as URI", "maestro/impactedTargets", {"root": "file:///tmp"}, REFUSED, "outside"),
    Case("params as a list", "maestro/impactedTargets", [1, 2], INVALID_PARAMS),
    Case("cacheStats root outside", "maestro/cacheStats", {"root": "/usr"}, REFUSED, "outside"),
    Case("cacheStats uri as a number", "maestro/cacheStats", {"uri": 42}, INVALID_PARAMS),
    Case("explain without target", "maestro/explain", {}, REFUSED, "target"),
    Case("explain target as a number", "maestro/explain", {"target": 7}, INVALID_PARAMS),
    Case("explain outside", "maestro/explain", {"target": "file:///etc/hosts"}, REFUSED, "outside"),
    Case("explain a missing test", "maestro/explain", {"target": "tests/test_calc.py::test_nope"}, None, '"decision":"unknown"'),
    Case("explain a missing file", "maestro/explain", {"target": "tests/test_gone.py"}, None, '"decision":"unknown"'),
    Case("status with junk", "maestro/status", {"junk": 1}, None, '"workspaces"'),
    Case("discover outside", "maestro/testExplorer/discover", {"textDocument": {"uri": "file:///etc/passwd"}}, REFUSED, "outside"),
    Case("discover untitled:", "maestro/testExplorer/discover", {"textDocument": {"uri": "untitled:Untitled-1"}}, REFUSED, "not a file"),
    Case("run include as a string", "maestro/testExplorer/run", {"include": "a"}, INVALID_PARAMS, "include"),
    Case("run include empty", "maestro/testExplorer/run", {"include": []}, REFUSED, "include"),
    Case("run exclude numbers", "maestro/testExplorer/run", {"include": ["x"], "exclude": [1, 2]}, INVALID_PARAMS),
    Case("cancel runId as a number", "maestro/testExplorer/cancel", {"runId": 5}, INVALID_PARAMS),
    Case("cancel unknown run", "maestro/testExplorer/cancel", {"runId": "nope"}, None, '"cancelled":[]'),
    Case("unknown method", "maestro/nope", {}, METHOD_NOT_FOUND),
    Case("runNode without id", "workspace/executeCommand", cmd("maestro.runNode"), REFUSED, "node id"),
    Case("runNode with a number", "workspace/executeCommand", cmd("maestro.runNode", 123), INVALID_PARAMS, "argument 1"),
    Case("runNode with three arguments", "workspace/executeCommand", cmd("maestro.runNode", "a", "b", "c"), INVALID_PARAMS, "at most 2"),
    Case("runImpacted on untitled:", "workspace/executeCommand", cmd("maestro.runImpacted", "untitled:Untitled-1"), REFUSED, "not a file"),
    Case("runAll with a number", "workspace/executeCommand", cmd("maestro.runAll", 5), INVALID_PARAMS, "argument 1"),
    Case("status with an argument", "workspace/executeCommand", cmd("maestro.status", "x"), INVALID_PARAMS, "no argument"),
    Case("explain with a number as input path", "workspace/executeCommand", cmd("maestro.explain", "tests/test_calc.py", 5), INVALID_PARAMS, "argument 2"),
    Case("restartDaemon with a list", "workspace/executeCommand", cmd("maestro.restartDaemon", ["/"]), INVALID_PARAMS, "argument 1"),
    Case("runFile outside", "workspace/executeCommand", cmd("maestro.runFile", "file:///etc/hosts"), REFUSED, "outside"),
    Case("explain command without target", "workspace/executeCommand", cmd("maestro.explain"), REFUSED, "target"),
    Case("cacheStats command on /", "workspace/executeCommand", cmd("maestro.cacheStats", "/"), REFUSED, "outside"),
    Case("runAll on /", "workspace/executeCommand", cmd("maestro.runAll", "/"), REFUSED, "outside"),
    Case("restartDaemon on /etc", "workspace/executeCommand", cmd("maestro.restartDaemon", "/etc"), REFUSED, "outside"),
    Case("cancel with an object", "workspace/executeCommand", cmd("maestro.cancel", {"weird": 1}), INVALID_PARAMS, "argument 1"),
    Case("cancel with a run id object", "workspace/executeCommand", cmd("maestro.cancel", {"id": "nope"}), None, '"cancelled":[]'),
    Case("unknown command", "workspace/executeCommand", cmd("maestro.nope"), INVALID_PARAMS, "maestro.nope"),
    Case("codeLens outside", "textDocument/codeLens", {"textDocument": {"uri": "file:///etc/x.py"}}, None, "[]"),
    Case("hover outside", "textDocument/hover", {"textDocument": {"uri": "file:///etc/x.py"}, "position": {"line": 0, "character": 0}}, None, "null"),
]  # fmt: skip


async def ask(
    client: LanguageClient, method: str, params: Any
) -> tuple[Any, JsonRpcException | None]:
    if method == types.WORKSPACE_EXECUTE_COMMAND:
        params = types.ExecuteCommandParams(**params)
    elif method in (types.TEXT_DOCUMENT_CODE_LENS, types.TEXT_DOCUMENT_HOVER):
        params = client.protocol._converter.structure(
            params,
            types.CodeLensParams if method == types.TEXT_DOCUMENT_CODE_LENS else types.HoverParams,
        )
    try:
        raw = await asyncio.wait_for(client.protocol.send_request_async(method, params), 20)
    except JsonRpcException as exc:
        return None, exc
    return raw, None


def as_json(value: Any) -> str:
    from maestro.server.util import plain

    return json.dumps(
        plain(value), separators=(",", ":"), default=lambda o: getattr(o, "__dict__", str(o))
    )


async def test_every_bad_request_gets_a_proper_answer(lsp: LanguageClient) -> None:
    env: Env = lsp.maestro_env  # type: ignore[attr-defined]
    assert len(CASES) >= 30
    problems: list[str] = []
    for case in CASES:
        try:
            result, error = await ask(lsp, case.method, case.params)
        except TimeoutError:
            problems.append(f"{case.name}: no answer within 20 s")
            continue
        if case.error is None:
            if error is not None:
                problems.append(f"{case.name}: error {error.code} {error.message[:200]}")
            elif case.says and case.says not in as_json(result):
                problems.append(f"{case.name}: answer lacks {case.says!r}: {as_json(result)[:300]}")
        elif error is None:
            problems.append(
                f"{case.name}: answered {as_json(result)[:200]}, expected error {case.error}"
            )
        else:
            if error.code != case.error:
                problems.append(
                    f"{case.name}: error {error.code}, expected {case.error}: {error.message[:300]}"
                )
            if "Traceback" in error.message:
                problems.append(f"{case.name}: a traceback in the error message")
            if case.says and case.says.lower() not in error.message.lower():
                problems.append(f"{case.name}: message lacks {case.says!r}: {error.message[:300]}")
        status = await asyncio.wait_for(lsp.protocol.send_request_async("maestro/status", {}), 30)
        roots = [w["root"] for w in as_json_obj(status)["workspaces"]]
        if any(r != str(env.root) for r in roots):
            problems.append(f"{case.name}: a workspace outside the folder: {roots}")
    assert not problems, "\n".join(problems)


def as_json_obj(value: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(as_json(value))
    return loaded


def _frame(message: dict[str, Any] | bytes) -> bytes:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def test_raw_bad_messages_get_errors_and_the_server_goes_on(lsp_env: Env) -> None:
    """What a typed client cannot send: JSON that does not parse (-32700, id null), standard
    requests whose params do not fit their LSP type (-32602), command arguments that are not a
    list (-32602), a change to a document never opened (ignored, no error shown); then a good
    request is answered. Refusals leave one line each in the server's log, no traceback."""
    log_path = lsp_env.base / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-P", "-m", "maestro.server"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        env=lsp_env.env,
        cwd=str(lsp_env.root),
    )
    root = lsp_env.root.as_uri()
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"capabilities": {}, "rootUri": root,
                    "workspaceFolders": [{"uri": root, "name": "ws"}]}},
        b'{"jsonrpc": "2.0", "id": 2, "method": ',
        {"jsonrpc": "2.0", "id": 3, "method": "textDocument/codeLens", "params": {}},
        {"jsonrpc": "2.0", "id": 4, "method": "textDocument/hover",
         "params": {"textDocument": {"uri": root + "/x.py"},
                    "position": {"line": "x", "character": 0}}},
        {"jsonrpc": "2.0", "id": 6, "method": "workspace/executeCommand",
         "params": {"command": "maestro.runFile", "arguments": "tests/test_calc.py"}},
        {"jsonrpc": "2.0", "method": "textDocument/didChange",
         "params": {"textDocument": {"uri": root + "/tests/never_opened.py", "version": 2},
                    "contentChanges": [{"text": "x"}]}},
        {"jsonrpc": "2.0", "id": 7, "method": "maestro/impactedTargets", "params": {"since": "-x"}},
        {"jsonrpc": "2.0", "id": 8, "method": "maestro/impactedTargets",
         "params": {"textDocument": {"uri": "file:///etc/hosts"}}},
        {"jsonrpc": "2.0", "id": 5, "method": "shutdown"},
    ]  # fmt: skip
    try:
        assert proc.stdin is not None and proc.stdout is not None
        for m in messages:
            proc.stdin.write(_frame(m))
        proc.stdin.flush()
        answers: dict[Any, dict[str, Any]] = {}
        shown: list[str] = []
        deadline = time.monotonic() + 30
        while len(answers) < 8:
            ready, _, _ = select.select(
                [proc.stdout], [], [], max(0.0, deadline - time.monotonic())
            )
            assert ready, f"no answer within 30 s; answers so far: {answers}"
            header = proc.stdout.readline()
            assert header, f"the server stopped; answers so far: {answers}"
            if not header.lower().startswith(b"content-length"):
                continue
            length = int(header.split(b":")[1])
            while proc.stdout.readline() not in (b"\r\n", b""):
                pass
            answer = json.loads(proc.stdout.read(length))
            if "id" in answer and "method" not in answer:
                answers[answer["id"] if answer["id"] is not None else "parse"] = answer
            elif answer.get("method") == "window/showMessage":
                shown.append(answer["params"]["message"])
        assert answers["parse"]["error"]["code"] == -32700
        assert answers[3]["error"]["code"] == INVALID_PARAMS
        assert "textDocument" in answers[3]["error"]["message"]  # the field, as on the wire
        assert answers[4]["error"]["code"] == INVALID_PARAMS
        assert "position.line" in answers[4]["error"]["message"]
        # a string is not spread into one-character arguments (a run of "t")
        assert answers[6]["error"]["code"] == INVALID_PARAMS
        assert "arguments should be a list" in answers[6]["error"]["message"]
        assert "error" not in answers[5]
        assert not shown, shown  # the stray didChange is logged, not popped up in the editor
        assert answers[7]["error"]["code"] == INVALID_PARAMS
        assert answers[8]["error"]["code"] == REFUSED
    finally:
        proc.kill()
        proc.wait(10)
        log.close()
    # refusals are answers: one line each in the editor's log, not a traceback
    logged = log_path.read_text(errors="replace")
    assert "Traceback" not in logged, logged[-3000:]
    assert "refused: maestro/impactedTargets: invalid params: since" in logged, logged[-3000:]
